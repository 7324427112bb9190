"""Track metrics: value-based (MSE, Pearson, region and variance-weighted MSE) and top-1% ones.

Each function validates one pair of 1-D tracks and scores it alone; :func:`epitensor.evaluation.
metrics.score_arrays` calls the same kernels with the sorts and thresholds shared between them.
"""

from __future__ import annotations

import numpy as np

from ...exceptions import DataError
from .ranks import _auc_from_ranks, _chunks, average_ranks, top_mask


def _pair(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise DataError(f"y_true and y_pred must be 1-D arrays of equal length, got shapes {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise DataError("cannot score empty tracks (no bins left after masking)")
    return y_true, y_pred



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


def _masked_mse(y_true, y_pred, where) -> float:
    """MSE over the bins where ``where`` is true (mse1obs/mse1imp given their top sets)."""
    return _sq_error_sum(y_true, y_pred, where)[0] / int(where.sum())


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
    return _masked_mse(y_true, y_pred, top_mask(y_true))


def mse1imp(y_true, y_pred) -> float:
    """MSE over the top-1% bins of the imputed track.

    Examples
    --------
    >>> y = np.arange(200.0)
    >>> mse1imp(y, y + np.r_[np.zeros(198), 1.0, 3.0])
    5.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _masked_mse(y_true, y_pred, top_mask(y_pred))


def _overlap_fraction(top_a, top_b) -> float:
    """Bins in both top sets, as a fraction of ``n = int(0.01 N)`` (NaN when ``n`` is 0)."""
    n = int(top_a.size * 0.01)
    if n == 0:
        return float("nan")
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
    return _overlap_fraction(top_mask(y_true), top_mask(y_pred))


def catch1obs(y_true, y_pred) -> float:
    """Fraction of the top-1% observed bins found within the top-5% imputed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> catch1obs(y, -y)
    0.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _overlap_fraction(top_mask(y_true), top_mask(y_pred, multiple=5))


def catch1imp(y_true, y_pred) -> float:
    """Fraction of the top-1% imputed bins found within the top-5% observed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> catch1imp(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _overlap_fraction(top_mask(y_true, multiple=5), top_mask(y_pred))


def aucobs1(y_true, y_pred) -> float:
    """ROC AUC of the imputed values at recovering the top-1% observed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> aucobs1(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _auc_from_ranks(top_mask(y_true), average_ranks(y_pred))


def aucimp1(y_true, y_pred) -> float:
    """ROC AUC of the observed values at recovering the top-1% imputed bins.

    Examples
    --------
    >>> y = np.arange(1000.0)
    >>> aucimp1(y, y)
    1.0
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return _auc_from_ranks(top_mask(y_pred), average_ranks(y_true))


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
