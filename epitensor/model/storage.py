"""Writing model factors into the store beside the signal (zarr chunk writes, like store.py).

Variables: ``biosample_factors (biosample, factor_biosample)``, ``assay_factors (assay,
factor_assay)``, and genome factors at genome-wide indexing, NaN where nothing was fitted:
``genome_factors_25bp (position, factor_25bp)``, ``genome_factors_250bp (position_250bp,
factor_250bp)`` (row = position // 10) and ``genome_factors_5kbp (position_5kbp, factor_5kbp)``
(row = position // 200). Only the rows given are written, so blocks fitted separately (stage 2) fill
the same variables without touching each other's chunks when they are 5 kbp-aligned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

from ..chunks import compressors
from ..genome import Genome
from ..store import _open_group, label_index, sync_metadata
from .positions import RESOLUTIONS, GenomeRows


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
    root = _open_group(path, mode="r+")
    labels = root[kind][:]
    arr = _array(path, root, f"{kind}_factors", (len(labels), factors.shape[1]), (len(labels), factors.shape[1]),
                 (kind, f"factor_{kind}"))
    full = np.full(arr.shape, np.nan, dtype=np.float32)
    full[label_index(labels, factors.index.tolist(), kind)] = factors.to_numpy(np.float32)
    arr[:] = full


def write_genome_factors(path, rows: GenomeRows, tables) -> None:
    """Write the three genome tables (numpy, rows as in ``rows``) at genome-wide indexing."""
    root = _open_group(path, mode="r+")
    genome = Genome.from_attrs(root.attrs)
    for (res, step), table in zip(RESOLUTIONS.items(), tables):
        dim = "position" if step == 1 else f"position_{res}"
        n = -(-genome.n_positions // step)
        chunk = max(1, genome.chunk_bins // step)
        arr = _array(path, root, f"genome_factors_{res}", (n, table.shape[1]), (chunk, table.shape[1]), (dim, f"factor_{res}"))
        index = rows.positions if step == 1 else rows.coarse[res]
        for lo, hi in _runs(index):
            arr[index[lo]: index[hi - 1] + 1] = table[lo:hi]


def _runs(index: np.ndarray):
    """Half-open ranges of consecutive values in the sorted ``index``."""
    if not len(index):
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    return list(zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(index)]])))
