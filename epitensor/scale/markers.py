"""Completion markers: the store's record of which blocks are finished.

A marker is a tiny zarr group ``genome_fit/<kind>/<first>-<end>`` of the store (``kind`` is
``factors`` or ``imputed``) whose attributes hold the run key and a few numbers (loss, seconds).
A task writes it *after* the block's data, in one metadata write, so a block with a marker is
complete; a block killed half-way has no marker (or an unreadable one) and is redone on restart.
Each block writes its own marker: no two workers ever touch the same file.

The same protocol holds on an object store (:mod:`epitensor.storage_location`): the block's chunks
are PUT first (each zarr write returns once its objects are stored), then the marker's
``zarr.json`` in one PUT, which readers see whole or not at all. Markers are listed freshly with
one recursive listing of ``genome_fit/<kind>/`` and read concurrently; a resumed run skips exactly
the blocks whose marker it can read with the run's key. Local stores keep reading their folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from ..storage_location import locate
from ..store import _zarr, remove_interrupted_writes
from .blocks import Block

GROUP = "genome_fit"
KINDS = ("factors", "imputed")


def prepare_markers(path) -> None:
    """Create the marker groups and sweep a killed run's temporary files (on the driver, before any task)."""
    remove_interrupted_writes(path)
    root = zarr.open_group(_zarr(path), mode="r+", use_consolidated=False)
    group = root.require_group(GROUP)
    for kind in KINDS:
        group.require_group(kind)


def write_marker(path, kind: str, block: Block, attrs: dict) -> None:
    """Record ``block`` as finished (call after its data are written).

    On an object store the marker group's ``zarr.json`` is one PUT (its parent groups exist:
    :func:`prepare_markers`), so the marker appears whole, after every chunk PUT of the block.
    """
    location = locate(path)
    if not location.is_local:
        meta = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
        location.write_bytes(f"{GROUP}/{kind}/{block.name}/zarr.json", json.dumps(meta).encode())
        return
    zarr.create_group(_zarr(path), path=f"{GROUP}/{kind}/{block.name}", attributes=attrs, overwrite=True)


def read_markers(path, kind: str) -> dict[Block, dict]:
    """Every readable marker of ``kind``: block -> attributes (unreadable markers are left out)."""
    location = locate(path)
    if not location.is_local:
        return _read_remote_markers(location, kind)
    folder = Path(path) / GROUP / kind
    if not folder.is_dir():
        return {}
    out = {}
    for name in os.listdir(folder):
        try:
            first, end = (int(x) for x in name.split("-"))
            meta = json.loads((folder / name / "zarr.json").read_text())
            out[Block(first, end)] = meta.get("attributes", {})
        except (ValueError, OSError, json.JSONDecodeError):
            continue  # a marker cut short by a crash: the block counts as not finished
    return out


def _read_remote_markers(location, kind: str) -> dict[Block, dict]:
    prefix = f"{GROUP}/{kind}"
    names = [n for n in location.list(prefix) if n.count("/") == 1 and n.endswith("/zarr.json")]
    out = {}
    for name, raw in location.read_many([f"{prefix}/{n}" for n in names]).items():
        try:
            first, end = (int(x) for x in name.split("/")[-2].split("-"))
            out[Block(first, end)] = json.loads(raw).get("attributes", {})
        except (ValueError, json.JSONDecodeError):
            continue
    return out


def remove_marker(path, kind: str, block: Block) -> None:
    location = locate(path)
    if not location.is_local:
        location.delete(f"{GROUP}/{kind}/{block.name}", recursive=True)
        return
    shutil.rmtree(Path(path) / GROUP / kind / block.name, ignore_errors=True)


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
