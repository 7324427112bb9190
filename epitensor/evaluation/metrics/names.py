"""Metric names: the challenge's and the paper's tables, which way is better, name resolution."""

from __future__ import annotations

#: Metrics of the ENCODE Imputation Challenge, in the order of its score tables.
EIC_METRICS = (
    "mse", "gwcorr", "gwspear", "mse1obs", "mse1imp", "mseprom", "msegene", "mseenh", "msevar",
    "match1", "catch1obs", "catch1imp", "aucobs1", "aucimp1",
)
#: The Avocado paper's metric names and the EIC metric each one is.
PAPER_METRICS = {
    "mseGlobal": "mse", "mse1obs": "mse1obs", "mse1imp": "mse1imp",
    "mseProm": "mseprom", "mseGene": "msegene", "mseEnh": "mseenh",
}
#: Peak-level metrics (need called peaks).
PEAK_METRICS = ("ap", "epr")
#: Metrics where larger is better (all others: smaller is better).
HIGHER_IS_BETTER = frozenset(
    {"gwcorr", "gwspear", "match1", "catch1obs", "catch1imp", "aucobs1", "aucimp1", "ap", "epr"}
)
#: Metrics that need annotation regions.
REGION_METRICS = ("mseprom", "msegene", "mseenh")
#: The annotation region each region metric pools over.
REGION_OF = {"mseprom": "promoters", "msegene": "genes", "mseenh": "enhancers"}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` means a better imputation.

    Examples
    --------
    >>> higher_is_better("gwcorr"), higher_is_better("mseGlobal")
    (True, False)
    """
    return PAPER_METRICS.get(metric, metric) in HIGHER_IS_BETTER


def resolve_metrics(metrics) -> dict[str, str]:
    """Map requested metric names to the EIC function names (``"eic"``, ``"paper"``, ``"all"`` or a list).

    Examples
    --------
    >>> resolve_metrics("paper")["mseGlobal"]
    'mse'
    """
    if metrics is None or metrics == "eic":
        return {m: m for m in EIC_METRICS}
    if metrics == "paper":
        return dict(PAPER_METRICS)
    if metrics == "all":
        return {**{m: m for m in EIC_METRICS}, **{k: v for k, v in PAPER_METRICS.items() if k != v}}
    if isinstance(metrics, str):
        metrics = [metrics]
    known = {**{m: m for m in EIC_METRICS + PEAK_METRICS}, **PAPER_METRICS}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(known)} or 'eic', 'paper', 'all'")
    return {m: known[m] for m in metrics}
