"""Stage 2 at genome scale: fit genome factors and impute block by block, resumably, on Dask.

With the network and the biosample/assay factors frozen, 5-kbp-aligned blocks are independent:
:func:`fit_genome` plans the blocks of a region, skips those the store records as finished, ships
the frozen model to the workers once and runs one task per chunk-disjoint group of blocks.
:func:`impute_genome` writes imputations of any set of (biosample, assay) pairs block by block.
The model reads the factors these runs write when it predicts (:mod:`epitensor.model.genome_factors`).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import torch

from ..arguments import check_integer, check_seed
from ..exceptions import BlockError, ModelError, RegionError
from ..model.data import check_store_tracks, pairs_to_impute, resolve_pairs
from ..model.frozen import FrozenModel
from ..model.genome_factors import module_tables
from ..model.persistence import check_compatible
from ..model.positions import GenomeRows
from ..store import (
    add_track_variable,
    check_precision,
    check_track_chunks,
    fitted_intervals,
    open_dataset,
    open_group,
    parse_precision,
    store_path,
    store_source,
    sync_metadata,
    write_genome_factors,
)
from .blocks import Block, describe_blocks, group_blocks, plan_blocks
from .markers import (
    finished,
    prepare_markers,
    read_markers,
    remove_marker,
)
from .runner import check_run_options, run_tasks
from .worker import fit_blocks, impute_blocks

_COLUMNS = ["block", "region", "first", "end", "n_positions", "status", "epochs", "loss", "val_mse", "fit_seconds",
            "n_predictions", "impute_seconds", "error"]


# ---------------------------------------------------------------------- helpers
def _hash(*parts) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=10).hexdigest()


def _open_store(model, store):
    """The store path and its opened dataset, checked against the model's labels and genome."""
    own = model.dataset
    if store is None and "signal" in own and store_source(own["signal"]) is None:
        raise ModelError(
            "stage-2 workers read the tracks from a store, and the dataset this model was given is not an "
            "unmodified selection of one (arithmetic, new labels or in-memory values); write it to a store "
            "(ds.to_zarr(path), then epitensor.open_dataset(path)) or pass store=path to use that store's tracks")
    path = store_path(own) if store is None else store_path(store)
    check_track_chunks(open_group(path), path)
    ds = open_dataset(path)
    check_compatible({"biosample": model.biosamples, "assay": model.assays}, model.genome.to_attrs(), ds)
    return path, ds


def _report(records: list[dict], genome) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records)
    for col in _COLUMNS:
        if col not in df:
            df[col] = np.nan if col not in ("status", "error", "block", "region") else None
    if len(df):
        df["region"] = [str(Block(int(f), int(e)).region(genome)) for f, e in zip(df["first"], df["end"])]
        df = df.sort_values("first", kind="stable").reset_index(drop=True)
    return df[_COLUMNS]


def _raise_failures(report: pd.DataFrame, what: str) -> None:
    failed = report[report["status"] == "failed"]
    if len(failed):
        done = int((report["status"] != "failed").sum())
        shown = "; ".join(f"{r.region}: {r.error}" for r in failed.head(5).itertuples())
        raise BlockError(
            f"{what}: {len(failed)} of {len(report)} block(s) failed ({shown}{' ...' if len(failed) > 5 else ''}). "
            f"The {done} finished block(s) are recorded in the store; fix the cause and run the same call again to "
            "finish only the missing blocks (error.report lists every block)", report)


