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

from ..store import prepare_records, read_records, remove_record, write_record
from .blocks import Block

GROUP = "genome_fit"
KINDS = ("factors", "imputed")


def prepare_markers(path) -> None:
    """Create the marker groups and sweep a killed run's temporary files (on the driver, before any task)."""
    prepare_records(path, GROUP, KINDS)


def write_marker(path, kind: str, block: Block, attrs: dict) -> None:
    """Record ``block`` as finished (call after its data are written)."""
    write_record(path, f"{GROUP}/{kind}/{block.name}", attrs, as_group=True)


def read_markers(path, kind: str) -> dict[Block, dict]:
    """Every readable marker of ``kind``: block -> attributes (unreadable markers are left out)."""
    out = {}
    for name, attrs in read_records(path, f"{GROUP}/{kind}", as_groups=True).items():
        try:
            first, end = (int(x) for x in name.split("-"))
        except ValueError:
            continue  # not a block's marker
        out[Block(first, end)] = attrs
    return out


def remove_marker(path, kind: str, block: Block) -> None:
    """Delete the marker of ``block`` (absent is fine)."""
    remove_record(path, f"{GROUP}/{kind}/{block.name}", as_group=True)


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


class Intervals:
    """Sorted, disjoint ``[first, end)`` ranges with a fast membership test (no per-position array).

    Examples
    --------
    >>> iv = Intervals([(0, 10), (20, 30)])
    >>> iv.covers([5, 15, 29]).tolist()
    [True, False, True]
    """

    def __init__(self, ranges):
        ranges = sorted((int(a), int(b)) for a, b in ranges)
        self.starts = np.array([a for a, _ in ranges], dtype=np.int64)
        self.ends = np.array([b for _, b in ranges], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def covers(self, positions) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if not len(self.starts):
            return np.zeros(positions.shape, dtype=bool)
        i = np.searchsorted(self.starts, positions, side="right") - 1
        return (i >= 0) & (positions < self.ends[np.clip(i, 0, None)])


def fitted_intervals(path, fingerprint: str) -> Intervals:
    """Positions whose genome factors were fitted in the store for the model ``fingerprint``."""
    markers = read_markers(path, "factors")
    return Intervals([(b.first, b.end) for b, a in markers.items() if a.get("model") == fingerprint])
