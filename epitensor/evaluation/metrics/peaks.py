"""Peak-level metrics (average precision, EPR) and the window averaging that feeds them."""

from __future__ import annotations

import numpy as np

from .ranks import sorted_with_order


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