# ---------------------------------------------------------------------- stage 2
def fit_genome(model, store=None, region=None, block_size="1Mb", epochs: int = 200, *, seed: int | None = None,
               client=None, scheduler=None, workers=None, resources=None, device="auto", torch_threads: int = 1,
               write_imputed=False, overwrite: bool = False, progress: bool = True, dry_run: bool = False,
               precision=None) -> pd.DataFrame:
    """Fit genome factors block by block with the network and biosample/assay factors frozen.

    The parameters are those of :meth:`epitensor.Avocado.fit_genome`, which calls this.
    """
    epochs = check_integer(epochs, "epochs", 0)
    seed = (model.seed or 0) if seed is None else check_seed(seed)
    check_run_options(scheduler, workers, resources, device, torch_threads)
    path, ds = _open_store(model, store)
    genome = model.genome
    blocks = plan_blocks(region, genome, block_size)
    frozen = FrozenModel.from_model(model, ds.biosample.values, ds.assay.values)
    check_store_tracks(ds, model.training_tracks, "stage 2 (in every block)")
    key = _hash("fit", frozen.fingerprint, epochs, seed)
    pairs = None
    if write_imputed is not False and write_imputed is not None:
        store_p, model_p, _ = resolve_pairs(model, ds, "unobserved" if write_imputed is True else write_imputed)
        pairs = (store_p, model_p)
        check_imputed_precision(path, precision)
    done, stale = finished(path, "factors", blocks, key)
    if overwrite:
        stale, done = sorted(set(stale) | done), set()
    to_fit = [b for b in blocks if b not in done]
    to_impute, impute_keys = [], None
    if pairs is not None:
        impute_keys = {b.name: impute_key(frozen.fingerprint, pairs[0], key) for b in blocks}
        written = read_markers(path, "imputed")
        done_i = {b for b in blocks if written.get(b, {}).get("key") == impute_keys[b.name]}
        stale_i = [b for b in written if b not in done_i and any(b.first < x.end and b.end > x.first for x in blocks)]
        if overwrite:
            stale_i, done_i = sorted(set(stale_i) | done_i), set()
        to_impute = [b for b in blocks if b in done and b not in done_i]
        stale += [("imputed", b) for b in stale_i]
    n_pairs = 0 if pairs is None else len(pairs[0])
    plan = {"blocks": len(blocks), "finished": len(blocks) - len(to_fit), "to_fit": len(to_fit),
            "positions_to_fit": sum(b.n_positions for b in to_fit),
            "training_samples": epochs * sum(b.n_positions for b in to_fit),
            "predictions": n_pairs * sum(b.n_positions for b in to_fit + to_impute)}
    if progress:
        print(f"fit_genome: {plan['blocks']} block(s) of {block_size} over {describe_blocks(blocks, genome, 3)}; "
              f"{plan['finished']} already finished; {plan['to_fit']} to fit ({plan['positions_to_fit']:,} positions, "
              f"{plan['training_samples']:,} training samples){'' if pairs is None else ''}; "
              f"{plan['predictions']:,} predictions to write")
    if dry_run:
        return pd.DataFrame([plan])
    prepare_markers(path)
    for item in stale:
        kind, b = item if isinstance(item, tuple) else ("factors", item)
        remove_marker(path, kind, b)
        if kind == "factors":
            remove_marker(path, "imputed", b)
    c = model.config
    widths = (c.n_25bp_factors, c.n_250bp_factors, c.n_5kbp_factors)
    write_genome_factors(path, GenomeRows([]), [np.zeros((0, w), dtype=np.float32) for w in widths])
    if pairs is not None:
        add_track_variable(path, "imputed", long_name="imputed signal", exist_ok=True, precision=precision)
    sync_metadata(path)  # the workers open the store: its consolidated metadata must list the new arrays
    settings = dict(epochs=epochs, seed=seed, key=key, device=device, torch_threads=torch_threads,
                         pairs=pairs, impute_key=impute_keys)
    run = dict(client=client, scheduler=scheduler, workers=workers, resources=resources, progress=progress, path=path)
    records = run_tasks(fit_blocks, frozen, group_blocks(to_fit, genome), settings=settings, desc="fitting blocks", **run) if to_fit else []
    if to_impute:
        records += run_tasks(impute_blocks, frozen, group_blocks(to_impute, genome), settings=settings,
                             desc="imputing blocks", **run)
    worked = {r["block"] for r in records}
    records += [{"block": b.name, "first": b.first, "end": b.end, "n_positions": b.n_positions, "status": "finished before"}
                for b in blocks if b.name not in worked]
    model.record_genome_store(path)
    sync_metadata(path)  # the blocks' completion markers
    report = _report(records, genome)
    report.attrs["plan"] = plan
    _raise_failures(report, "fit_genome")
    return report


