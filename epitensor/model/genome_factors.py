"""Genome factors for any positions: the model's own tables (stage 1) and stage-2 blocks in a store.

After stage 2 the genome factors of a fitted block live in the store (``genome_factors_25bp``,
``_250bp``, ``_5kbp`` at genome-wide indexing, with a completion marker naming the model's
fingerprint); the stage-1 training region's factors live in the model. :func:`assemble_tables`
builds small tables covering just the positions asked for, :func:`with_genome_tables` wraps them
around the frozen network without copying it, and :func:`genome_rows` picks the source of each
position for a prediction.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import zarr
from torch import nn

from ..exceptions import DataError
from ..store import Intervals, fitted_intervals, has_fitted_factors, open_group, read_store_rows
from .module import GENOME_TABLES, AvocadoModule
from .positions import RESOLUTIONS, GenomeRows


def assemble_tables(root: zarr.Group | None, positions, in_store, source=None, what: str = "these positions"):
    """Genome tables for ``positions``: rows of the store where ``in_store``, else from ``source``.

    Parameters
    ----------
    root : zarr.Group or None
        The opened store (None when nothing comes from it).
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


def module_tables(module: AvocadoModule) -> list[torch.Tensor]:
    """The weights of the module's three genome tables (gathered row by row on use)."""
    return [t.weight for t in module.genome_tables()]


def factors_store(path):
    """``path`` if the store there holds stage-2 genome factors (a ``genome_fit/factors`` group), else None."""
    return path if path is not None and has_fitted_factors(path) else None


def stage2_intervals(store, fingerprint) -> Intervals:
    """Positions with stage-2 genome factors of the model ``fingerprint`` (a callable) in ``store``.

    The fingerprint is computed only when ``store`` holds stage-2 factors at all.
    """
    path = factors_store(store)
    return Intervals([]) if path is None else fitted_intervals(path, fingerprint())


def genome_rows(module: AvocadoModule, rows: GenomeRows, store, intervals: Intervals, positions, device,
                what: str = "these positions"):
    """``(module, (r25, r250, r5k))`` to predict at ``positions``.

    Positions inside the stage-2 ``intervals`` of ``store`` take their genome factors from the store;
    the others from ``module``'s own tables (rows ``rows``). With no stage-2 block involved this is
    ``module`` itself and its rows.

    Raises
    ------
    RegionError
        Positions with genome factors in neither.
    """
    positions = np.asarray(positions, dtype=np.int64)
    in_store = intervals.covers(positions)
    if not in_store.any():
        return module, rows.rows(positions, what)
    uniq, inverse = np.unique(positions, return_inverse=True)
    uniq_in_store = intervals.covers(uniq)
    if (~uniq_in_store).any():
        rows.rows(uniq[~uniq_in_store], what)  # raises for positions fitted nowhere
    root = open_group(factors_store(store), mode="r")
    local, tables = assemble_tables(root, uniq, uniq_in_store, (rows, module_tables(module)), what)
    return with_genome_tables(module, tables, device), tuple(r[inverse] for r in local.rows(uniq))


def check_covered(rows: GenomeRows, intervals: Intervals, positions, what: str) -> None:
    """Raise RegionError if some ``positions`` have genome factors neither in ``rows`` nor in ``intervals``."""
    positions = np.asarray(positions, dtype=np.int64)
    rest = positions[~intervals.covers(positions)]
    if rest.size:
        rows.rows(rest, what)


__all__ = ["assemble_tables", "check_covered", "factors_store", "genome_rows", "module_tables", "stage2_intervals",
           "with_genome_tables"]
