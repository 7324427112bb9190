"""Imputation metrics of the Avocado papers and of the ENCODE Imputation Challenge (EIC).

Every metric follows the challenge's scoring code (``score_metrics.py`` / ``score.py`` of
ENCODE-DCC/imputation_challenge) definition for definition:

============  ==============================================================================
mse           mean squared error over all bins (the paper's ``mseGlobal``)
gwcorr        Pearson correlation (``numpy.corrcoef``)
gwspear       Spearman correlation (Pearson of average ranks, as ``scipy.stats.spearmanr``)
mse1obs       MSE over bins whose observed value is >= the value at rank ``int(0.01 N)``
              from the top (ties at the threshold are kept, so possibly more than 1%)
mse1imp       the same with the threshold taken on the imputed track
mseprom       MSE pooled over promoters: + strand bins ``[s-80, s)``, - strand ``[e, e+80)``
              with ``s = start // 25``, ``e = end // 25 + 1``; bins in several genes count
              once per gene (the challenge sums per gene, then divides)
msegene       MSE pooled over gene bodies ``[s, e)``
mseenh        MSE pooled over enhancers ``[start // 25, end // 25 + 1)``
msevar        squared error weighted by the per-bin variance of the assay across biosamples
              (population variance), divided by the sum of the weights
match1        fraction of the top-1% observed bins that are top-1% imputed bins
catch1obs     fraction of the top-1% observed bins within the top-5% imputed bins
catch1imp     fraction of the top-1% imputed bins within the top-5% observed bins
aucobs1       ROC AUC of the imputed values for telling the top-1% observed bins
aucimp1       ROC AUC of the observed values for telling the top-1% imputed bins
============  ==============================================================================

The challenge reports ``match1``/``catch1obs``/``catch1imp`` as counts; epitensor reports them
as fractions of ``n = int(0.01 N)`` (count = fraction * n), so tracks of different lengths compare.

All rank-based work (thresholds, Spearman, AUCs) shares two sorts per track pair, done with a
packed 64-bit key sort (value bits and index in one integer), which is several times faster
than ``numpy.argsort``. Ranks are invariant under a strictly increasing transform, so with
``transform=np.sinh`` (the challenge's untransformed scale) ranks come from the arcsinh values
and only the value-based metrics see the transformed values.

Examples
--------
>>> import numpy as np
>>> y_true = np.array([0.0, 1.0, 2.0, 3.0])
>>> y_pred = np.array([0.0, 1.0, 2.0, 5.0])
>>> mse(y_true, y_pred)
1.0
>>> round(gwspear(y_true, y_pred), 6)
1.0
"""

from __future__ import annotations

import time

import numpy as np

