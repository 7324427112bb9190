"""Many metrics of one track pair at once, sharing the sorts, thresholds and ranks between them."""

from __future__ import annotations

import time

import numpy as np

from .names import REGION_METRICS, REGION_OF, resolve_metrics
from .ranks import _auc_from_ranks, doubled_ranks, sorted_with_order, top_thresholds
from .track import (
    _cumulative_sq_error,
    _masked_mse,
    _overlap_fraction,
    _pair,
    _region_mse_from_cumsum,
    mse,
    msevar,
    pearson,
)


class _Clock:
    """Accumulate wall time per step into a dict (no-op without one)."""

    def __init__(self, timings):
        self.timings = timings

    def __call__(self, key):
        self.key = key
        return self

    def __enter__(self):
        if self.timings is not None:
            self._key, self._t0 = self.key, time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.timings is not None:
            self.timings[self._key] = self.timings.get(self._key, 0.0) + time.perf_counter() - self._t0
        return False


def score_arrays(y_true, y_pred, *, metrics=None, regions=None, variance=None, transform=None,
                 timings: dict | None = None) -> dict[str, float]:
    """Score one track pair with many metrics, sharing the sorts between them.

    Parameters
    ----------
    y_true, y_pred : 1-D arrays
        Observed and imputed values of the bins to score (already masked/filtered).
    metrics : "eic", "paper", "all" or list of str, default "eic"
        Names of :data:`EIC_METRICS` and/or :data:`PAPER_METRICS`.
    regions : dict, optional
        ``{"promoters"|"genes"|"enhancers": (lo, hi)}`` index intervals into the arrays, for
        mseprom/msegene/mseenh (NaN when absent); ``(lo, hi, n)`` divides the pooled squared
        error by ``n`` instead of the number of bins.
    variance : 1-D array, optional
        Per-bin variance of the assay across biosamples, for msevar (NaN when absent).
    transform : callable, optional
        Strictly increasing transform applied before the value-based metrics (e.g. ``np.sinh``
        to score on the untransformed scale); rank-based metrics are unchanged by it.
    timings : dict, optional
        Filled with seconds per metric and per shared step (``"(sorts, thresholds)"``,
        ``"(ranks)"``, ``"(region prefix sums)"``), for benchmarks.

    Returns
    -------
    dict
        Metric name -> value.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(1000).astype(np.float32)
    >>> s = score_arrays(y, y, metrics=["mse", "gwspear", "match1"])
    >>> s["mse"], round(s["gwspear"], 6), s["match1"]
    (0.0, 1.0, 1.0)
    """
    y_true, y_pred = _pair(y_true, y_pred)
    wanted = resolve_metrics(metrics)
    needed = set(wanted.values())
    regions = regions or {}
    clock = _Clock(timings)
    out: dict[str, float] = {}
    top_based = needed & {"mse1obs", "mse1imp", "match1", "catch1obs", "catch1imp", "aucobs1", "aucimp1"}
    need_ranks = bool(needed & {"gwspear", "aucobs1", "aucimp1"})
    s_true = s_pred = None
    with clock("(sorts, thresholds)"):
        if need_ranks:  # one packed sort per track serves thresholds and ranks
            s_true, s_pred = sorted_with_order(y_true), sorted_with_order(y_pred)
            thr_true, thr_pred = top_thresholds(s_true[0]), top_thresholds(s_pred[0])
        elif top_based:  # thresholds only: a value sort, no ranks
            thr_true, thr_pred = top_thresholds(np.sort(y_true)), top_thresholds(np.sort(y_pred))
        if top_based:
            top1_true = y_true >= thr_true[1]
            top1_pred = y_pred >= thr_pred[1]
    with clock("(transform)"):
        vt, vp = (y_true, y_pred) if transform is None else (transform(y_true.astype(np.float64)), transform(y_pred.astype(np.float64)))
    value_metrics = {
        "mse": lambda: mse(vt, vp),
        "gwcorr": lambda: pearson(vt, vp),
        "mse1obs": lambda: _masked_mse(vt, vp, top1_true),
        "mse1imp": lambda: _masked_mse(vt, vp, top1_pred),
        "match1": lambda: _overlap_fraction(top1_true, top1_pred),
        "catch1obs": lambda: _overlap_fraction(top1_true, y_pred >= thr_pred[5]),
        "catch1imp": lambda: _overlap_fraction(y_true >= thr_true[5], top1_pred),
        "msevar": lambda: float("nan") if variance is None else msevar(vt, vp, variance),
    }
    for name in sorted(needed & set(value_metrics)):
        with clock(name):
            out[name] = value_metrics[name]()
    if need_ranks:
        with clock("(ranks)"):
            r_pred = doubled_ranks(y_pred, s_pred)
            s_pred = None  # free the sorted copy before the next rank pass
        if "aucobs1" in needed:
            with clock("aucobs1"):
                out["aucobs1"] = _auc_from_ranks(top1_true, r_pred, scale=2.0)
        if needed & {"gwspear", "aucimp1"}:
            with clock("(ranks)"):
                r_true = doubled_ranks(y_true, s_true)
                s_true = None
            if "aucimp1" in needed:
                with clock("aucimp1"):
                    out["aucimp1"] = _auc_from_ranks(top1_pred, r_true, scale=2.0)
            if "gwspear" in needed:
                with clock("gwspear"):
                    out["gwspear"] = pearson(r_true, r_pred)
            del r_true
        del r_pred
    if needed & set(REGION_METRICS):
        with clock("(region prefix sums)"):
            csum = _cumulative_sq_error(vt, vp)
        for name in sorted(needed & set(REGION_METRICS)):
            with clock(name):
                lohi = regions.get(REGION_OF[name])
                out[name] = float("nan") if lohi is None else _region_mse_from_cumsum(csum, *lohi)
        del csum
    return {label: float(out[fn]) for label, fn in wanted.items()}
