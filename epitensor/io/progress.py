"""Completion records of an ingestion: one per (track, contig) piece, in the store's ``ingest_progress``.

A task writes a piece's record after every chunk of the piece is stored
(:mod:`epitensor.store.records`); the driver marks a track ``observed`` once all its pieces are
recorded, and a rerun ingests only the pieces without a current record.
"""

from __future__ import annotations

from ..exceptions import LabelError
from ..store import (
    TrackArray,
    open_zarr_group,
    prepare_records,
    read_records,
    remove_record,
    set_observed,
)
from .pieces import Piece, chunks_of

#: Group of the store holding one completion record per (track, contig) piece.
PROGRESS_GROUP = "ingest_progress"


def prepare_progress(store, todo) -> None:
    """Create the records' group, sweep a killed run's temporary files and delete the records of
    the pieces about to be redone (a stale record must not survive a piece that is redone)."""
    prepare_records(store, PROGRESS_GROUP)
    for p in todo:
        remove_record(store, f"{PROGRESS_GROUP}/{p.record_name}")


def completed_pieces(store) -> dict[str, dict]:
    """Completion records of a store: file name -> record (biosample, assay, contig, source, ...).

    Examples
    --------
    >>> completed_pieces("compendium.zarr")   # doctest: +SKIP
    {'0.0.chr21.json': {'assay': 'H3K27ac', 'biosample': 'E003', 'contig': 'chr21', ...}}
    """
    return read_records(store, PROGRESS_GROUP)


def pending(store, pieces, overwrite):
    """The pieces to ingest (no current record) and the observed tracks to redo; refuses to replace
    tracks held from other sources without ``overwrite``."""
    done = completed_pieces(store)
    observed = open_zarr_group(store, mode="r")["observed"][:]
    by_track: dict[tuple, list[Piece]] = {}
    for p in pieces:
        by_track.setdefault((p.biosample, p.assay), []).append(p)
    todo, redo, clash = [], set(), []
    for track, ps in by_track.items():
        current = [p.is_recorded(done.get(p.record_name)) for p in ps]
        if all(current):
            continue
        if observed[ps[0].b, ps[0].a]:
            if not overwrite:
                clash.append(track)
                continue
            redo.add(track)
        todo.extend(p.with_digest() for p, ok in zip(ps, current) if not ok)
    if clash:
        raise LabelError(
            f"store {store} already holds track(s) {clash[:10]} from other files or settings; pass "
            "overwrite=True to replace them, or leave them out of the manifest"
        )
    return todo, redo


def erase_incomplete(store, todo, genome):
    """Remove every piece (chunks and records) of the tracks this run left incomplete."""
    done = completed_pieces(store)
    incomplete = {(p.b, p.a) for p in todo if not p.is_recorded(done.get(p.record_name))}
    track = TrackArray.open(store, "signal")
    for p in todo:
        if (p.b, p.a) in incomplete:
            remove_record(store, f"{PROGRESS_GROUP}/{p.record_name}")
            for lo, _, first, end in chunks_of(p, genome):
                track.clear(p.b, p.a, first + lo, end)


def mark_observed(store, pieces):
    """Mark observed every track all of whose pieces have a current record."""
    done = completed_pieces(store)
    by_track: dict[tuple, bool] = {}
    for p in pieces:
        ok = p.is_recorded(done.get(p.record_name))
        by_track[(p.biosample, p.assay)] = by_track.get((p.biosample, p.assay), True) and ok
    set_observed(store, [t for t, ok in by_track.items() if ok], True)
