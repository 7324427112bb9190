"""Summary tables comparing a model with a baseline, track by track and assay by assay."""

from __future__ import annotations

import pandas as pd

from ..exceptions import DataError
from .metrics import higher_is_better

_KEYS = ["biosample", "assay"]


def paired_scores(scores_model: pd.DataFrame, scores_baseline: pd.DataFrame) -> pd.DataFrame:
    """Join two score tables on (biosample, assay) with ``_model``/``_baseline`` suffixes.

    A table from :func:`~epitensor.cross_validate` (with a ``method`` column) may be passed as
    ``scores_model`` alone with ``scores_baseline=None``.
    """
    if scores_baseline is None:
        if "method" not in scores_model.columns:
            raise DataError("pass two score tables, or one cross_validate table with a 'method' column")
        methods = scores_model["method"].unique().tolist()
        other = [m for m in methods if m != "model"]
        if "model" not in methods or not other:
            raise DataError(f"the table needs methods 'model' and a baseline; it has {methods}")
        scores_baseline = scores_model[scores_model["method"] == other[0]]
        scores_model = scores_model[scores_model["method"] == "model"]
    joined = scores_model.merge(scores_baseline, on=_KEYS, suffixes=("_model", "_baseline"))
    if joined.empty:
        raise DataError("the two score tables share no (biosample, assay) tracks")
    return joined


def per_assay(scores_model, scores_baseline, metric: str) -> pd.DataFrame:
    """Mean ``metric`` per assay for model and baseline, and whether the model wins.

    Examples
    --------
    >>> m = pd.DataFrame({"biosample": ["a", "b"], "assay": ["x", "y"], "mse": [1.0, 3.0]})
    >>> b = pd.DataFrame({"biosample": ["a", "b"], "assay": ["x", "y"], "mse": [2.0, 2.0]})
    >>> per_assay(m, b, "mse")["model_wins"].tolist()
    [True, False]
    """
    joined = paired_scores(scores_model, scores_baseline)
    table = joined.groupby("assay")[[f"{metric}_model", f"{metric}_baseline"]].mean()
    table.columns = ["model", "baseline"]
    better = table["model"] > table["baseline"] if higher_is_better(metric) else table["model"] < table["baseline"]
    table["model_wins"] = better
    return table.reset_index()


def improvement_table(scores_model: pd.DataFrame, scores_baseline: pd.DataFrame | None = None, metrics=None) -> pd.DataFrame:
    """Relative improvement of the model over the baseline, one row per metric.

    Columns: ``model`` and ``baseline`` (mean over tracks), ``relative_improvement`` (positive
    = model better: ``(baseline - model) / |baseline|`` for errors, ``(model - baseline) /
    |baseline|`` for scores where higher is better), ``track_wins`` / ``n_tracks`` and
    ``assay_wins`` / ``n_assays`` (the paper's "beat the baseline on 71 of 84 assays").

    Examples
    --------
    >>> m = pd.DataFrame({"biosample": ["a", "b"], "assay": ["x", "y"], "mse": [1.0, 2.0]})
    >>> b = pd.DataFrame({"biosample": ["a", "b"], "assay": ["x", "y"], "mse": [2.0, 2.0]})
    >>> t = improvement_table(m, b)
    >>> float(t.loc["mse", "relative_improvement"]), int(t.loc["mse", "track_wins"]), int(t.loc["mse", "n_tracks"])
    (0.25, 1, 2)
    """
    joined = paired_scores(scores_model, scores_baseline)
    if metrics is None:
        metrics = [c[: -len("_model")] for c in joined.columns
                   if c.endswith("_model") and c[: -len("_model")] not in ("n_bins", "fold", "method")
                   and f"{c[: -len('_model')]}_baseline" in joined.columns]
    rows = []
    for m in metrics:
        mod, base = joined[f"{m}_model"], joined[f"{m}_baseline"]
        sign = 1.0 if higher_is_better(m) else -1.0
        mm, bm = float(mod.mean()), float(base.mean())  # NaN-skipping, silent on all-NaN
        assay_table = per_assay(joined.rename(columns={f"{m}_model": m})[_KEYS + [m]],
                                joined.rename(columns={f"{m}_baseline": m})[_KEYS + [m]], m)
        rows.append({
            "metric": m, "model": mm, "baseline": bm,
            "relative_improvement": sign * (mm - bm) / abs(bm) if bm else float("nan"),
            "track_wins": int((sign * (mod - base) > 0).sum()), "n_tracks": int(len(joined)),
            "assay_wins": int(assay_table["model_wins"].sum()), "n_assays": int(len(assay_table)),
        })
    return pd.DataFrame(rows).set_index("metric")
