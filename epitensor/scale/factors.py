"""Genome-factor tables for any set of positions, gathered from the store and/or the model.

After stage 2 the genome factors of a fitted block live in the store (``genome_factors_25bp``,
``_250bp``, ``_5kbp`` at genome-wide indexing); the stage-1 training region's factors live in the
model. :func:`assemble_tables` builds small tables covering just the positions asked for, and
:func:`with_genome_tables` wraps them around the frozen network without copying it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..exceptions import DataError
from ..model.module import GENOME_TABLES, AvocadoModule
from ..model.positions import RESOLUTIONS, GenomeRows
from ..store import read_store_rows


def assemble_tables(root, positions, in_store, source=None, what: str = "these positions"):
    """Genome tables for ``positions``: rows of the store where ``in_store``, else from ``source``.

    Parameters
    ----------
    root : zarr.Group or None
        The opened store (:func:`epitensor.store.open_zarr_group`; None when nothing comes from it).
    positions : array of int
        Sorted, unique genome-wide positions.
    in_store : array of bool
        Which positions take their factors from the store. Blocks are 5 kbp-aligned, so every 250 bp
        and 5 kbp row has a single source.
    source : (GenomeRows, list of 3 arrays), optional
        Rows and tables of the other positions (e.g. the model's stage-1 tables).

    Returns
    -------
    rows : GenomeRows
        Local rows of ``positions``.
    tables : list of 3 float32 arrays
    """
    local = GenomeRows(positions)
    in_store = np.asarray(in_store, dtype=bool)
    tables = []
    for k, (res, step) in enumerate(RESOLUTIONS.items()):
        index = local.positions if step == 1 else local.coarse[res]
        first = np.searchsorted(local.positions // step, index)  # a position of each row
        from_store = in_store[first]
        parts = {}
        if from_store.any():
            parts[True] = read_store_rows(root, res, index[from_store])
            if not np.isfinite(parts[True]).all():
                raise DataError(f"{what}: the store's {res} genome factors are missing (NaN) at positions marked fitted; "
                                "the store was edited after stage 2. Run fit_genome again with overwrite=True")
        if (~from_store).any():
            src_rows, src_tables = source
            rows = src_rows.rows(local.positions[first[~from_store]], what)[k]
            parts[False] = _take(src_tables[k], rows)
        width = next(iter(parts.values())).shape[1]
        table = np.empty((len(index), width), dtype=np.float32)
        for flag, values in parts.items():
            table[from_store == flag] = values
        tables.append(table)
    return local, tables


def _take(table, rows) -> np.ndarray:
    if isinstance(table, torch.Tensor):
        return table.detach()[torch.as_tensor(rows, device=table.device)].float().cpu().numpy()
    return np.asarray(table, dtype=np.float32)[rows]


def with_genome_tables(module: AvocadoModule, tables, device=None) -> AvocadoModule:
    """``module`` with its three genome tables replaced by ``tables`` (frozen).

    The network and biosample/assay tables are shared with ``module``, not copied; ``module`` itself
    is unchanged.
    """
    device = device or module.biosample.weight.device
    new = copy.copy(module)
    new._modules = dict(module._modules)
    for name, table in zip(GENOME_TABLES, tables):
        new._modules[name] = nn.Embedding.from_pretrained(torch.as_tensor(np.asarray(table), device=device), freeze=True)
    return new


def model_source(model) -> tuple[GenomeRows, list[np.ndarray]]:
    """The model's own (stage-1) genome rows and tables (torch weights; rows are gathered on use)."""
    return model.fitted_positions, [t.weight for t in model.module.genome_tables()]
