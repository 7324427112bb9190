"""What runs on a worker: fit one block's genome factors, impute one block; pure functions.

Each task is a pure function of (frozen model state, blocks, settings): it opens the store itself
(no file handle is ever pickled), reads the block's observed training tracks, builds fresh genome
tables seeded by the block, trains only them with the stage-1 loss, Adam and batch settings, writes
the factors (and imputations when asked) into the block's own rows of the store, and then writes
the block's completion marker.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..model.data import training_data
from ..model.device import resolve_device
from ..model.frozen import FrozenModel
from ..model.genome_factors import assemble_tables, module_tables, with_genome_tables
from ..model.offsets import average_activity, uses_average
from ..model.positions import GenomeRows
from ..model.prediction import predict_rows
from ..model.training import train
from ..store import TrackArray, open_zarr_group, write_genome_factors
from .blocks import Block
from .markers import write_marker

#: Output values per imputation piece (pairs x positions), bounding a task's memory.
PIECE_VALUES = 2**24


def set_torch_threads(n: int | None) -> None:
    """Pin torch's intra-op threads of this process (a worker) to ``n``."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(int(n))


def _worker_device(device):
    return resolve_device("auto" if device in (None, "auto") else device)


def fit_block(frozen: FrozenModel, path, block: Block, settings: dict) -> dict:
    """Fit the genome factors of ``block`` with everything else frozen; write them and the marker."""
    start = time.perf_counter()
    config = frozen.avocado_config
    device = _worker_device(settings.get("device"))
    seed = block.seed(settings["seed"])
    root = open_zarr_group(path)
    raw = TrackArray(root, path, "signal").read_pairs(frozen.training_store, block.first, block.end)
    positions = block.positions()
    rows = GenomeRows(positions)
    module = frozen.module(rows.n_rows, seed, device)
    names = [f"track {b}/{a}" for b, a in frozen.training_store]
    data = training_data(raw, frozen.training_model[:, 0], frozen.training_model[:, 1], rows.rows(positions), config,
                         n_assays=frozen.n_assays, device=device, seed=seed, track_names=names,
                         validation_fraction=config.validation_fraction)
    history, _ = train(module, data, int(settings["epochs"]), config, parameters=module_tables(module),
                       device=device, seed=seed, progress=False)
    tables = [t.weight.detach().float().cpu().numpy() for t in module.genome_tables()]
    write_genome_factors(path, rows, tables)
    record = {"block": block.name, "first": block.first, "end": block.end, "status": "fitted",
              "n_positions": block.n_positions, "epochs": len(history),
              "loss": float(history["loss"].iloc[-1]) if len(history) else float("nan"),
              "val_mse": float(history["val_mse"].iloc[-1]) if "val_mse" in history else float("nan"),
              "fit_seconds": time.perf_counter() - start}
    write_marker(path, "factors", block, {"key": settings["key"], "model": frozen.fingerprint,
                                           **{k: record[k] for k in ("epochs", "loss", "fit_seconds")}})
    if settings.get("pairs") is not None:
        record.update(impute_block(frozen, path, block, settings, module=module, rows=rows, raw=raw, root=root))
    return record


def impute_block(frozen: FrozenModel, path, block: Block, settings: dict, *, module=None, rows=None, raw=None,
                 shipped=None, root=None) -> dict:
    """Write imputations of ``settings["pairs"]`` over ``block`` into ``imputed``; then the marker.

    The genome factors come from ``module`` (just fitted) or from the store, plus ``shipped``
    (rows and tables of positions the model fitted in stage 1).
    """
    start = time.perf_counter()
    config = frozen.avocado_config
    device = _worker_device(settings.get("device"))
    root = root if root is not None else open_zarr_group(path)
    positions = block.positions()
    if module is None:
        in_store = np.ones(len(positions), dtype=bool) if shipped is None else ~np.isin(positions, shipped[0].positions)
        rows, tables = assemble_tables(root, positions, in_store, shipped, what=f"block {block.name}")
        base = frozen.module((0, 0, 0), 0, device)
        module = with_genome_tables(base, tables, device)
    store_pairs, model_pairs = settings["pairs"]
    r = rows.rows(positions)
    offset = uses_average(config)
    if offset:
        raw = raw if raw is not None else TrackArray(root, path, "signal").read_pairs(frozen.training_store, block.first, block.end)
        uniq, inv = np.unique(model_pairs[:, 1], return_inverse=True)
        average = average_activity(raw, frozen.training_model[:, 1], uniq, config)
    output = TrackArray(root, path, "imputed")
    step = max(1, PIECE_VALUES // max(block.n_positions, 1))
    for s in range(0, len(model_pairs), step):
        pred = predict_rows(module, config, model_pairs[s : s + step, 0], model_pairs[s : s + step, 1], r, device,
                            average=average[inv[s : s + step]] if offset else None)  # as Avocado.predict
        for (b, a), values in zip(store_pairs[s : s + step], pred):
            output.write(int(b), int(a), block.first, values)
    seconds = time.perf_counter() - start
    n = len(model_pairs) * block.n_positions
    key = settings["impute_key"]
    write_marker(path, "imputed", block, {"key": key[block.name] if isinstance(key, dict) else key, "model": frozen.fingerprint,
                                           "n_predictions": n, "seconds": seconds})
    return {"n_predictions": n, "impute_seconds": seconds, "imputed": True}


def fit_blocks(frozen: FrozenModel, path, blocks: list[Block], settings: dict) -> list[dict]:
    """Task body: fit each block of a chunk-disjoint group (a failure is recorded, not raised)."""
    set_torch_threads(settings.get("torch_threads"))
    return [_guarded(fit_block, frozen, path, b, settings) for b in blocks]


def impute_blocks(frozen: FrozenModel, path, blocks: list[Block], settings: dict, shipped: dict | None = None) -> list[dict]:
    """Task body: impute each block of a group (``shipped``: block name -> stage-1 rows/tables)."""
    set_torch_threads(settings.get("torch_threads"))
    shipped = shipped or {}
    out = []
    for b in blocks:
        rec = _guarded(impute_block, frozen, path, b, settings, shipped=shipped.get(b.name))
        out.append({"block": b.name, "first": b.first, "end": b.end, "n_positions": b.n_positions,
                    "status": rec.pop("status", "imputed"), **rec})
    return out


def _guarded(fn, frozen, path, block, settings, **kw) -> dict:
    try:
        return fn(frozen, path, block, settings, **kw)
    except Exception as err:  # reported by the driver with the block's region; other blocks go on
        return {"block": block.name, "first": block.first, "end": block.end, "status": "failed",
                "error": f"{type(err).__name__}: {err}"}
