"""Sorts, ranks and top-fraction thresholds shared by the rank-based metrics.

All rank-based work (thresholds, Spearman, AUCs) shares two sorts per track pair, done with a
packed 64-bit key sort (value bits and index in one integer) instead of ``numpy.argsort``.
"""

from __future__ import annotations

import numpy as np

#: Bins per chunk of the chunked scans and sums (bounds their temporary memory).
CHUNK_BINS = 1 << 22


def _chunks(n: int):
    for lo in range(0, n, CHUNK_BINS):
        yield slice(lo, min(lo + CHUNK_BINS, n))


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


def top_thresholds(xs_sorted) -> dict[int, float]:
    """The top-1% and top-5% thresholds of :func:`top_threshold`, keyed by their multiple.

    Examples
    --------
    >>> top_thresholds(np.arange(1000.0))
    {1: np.float64(990.0), 5: np.float64(950.0)}
    """
    return {k: top_threshold(xs_sorted, multiple=k) for k in (1, 5)}


def top_mask(y, multiple: int = 1) -> np.ndarray:
    """Whether each bin of ``y`` is among its top ``multiple`` percent (ties at the threshold included).

    Examples
    --------
    >>> top_mask(np.arange(200.0)).nonzero()[0].tolist()
    [198, 199]
    """
    return y >= top_threshold(np.sort(y), multiple=multiple)




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


