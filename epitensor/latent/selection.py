"""Functionally diverse selection: which biosamples (or positions) to measure next.

Given factors, :func:`select_diverse` picks ``k`` rows greedily so that every row is close to a
picked one. ``method="facility"`` maximises facility-location coverage (the mean, over all rows,
of the kernel similarity to the nearest pick; a submodular objective, so the greedy picks are
within 1 - 1/e of the best set), ``method="farthest"`` picks the row farthest from those already
picked. Rows that are already measured count as picked from the start (``already=``), so the
picks fill the gaps they leave: :func:`diverse_biosamples_for_assay` does this for one assay.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from epitensor.latent import select_diverse
>>> centres = np.array([[0, 0], [10, 0], [0, 10]])
>>> x = np.repeat(centres, 5, axis=0) + np.random.default_rng(0).normal(0, 0.3, (15, 2))
>>> picks = select_diverse(pd.DataFrame(x, index=[f"s{i}" for i in range(15)]), 3)
>>> sorted(int(label[1:]) // 5 for label in picks.label)
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, LabelError
from .similarity import factor_table, pairwise_distances

SELECTION_METHODS = ("facility", "farthest")
#: Most rows :func:`select_diverse` takes (it holds two rows x rows float64 matrices).
MAX_ROWS = 10_000


def _kernel(distance: np.ndarray, bandwidth: float | None) -> tuple[np.ndarray, float]:
    if bandwidth is None:
        off = distance[~np.eye(len(distance), dtype=bool)]
        bandwidth = float(np.median(off)) if off.size and np.median(off) > 0 else 1.0
    return np.exp(-(distance**2) / (2 * bandwidth**2)), bandwidth


def _positions_of(labels, index: pd.Index, what: str) -> np.ndarray:
    labels = list(labels)
    where = index.get_indexer(labels)
    if (where < 0).any():
        missing = [lab for lab, w in zip(labels, where, strict=True) if w < 0]
        raise LabelError(f"{what} {missing[:5]} are not rows of the factors (rows: {index.tolist()[:5]}...)")
    return where


def select_diverse(factors, k: int, *, method: str = "facility", candidates=None, already=(),
                   bandwidth: float | None = None) -> pd.DataFrame:
    """Greedily pick ``k`` functionally diverse rows of ``factors``.

    Parameters
    ----------
    factors : DataFrame, DataArray or array
        E.g. ``model.factors("biosample")`` or genome factors at candidate positions.
    k : int
        Rows to pick (at most the number of candidates). At most :data:`MAX_ROWS` rows in all:
        subsample genome positions first.
    method : {"facility", "farthest"}
    candidates : labels, optional
        Rows that may be picked (default: every row not in ``already``).
    already : labels, optional
        Rows counted as picked before the first pick (e.g. biosamples already measured).
    bandwidth : float, optional
        Width of the Gaussian kernel on Euclidean factor distances (default: their median).

    Returns
    -------
    DataFrame
        One row per pick in order: ``pick`` (1 = first), ``label``, ``coverage`` (facility-location
        coverage of all rows after the pick, between 0 and 1), ``gain`` (coverage it added) and
        ``distance`` (to the nearest row picked or given before it). Ties go to the earlier row.

    Examples
    --------
    >>> f = pd.DataFrame([[0.0], [0.1], [5.0]], index=["a", "b", "c"])
    >>> select_diverse(f, 1, already=["a"]).label.tolist()
    ['c']
    """
    if method not in SELECTION_METHODS:
        raise ArgumentError(f"method must be one of {SELECTION_METHODS}, got {method!r}")
    table = factor_table(factors)
    if len(table) > MAX_ROWS:
        raise ArgumentError(f"{len(table):,} rows: selection compares every pair of rows, so it takes at most "
                            f"{MAX_ROWS:,}; subsample the candidates first (e.g. every 20th bin: .isel(position=slice(0, None, 20)))")
    x = table.to_numpy()
    given = _positions_of(already, table.index, "already-picked rows")
    pool = (_positions_of(candidates, table.index, "candidates") if candidates is not None
            else np.setdiff1d(np.arange(len(x)), given))
    pool = np.setdiff1d(pool, given)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(pool):
        raise ArgumentError(f"k must be a whole number from 1 to {len(pool)} (the candidates), got {k!r}")
    distance = pairwise_distances(x)
    sim, _ = _kernel(distance, bandwidth)
    best = sim[:, given].max(axis=1) if len(given) else np.zeros(len(x))
    nearest = distance[:, given].min(axis=1) if len(given) else np.full(len(x), np.inf)
    chosen, rows = [], []
    for pick in range(1, int(k) + 1):
        open_pool = np.setdiff1d(pool, chosen, assume_unique=True)
        if method == "facility":
            gains = np.maximum(sim[:, open_pool], best[:, None]).mean(axis=0) - best.mean()
            j = open_pool[int(np.argmax(gains))]
        elif len(given) or chosen:
            j = open_pool[int(np.argmax(nearest[open_pool]))]
        else:  # the first farthest-point pick: the most central row
            j = open_pool[int(np.argmax(sim[:, open_pool].sum(axis=0)))]
        before = best.mean()
        rows.append({"pick": pick, "label": table.index[j], "distance": float(nearest[j])})
        best = np.maximum(best, sim[:, j])
        nearest = np.minimum(nearest, distance[:, j])
        rows[-1].update(coverage=float(best.mean()), gain=float(best.mean() - before))
        chosen.append(j)
    return pd.DataFrame(rows, columns=["pick", "label", "coverage", "gain", "distance"])


def diverse_biosamples_for_assay(biosample_factors, observed, assay: str, k: int, *,
                                 method: str = "facility") -> pd.DataFrame:
    """The ``k`` biosamples to run ``assay`` in next, so that with the biosamples already measured
    for it they cover the biosample space (the set-wise counterpart of
    :func:`epitensor.evaluation.rank_next_experiments`, which ranks pairs one by one).

    Parameters
    ----------
    biosample_factors : DataFrame or DataArray
        ``model.factors("biosample")``.
    observed : DataArray (biosample, assay) of bool
        ``ds.observed``: which tracks are measured.
    assay : str
    k : int
    method : {"facility", "farthest"}

    Returns
    -------
    DataFrame
        As :func:`select_diverse`, plus ``assay`` and ``measured_before`` (biosamples that had it).

    Examples
    --------
    >>> diverse_biosamples_for_assay(model.factors("biosample"), ds.observed, "H3K27ac", 3)  # doctest: +SKIP
    """
    table = factor_table(biosample_factors)
    if assay not in observed["assay"].values:
        raise LabelError(f"assay {assay!r} is not an assay of the store (assays: {list(observed.assay.values)[:8]})")
    column = observed.sel(assay=assay)
    measured = [b for b in column["biosample"].values[column.values.astype(bool)] if b in table.index]
    candidates = [b for b in column["biosample"].values[~column.values.astype(bool)] if b in table.index]
    if not candidates:
        raise ArgumentError(f"every biosample of the factors already has {assay!r} measured")
    picks = select_diverse(table, k, method=method, candidates=candidates, already=measured)
    return picks.assign(assay=assay, measured_before=len(measured))