# ---------------------------------------------------------------------- imputation by blocks
def impute_genome(model, store=None, pairs="unobserved", region=None, block_size="1Mb", *, client=None,
                  scheduler=None, workers=None, resources=None, device="auto", torch_threads: int = 1,
                  overwrite: bool = False, progress: bool = True, dry_run: bool = False,
                  precision=None) -> pd.DataFrame:
    """Write imputations of ``pairs`` into the store's ``imputed`` variable, block by block.

    The parameters are those of :meth:`epitensor.Avocado.impute_genome`, which calls this.
    """
    check_run_options(scheduler, workers, resources, device, torch_threads)
    path, ds = _open_store(model, store)
    genome = model.genome
    frozen = FrozenModel.from_model(model, ds.biosample.values, ds.assay.values)
    in_store = fitted_intervals(path, frozen.fingerprint)
    if region is None:
        if not len(in_store):
            raise RegionError("no genome factors of this model are in the store yet; pass region=... (inside the training "
                              "region) or run model.fit_genome(...) first")
        region = [Block(int(a), int(b)).region(genome) for a, b in zip(in_store.starts, in_store.ends)]
    blocks = plan_blocks(region, genome, block_size)
    store_p, model_p, labels = pairs_to_impute(model, ds, pairs)
    check_imputed_precision(path, precision)
    check_store_tracks(ds, model.offset_tracks(sorted({a for _, a in labels})),
                       "imputing with this model's average-activity offset")
    rows, tables = model.fitted_positions, module_tables(model.module)
    shipped, uncovered = {}, []
    for b in blocks:
        pos = b.positions()
        own = ~in_store.covers(pos)
        if own.any():
            if not rows.covers(pos[own]).all():
                uncovered.append(b)
                continue
            local = GenomeRows(pos[own])
            r = rows.rows(local.positions)
            shipped[b.name] = (local, [t.detach()[torch.as_tensor(ri, device=t.device)].float().cpu().numpy()
                                       for t, ri in zip(tables, (r[0], np.unique(r[1]), np.unique(r[2])))])
    if uncovered:
        raise RegionError(f"{len(uncovered)} block(s) have no genome factors for this model ({describe_blocks(uncovered, genome)}); "
                          "fit them first with model.fit_genome(region=...)")
    fit_keys = {b: a.get("key", "") for b, a in read_markers(path, "factors").items()}
    keys = {b.name: impute_key(frozen.fingerprint, store_p, fit_keys.get(b, "stage1")) for b in blocks}
    written = read_markers(path, "imputed")
    done = set() if overwrite else {b for b in blocks if written.get(b, {}).get("key") == keys[b.name]}
    todo = [b for b in blocks if b not in done]
    n_pred = len(store_p) * sum(b.n_positions for b in todo)
    plan = {"blocks": len(blocks), "finished": len(done), "to_impute": len(todo), "pairs": len(store_p),
            "positions": sum(b.n_positions for b in todo), "predictions": n_pred}
    if progress:
        print(f"impute_genome: {len(store_p):,} pair(s) x {plan['positions']:,} positions = {n_pred:,} predictions in "
              f"{len(todo)} block(s) of {block_size} ({len(done)} already written)")
    if dry_run:
        return pd.DataFrame([plan])
    prepare_markers(path)
    add_track_variable(path, "imputed", long_name="imputed signal", exist_ok=True, precision=precision)
    sync_metadata(path)
    groups = group_blocks(todo, genome)
    settings = dict(device=device, torch_threads=torch_threads, pairs=(store_p, model_p), impute_key=keys)
    records = run_tasks(impute_blocks, frozen, groups, extra=[{b.name: shipped.get(b.name) for b in g} for g in groups],
                        settings=settings, client=client, scheduler=scheduler, workers=workers, resources=resources,
                        progress=progress, path=path, desc="imputing blocks") if groups else []
    records += [{"block": b.name, "first": b.first, "end": b.end, "n_positions": b.n_positions, "status": "finished before"}
                for b in done]
    model.record_genome_store(path)
    sync_metadata(path)  # the blocks' completion markers
    report = _report(records, genome)
    report.attrs["plan"] = plan
    _raise_failures(report, "impute_genome")
    return report


def check_imputed_precision(path, precision) -> None:
    """PrecisionError before any work when the store's ``imputed`` exists at another precision."""
    root = open_group(path, mode="r")
    if precision is not None and "imputed" in root:
        check_precision(path, "imputed", root["imputed"].attrs, precision)
    elif precision is not None:
        parse_precision(precision)  # a bad name fails before the plan, too


def impute_key(model_fingerprint: str, store_pairs: np.ndarray, fit_key: str) -> str:
    """Run key of a block's imputations: the model, the pairs, and the provenance of its factors."""
    return _hash("impute", model_fingerprint, np.asarray(store_pairs).tolist(), fit_key)
