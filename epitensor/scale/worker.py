"""What runs on a worker: fit one block's genome factors, impute one block; pure functions.

Each task is a pure function of (frozen model state, blocks, settings): it opens the store itself
(no file handle is ever pickled), reads the block's observed training tracks, builds fresh genome
tables seeded by the block, trains only them with the stage-1 loss, Adam and batch settings, writes
the factors (and imputations when asked) into the block's own rows of the store, and then writes
the block's completion marker.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..exceptions import ModelError
from ..model.config import AvocadoConfig
from ..model.model import resolve_device
from ..model.module import GENOME_TABLES, AvocadoModule
from ..model.offsets import combine_with_average, leave_one_out_mean, offset_applies
from ..model.positions import GenomeRows
from ..model.training import build_training_data, predict_pairs, resolve_options, train
from ..store import TrackArray, open_zarr_group, write_genome_factors
from .blocks import Block
from .factors import assemble_tables, with_genome_tables
from .markers import write_marker

#: Output values per imputation piece (pairs x positions), bounding a task's memory.
PIECE_VALUES = 2**24
_INIT_LOCK = threading.Lock()  # the threaded local scheduler shares torch's global RNG


@dataclass
class FrozenModel:
    """The frozen part of a trained model, small and picklable: shipped to each worker once.

    Attributes
    ----------
    config : dict
        :class:`AvocadoConfig` fields.
    n_biosamples, n_assays : int
    state : dict of str -> ndarray
        Network and biosample/assay weights (no genome tables).
    training_store, training_model : ndarray (n_tracks, 2)
        (biosample, assay) indices of the training tracks in the store and in the model's tables.
    fingerprint : str
        Hash of the config and ``state``: identifies the model whose genome factors a marker holds.
    """

    config: dict
    n_biosamples: int
    n_assays: int
    state: dict
    training_store: np.ndarray
    training_model: np.ndarray
    fingerprint: str = field(default="")

    @classmethod
    def from_model(cls, model, store_biosamples, store_assays) -> FrozenModel:
        from ..store import label_index

        state = {k: v.detach().float().cpu().numpy() for k, v in model.module.state_dict().items()
                 if k.split(".")[0] not in GENOME_TABLES}
        pairs = model.training_tracks
        if not pairs:
            raise ModelError("the model has no training tracks; fit it (stage 1) before fitting genome factors")
        b, a = [p[0] for p in pairs], [p[1] for p in pairs]
        store = np.stack([label_index(store_biosamples, b, "biosample"), label_index(store_assays, a, "assay")], axis=1)
        own = np.stack([model._index(b, "biosample"), model._index(a, "assay")], axis=1)
        frozen = cls(model.config.to_dict(), len(model.biosamples), len(model.assays), state, store, own)
        frozen.fingerprint = fingerprint(frozen.config, state)
        return frozen

    @property
    def avocado_config(self) -> AvocadoConfig:
        return AvocadoConfig.from_dict(self.config)

    def module(self, n_rows, seed: int, device) -> AvocadoModule:
        """The frozen network with fresh genome tables of ``n_rows`` rows, initialised from ``seed``."""
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = AvocadoModule(self.n_biosamples, self.n_assays, tuple(n_rows), self.avocado_config)
        missing, unexpected = module.load_state_dict({k: torch.from_numpy(v) for k, v in self.state.items()}, strict=False)
        if unexpected or any(k.split(".")[0] not in GENOME_TABLES for k in missing):
            raise ModelError(f"frozen model state does not fit the network (missing {missing}, unexpected {unexpected})")
        module = module.to(device)
        for name, p in module.named_parameters():
            p.requires_grad_(name.split(".")[0] in GENOME_TABLES)
        return module.eval()


def fingerprint(config: dict, state: dict) -> str:
    """Short hash of a model's config and frozen weights."""
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(config, sort_keys=True).encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.ascontiguousarray(state[k], dtype=np.float32).tobytes())
    return h.hexdigest()


def set_torch_threads(n: int | None) -> None:
    """Pin torch's intra-op threads of this process (a worker) to ``n``."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(int(n))


def _worker_device(device):
    return resolve_device("auto" if device in (None, "auto") else device)


def _average_activity(values: np.ndarray, track_assay: np.ndarray, assays: np.ndarray, config) -> np.ndarray:
    """Mean of the training tracks of each of ``assays`` (model rows): (len(assays), n)."""
    out = np.zeros((len(assays), values.shape[1]), dtype=np.float32)
    for k, a in enumerate(assays):
        sel = track_assay == a
        if offset_applies(config, int(sel.sum())):
            out[k] = values[sel].mean(axis=0)
    return out


def _genome_parameters(module: AvocadoModule):
    return [t.weight for t in module.genome_tables()]


def fit_block(frozen: FrozenModel, path, block: Block, settings: dict) -> dict:
    """Fit the genome factors of ``block`` with everything else frozen; write them and the marker."""
    start = time.perf_counter()
    config = frozen.avocado_config
    device = _worker_device(settings.get("device"))
    seed = block.seed(settings["seed"])
    root = open_zarr_group(path)
    raw = TrackArray(root, path, "signal").read_pairs(frozen.training_store, block.first, block.end)
    track_b, track_a = frozen.training_model[:, 0], frozen.training_model[:, 1]
    values = raw - leave_one_out_mean(raw, track_a, frozen.n_assays) if config.residual and np.isfinite(raw).all() else raw
    positions = block.positions()
    rows = GenomeRows(positions)
    module = frozen.module(rows.n_rows, seed, device)
    names = [f"track {b}/{a}" for b, a in frozen.training_store]
    data = build_training_data(values, track_b, track_a, rows.rows(positions), device=device,
                               validation_fraction=config.validation_fraction, seed=seed, track_names=names)
    history, _ = train(module, data, int(settings["epochs"]), config, parameters=_genome_parameters(module),
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
    _, autocast = resolve_options(config, device)
    r = [torch.as_tensor(x, device=device) for x in rows.rows(positions)]
    w = config.baseline_weight
    if config.residual or w > 0:
        raw = raw if raw is not None else TrackArray(root, path, "signal").read_pairs(frozen.training_store, block.first, block.end)
        uniq, inv = np.unique(model_pairs[:, 1], return_inverse=True)
        average = _average_activity(raw, frozen.training_model[:, 1], uniq, config)
    output = TrackArray(root, path, "imputed")
    step = max(1, PIECE_VALUES // max(block.n_positions, 1))
    for s in range(0, len(model_pairs), step):
        bi = torch.as_tensor(model_pairs[s : s + step, 0], device=device)
        ai = torch.as_tensor(model_pairs[s : s + step, 1], device=device)
        pred = predict_pairs(module, bi, ai, r, max(config.batch_size, 2**16), autocast).cpu().numpy()
        if config.residual or w > 0:  # as Avocado.predict: shrink toward / add the average activity
            pred = combine_with_average(pred, average[inv[s : s + step]], config)
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