from ..exceptions import DataError

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
_REGION_OF = {"mseprom": "promoters", "msegene": "genes", "mseenh": "enhancers"}
_CHUNK = 1 << 22


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` means a better imputation.

    Examples
    --------
    >>> higher_is_better("gwcorr"), higher_is_better("mseGlobal")
    (True, False)
    """
    return PAPER_METRICS.get(metric, metric) in HIGHER_IS_BETTER


# ---------------------------------------------------------------------------- validation
def _pair(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise DataError(f"y_true and y_pred must be 1-D arrays of equal length, got shapes {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise DataError("cannot score empty tracks (no bins left after masking)")
    return y_true, y_pred


def _chunks(n: int):
    for lo in range(0, n, _CHUNK):
        yield slice(lo, min(lo + _CHUNK, n))


# ---------------------------------------------------------------------------- building blocks
def sorted_with_order(x) -> tuple[np.ndarray, np.ndarray]:
    """``(np.sort(x), np.argsort(x, kind="stable"))`` computed with one packed-key sort.

    For float32 input the value's order-preserving bits and the index are packed into one
    uint64 and sorted with numpy's vectorised sort; other dtypes fall back to ``argsort``.

    Examples
    --------
    >>> xs, order = sorted_with_order(np.array([3.0, -1.0, 3.0, 0.5], dtype=np.float32))
    >>> xs.tolist(), order.tolist()
    ([-1.0, 0.5, 3.0, 3.0], [1, 3, 0, 2])
    """
    x = np.asarray(x)
    if x.dtype == np.float32 and x.size < 2**32:
        n = x.size
        key = np.empty(n, dtype=np.uint64)
        for s in _chunks(n):  # order-preserving bits of the value in the high word, index in the low
            bits = (x[s] + np.float32(0.0)).view(np.uint32).astype(np.uint64)  # -0.0 -> 0.0 (they tie)
            flip = (bits >> np.uint64(31)) * np.uint64(0x7FFFFFFF) + np.uint64(0x80000000)
            key[s] = ((bits ^ flip) << np.uint64(32)) | np.arange(s.start, s.stop, dtype=np.uint64)
        key.sort()
        order = np.bitwise_and(key, np.uint64(0xFFFFFFFF), out=key).view(np.int64)  # in place
        return x[order], order
    order = np.argsort(x, kind="stable")
    return x[order], order


def average_ranks(x, _sorted=None) -> np.ndarray:
    """1-based ranks with ties given their average rank (``scipy.stats.rankdata(x)``).

    Examples
    --------
    >>> average_ranks(np.array([10.0, 20.0, 10.0, 5.0])).tolist()
    [2.5, 4.0, 2.5, 1.0]
    """
    return doubled_ranks(x, _sorted) / 2.0


def doubled_ranks(x, _sorted=None) -> np.ndarray:
    """Twice the average ranks, as exact int64 (half the memory traffic of float ranks).

    The tie group of each sorted position is found with running max/min scans (first and last
    index of the group), so no per-group arrays are built: peak memory is two int64 arrays.

    Examples
    --------
    >>> doubled_ranks(np.array([10.0, 20.0, 10.0, 5.0])).tolist()
    [5, 8, 5, 2]
    """
    xs, order = _sorted if _sorted is not None else sorted_with_order(x)
    n = xs.size
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    for s in _chunks(n):
        idx = np.arange(s.start, s.stop, dtype=np.int64)
        lo, hi = s.start, s.stop
        starts = np.empty(hi - lo, dtype=bool)
        starts[0] = lo == 0 or xs[lo] != xs[lo - 1]
        np.not_equal(xs[lo + 1 : hi], xs[lo : hi - 1], out=starts[1:])
        ends = np.empty(hi - lo, dtype=bool)
        ends[-1] = hi == n or xs[hi - 1] != xs[hi]
        ends[:-1] = starts[1:]
        first[s] = np.where(starts, idx, 0)
        last[s] = np.where(ends, idx, n)
    np.maximum.accumulate(first, out=first)  # first index of each position's tie group
    rev = last[::-1]
    np.minimum.accumulate(rev, out=rev)  # last index of each position's tie group
    first += last
    first += 2  # 2 * mean 1-based rank = first + last + 2
    last[order] = first  # back to the input order, reusing the buffer
    return last


def top_threshold(xs_sorted, fraction: float = 0.01, multiple: int = 1) -> float:
    """The challenge's top-``fraction`` threshold: ``sorted[-int(fraction * N) * multiple]``.

    Bins ``>=`` the threshold are "top"; ``multiple=5`` gives the top-5% threshold the
    challenge uses in catch1obs/catch1imp (``-n * 5``).
    """
    n = int(xs_sorted.shape[0] * fraction)
    return xs_sorted[-n * multiple]


def _top_thresholds(y) -> dict[int, float]:
    """The top-1% and top-5% thresholds of :func:`top_threshold` from one value sort (no argsort)."""
    size = y.shape[0]
    n = int(size * 0.01)
    if n == 0:  # the challenge's sorted[-0] is the minimum
        return {1: y.min(), 5: y.min()}
    ys = np.sort(y)  # numpy's vectorised sort beats np.partition here
    return {1: ys[size - n], 5: ys[size - 5 * n]}


def pearson(x, y) -> float:
    """Pearson correlation accumulated in float64 chunks (``numpy.corrcoef(x, y)[0, 1]``)."""
    x, y = _pair(x, y)
    n = x.size
    sx = sy = 0.0
    for s in _chunks(n):
        sx += float(np.sum(x[s], dtype=np.float64))
        sy += float(np.sum(y[s], dtype=np.float64))
    mx, my = sx / n, sy / n
    sxx = syy = sxy = 0.0
    for s in _chunks(n):
        dx = x[s].astype(np.float64) - mx
        dy = y[s].astype(np.float64) - my
        sxx += float(dx @ dx)
        syy += float(dy @ dy)
        sxy += float(dx @ dy)
    if sxx == 0.0 or syy == 0.0:
        return float("nan")
    return float(sxy / np.sqrt(sxx * syy))


def _sq_error_sum(x, y, where=None) -> tuple[float, int]:
    total, count = 0.0, 0
    for s in _chunks(x.size):
        d = x[s].astype(np.float64) - y[s]
        if where is not None:
            d = d[where[s]]
        total += float(d @ d)
        count += d.size
    return total, count


def _auc_from_ranks(labels, score_ranks, scale: float = 1.0) -> float:
    """ROC AUC from average ranks of the scores (Mann-Whitney U; equals sklearn's roc_auc_score).

    ``scale=2`` for :func:`doubled_ranks`.
    """
    n_pos = int(np.count_nonzero(labels))
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(np.sum(score_ranks[labels])) / scale
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


# ---------------------------------------------------------------------------- single metrics
def mse(y_true, y_pred) -> float:
    """Mean squared error (the paper's mseGlobal; the challenge's mse).

    Examples
    --------
    >>> mse([0.0, 2.0], [1.0, 2.0])
    0.5
    """
    y_true, y_pred = _pair(y_true, y_pred)
    total, count = _sq_error_sum(y_true, y_pred)
    return total / count


def gwcorr(y_true, y_pred) -> float:
    """Genome-wide Pearson correlation.

    Examples
    --------
    >>> round(gwcorr([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]), 4)
    0.9979
    """
    return pearson(y_true, y_pred)


def gwspear(y_true, y_pred) -> float:
    """Genome-wide Spearman correlation (average ranks for ties).

    Examples
    --------
    >>> gwspear([1.0, 2.0, 3.0], [1.0, 10.0, 100.0])
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return pearson(average_ranks(y_true), average_ranks(y_pred))


def mse1obs(y_true, y_pred) -> float:
    """MSE over the top-1% bins of the observed track (ties at the threshold included).

    Examples
    --------
    >>> y = np.arange(200.0)
    >>> mse1obs(y, y + np.r_[np.zeros(198), 1.0, 3.0])   # top 2 bins: errors 1 and 3
    5.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    top = y_true >= top_threshold(np.sort(y_true))
    return _sq_error_sum(y_true, y_pred, top)[0] / int(top.sum())


def mse1imp(y_true, y_pred) -> float:
    """MSE over the top-1% bins of the imputed track.

    Examples
    --------
    >>> y = np.arange(200.0)
    >>> mse1imp(y, y + np.r_[np.zeros(198), 1.0, 3.0])
    5.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    top = y_pred >= top_threshold(np.sort(y_pred))
    return _sq_error_sum(y_true, y_pred, top)[0] / int(top.sum())


def _overlap_fraction(a, a_multiple, b, b_multiple) -> float:
    n = int(a.size * 0.01)
    if n == 0:
        return float("nan")
    top_a = a >= top_threshold(np.sort(a), multiple=a_multiple)
    top_b = b >= top_threshold(np.sort(b), multiple=b_multiple)
    return int(np.count_nonzero(top_a & top_b)) / n


def match1(y_true, y_pred) -> float:
    """Fraction of the top-1% observed bins that are also top-1% imputed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> match1(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _overlap_fraction(y_true, 1, y_pred, 1)


def catch1obs(y_true, y_pred) -> float:
    """Fraction of the top-1% observed bins found within the top-5% imputed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> catch1obs(y, -y)
    0.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _overlap_fraction(y_true, 1, y_pred, 5)


def catch1imp(y_true, y_pred) -> float:
    """Fraction of the top-1% imputed bins found within the top-5% observed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> catch1imp(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _overlap_fraction(y_true, 5, y_pred, 1)


def aucobs1(y_true, y_pred) -> float:
    """ROC AUC of the imputed values at recovering the top-1% observed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> aucobs1(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _auc_from_ranks(y_true >= top_threshold(np.sort(y_true)), average_ranks(y_pred))


def aucimp1(y_true, y_pred) -> float:
    """ROC AUC of the observed values at recovering the top-1% imputed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> aucimp1(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _auc_from_ranks(y_pred >= top_threshold(np.sort(y_pred)), average_ranks(y_true))


def region_mse(y_true, y_pred, lo, hi) -> float:
    """MSE pooled over intervals ``[lo, hi)`` of array indices (bins in k intervals count k times).

    This is the challenge's mseprom/msegene/mseenh once the intervals are mapped to indices
    (see :func:`epitensor.evaluation.annotations.region_indices`). NaN when no interval has a bin.

    Examples
    --------
    >>> region_mse([0.0, 0.0, 0.0], [1.0, 2.0, 0.0], lo=[0, 1], hi=[2, 2])   # bins 0,1 and 1
    3.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _region_mse_from_cumsum(_cumulative_sq_error(y_true, y_pred), lo, hi)


def _cumulative_sq_error(y_true, y_pred) -> np.ndarray:
    out = np.empty(y_true.size + 1, dtype=np.float64)
    out[0] = 0.0
    for s in _chunks(y_true.size):
        d = y_true[s].astype(np.float64) - y_pred[s]
        np.multiply(d, d, out=out[s.start + 1 : s.stop + 1])
    np.cumsum(out, out=out)
    return out


def _region_mse_from_cumsum(csum, lo, hi, n=None) -> float:
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    n = int(np.sum(hi - lo)) if n is None else n
    if n == 0:
        return float("nan")
    return float(np.sum(csum[hi] - csum[lo])) / n


def msevar(y_true, y_pred, variance) -> float:
    """Squared error weighted by the per-bin ``variance`` of the assay across biosamples.

    ``((y_true - y_pred) ** 2) @ variance / variance.sum()``, as the challenge's ``msevar``
    (whose variance is ``numpy.std(all_tracks_of_the_assay, axis=0) ** 2``).

    Examples
    --------
    >>> msevar([0.0, 0.0], [1.0, 3.0], variance=[1.0, 0.0])
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    variance = np.asarray(variance)
    if variance.shape != y_true.shape:
        raise DataError(f"variance has shape {variance.shape} but the tracks have {y_true.shape}")
    num = den = 0.0
    for s in _chunks(y_true.size):
        d = y_true[s].astype(np.float64) - y_pred[s]
        w = variance[s].astype(np.float64)
        num += float((d * d) @ w)
        den += float(w.sum())
    return num / den if den > 0 else float("nan")


# ---------------------------------------------------------------------------- peak metrics
def average_precision(labels, scores) -> float:
    """Average precision of ``scores`` for binary ``labels`` (``sklearn.metrics.average_precision_score``).

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds, highest first.

    Examples
    --------
    >>> average_precision([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.5])
    0.8333333333333333
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    xs, order = sorted_with_order(scores)
    order = order[::-1]
    xs = xs[::-1]
    tp = np.cumsum(labels[order], dtype=np.int64)
    last = np.flatnonzero(np.r_[xs[1:] != xs[:-1], True])  # last index of each tie group
    tp = tp[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def epr(labels, scores) -> float:
    """Precision at the threshold where the number of predicted positives equals the number of peaks.

    The threshold is the k-th largest score, k = number of positive windows; windows ``>=`` it are
    predicted positive (ties at the threshold are all predicted, as in the challenge's top-k rule).

    Examples
    --------
    >>> epr([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.5])
    0.5
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores)
    k = int(labels.sum())
    if k == 0:
        return float("nan")
    threshold = np.partition(scores, scores.size - k)[scores.size - k]
    predicted = scores >= threshold
    return int(np.count_nonzero(labels & predicted)) / int(np.count_nonzero(predicted))


def window_mean(values, factor: int) -> np.ndarray:
    """Average consecutive groups of ``factor`` bins (the last group averages what it has).

    Examples
    --------
    >>> window_mean(np.arange(5.0), 2).tolist()
    [0.5, 2.5, 4.0]
    """
    values = np.asarray(values, dtype=np.float64)
    if factor == 1:
        return values
    n_full = values.size // factor
    out = values[: n_full * factor].reshape(n_full, factor).mean(axis=1)
    if values.size % factor:
        out = np.r_[out, values[n_full * factor :].mean()]
    return out


# ---------------------------------------------------------------------------- all at once
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
            thr_true = {k: top_threshold(s_true[0], multiple=k) for k in (1, 5)}
            thr_pred = {k: top_threshold(s_pred[0], multiple=k) for k in (1, 5)}
        elif top_based:  # thresholds only: a value sort, no ranks
            thr_true, thr_pred = _top_thresholds(y_true), _top_thresholds(y_pred)
        if top_based:
            top1_true = y_true >= thr_true[1]
            top1_pred = y_pred >= thr_pred[1]
    with clock("(transform)"):
        vt, vp = (y_true, y_pred) if transform is None else (transform(y_true.astype(np.float64)), transform(y_pred.astype(np.float64)))
    n1 = int(y_true.size * 0.01)
    for name in sorted(needed):
        with clock(name):
            if name == "mse":
                out[name] = mse(vt, vp)
            elif name == "gwcorr":
                out[name] = pearson(vt, vp)
            elif name == "mse1obs":
                out[name] = _sq_error_sum(vt, vp, top1_true)[0] / int(top1_true.sum())
            elif name == "mse1imp":
                out[name] = _sq_error_sum(vt, vp, top1_pred)[0] / int(top1_pred.sum())
            elif name == "match1":
                out[name] = int(np.count_nonzero(top1_true & top1_pred)) / n1 if n1 else float("nan")
            elif name == "catch1obs":
                top5 = y_pred >= thr_pred[5]
                out[name] = int(np.count_nonzero(top1_true & top5)) / n1 if n1 else float("nan")
            elif name == "catch1imp":
                top5 = y_true >= thr_true[5]
                out[name] = int(np.count_nonzero(top5 & top1_pred)) / n1 if n1 else float("nan")
            elif name == "msevar":
                out[name] = float("nan") if variance is None else msevar(vt, vp, variance)
    if needed & {"gwspear", "aucobs1", "aucimp1"}:
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
                lohi = regions.get(_REGION_OF[name])
                out[name] = float("nan") if lohi is None else _region_mse_from_cumsum(csum, *lohi)
        del csum
    return {label: float(out[fn]) for label, fn in wanted.items()}
