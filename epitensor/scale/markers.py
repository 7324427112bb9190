"""Completion markers: the store's record of which blocks are finished.

A marker is a tiny zarr group ``genome_fit/<kind>/<first>-<end>`` of the store (``kind`` is
``factors`` or ``imputed``) whose attributes hold the run key and a few numbers (loss, seconds).
A task writes it *after* the block's data, so a block with a marker is complete; a block killed
half-way has no marker (or an unreadable one) and is redone on restart. Each block writes its own
marker: no two workers ever touch the same file. Markers are write records
(:mod:`epitensor.store.records`: written whole, on an object store after every chunk PUT of the
block); a resumed run skips exactly the blocks whose marker it can read with the run's key.
"""

from __future__ import annotations

import numpy as np

from ..store import (
    GENOME_FIT_GROUP,
    MARKER_KINDS,
    marker_ranges,
    prepare_records,
    remove_record,
    write_record,
)
from .blocks import Block


def prepare_markers(path) -> None:
    """Create the marker groups and sweep a killed run's temporary files (on the driver, before any task)."""
    prepare_records(path, GENOME_FIT_GROUP, MARKER_KINDS)


def write_marker(path, kind: str, block: Block, attrs: dict) -> None:
    """Record ``block`` as finished (call after its data are written)."""
    write_record(path, f"{GENOME_FIT_GROUP}/{kind}/{block.name}", attrs, as_group=True)


def read_markers(path, kind: str) -> dict[Block, dict]:
    """Every readable marker of ``kind``: block -> attributes (unreadable markers are left out)."""
    return {Block(first, end): attrs for (first, end), attrs in marker_ranges(path, kind).items()}


def remove_marker(path, kind: str, block: Block) -> None:
    """Delete the marker of ``block`` (absent is fine)."""
    remove_record(path, f"{GENOME_FIT_GROUP}/{kind}/{block.name}", as_group=True)


def finished(path, kind: str, blocks: list[Block], key: str) -> tuple[set[Block], list[Block]]:
    """Blocks of ``blocks`` already finished with run ``key``, and stale markers that overlap them.

    A marker is stale when it overlaps a planned block but is for another range or another run key
    (another model, other epochs): its data are about to be overwritten.
    """
    markers = read_markers(path, kind)
    done = {b for b in blocks if markers.get(b, {}).get("key") == key}
    if not markers:
        return done, []
    starts = np.array([b.first for b in blocks])
    ends = np.array([b.end for b in blocks])
    stale = []
    for m in markers:
        overlaps = bool(((starts < m.end) & (ends > m.first)).any())
        if overlaps and m not in done:
            stale.append(m)
    return done, stale
