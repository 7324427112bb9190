"""Model factors in the store beside the signal.

Variables: ``biosample_factors (biosample, factor_biosample)``, ``assay_factors (assay,
factor_assay)``, and genome factors at genome-wide indexing, NaN where nothing was fitted:
``genome_factors_25bp (position, factor_25bp)``, ``genome_factors_250bp (position_250bp,
factor_250bp)`` (row = position // 10) and ``genome_factors_5kbp (position_5kbp, factor_5kbp)``
(row = position // 200), as :data:`~epitensor.store.schema.FACTOR_RESOLUTIONS` says. Only the rows
given are written, so blocks fitted separately (stage 2) fill the same variables without touching
each other's chunks when they are 5 kbp-aligned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

from ..genome import Genome
from .codecs import compressors
from .metadata import sync_metadata
from .open import open_group
from .schema import FACTOR_RESOLUTIONS, label_index


def _array(path, root: zarr.Group, name: str, shape, chunks, dims) -> zarr.Array:
    """The float32 array ``name`` with this shape, created (NaN-filled) or replaced if it differs."""
    if name in root:
        arr = root[name]
        if tuple(arr.shape) == tuple(shape):
            return arr
        del root[name]
    arr = root.create_array(name, shape=shape, chunks=chunks, dtype="float32", fill_value=np.nan,
                            dimension_names=dims,
                            compressors=compressors())
    sync_metadata(path)
    return arr


def write_embedding(path, kind: str, factors: pd.DataFrame) -> None:
    """Write a biosample/assay factor table (rows = labels) as ``{kind}_factors``; rows of the
    store's labels the model lacks stay NaN."""
    root = open_group(path, mode="r+")
    labels = root[kind][:]
    arr = _array(path, root, f"{kind}_factors", (len(labels), factors.shape[1]), (len(labels), factors.shape[1]),
                 (kind, f"factor_{kind}"))
    full = np.full(arr.shape, np.nan, dtype=np.float32)
    full[label_index(labels, factors.index.tolist(), kind)] = factors.to_numpy(np.float32)
    arr[:] = full


def write_genome_factors(path, rows, tables) -> None:
    """Write the three genome tables (numpy, rows as in ``rows``) at genome-wide indexing.

    Parameters
    ----------
    rows : GenomeRows
        The sorted positions (``rows.positions``) and coarse rows (``rows.coarse[res]``) of the
        tables (:class:`epitensor.model.GenomeRows`).
    tables : list of 3 arrays
        The 25 bp, 250 bp and 5 kbp tables, in the order of ``FACTOR_RESOLUTIONS``.
    """
    root = open_group(path, mode="r+")
    genome = Genome.from_attrs(root.attrs)
    for (res, step), table in zip(FACTOR_RESOLUTIONS.items(), tables):
        dim = "position" if step == 1 else f"position_{res}"
        n = -(-genome.n_positions // step)
        chunk = max(1, genome.chunk_bins // step)
        arr = _array(path, root, f"genome_factors_{res}", (n, table.shape[1]), (chunk, table.shape[1]), (dim, f"factor_{res}"))
        index = rows.positions if step == 1 else rows.coarse[res]
        for lo, hi in runs(index):
            arr[index[lo]: index[hi - 1] + 1] = table[lo:hi]


def read_store_rows(root: zarr.Group, res: str, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted, unique) of the store's ``genome_factors_{res}``, read run by run."""
    arr = root[f"genome_factors_{res}"]
    out = np.empty((len(index), arr.shape[1]), dtype=np.float32)
    for lo, hi in runs(index):
        out[lo:hi] = arr[int(index[lo]) : int(index[hi - 1]) + 1]
    return out


def runs(index: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ranges of consecutive values in the sorted ``index``.

    Examples
    --------
    >>> [(int(lo), int(hi)) for lo, hi in runs(np.array([3, 4, 5, 9, 10]))]
    [(0, 3), (3, 5)]
    """
    if not len(index):
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    return list(zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(index)]])))
