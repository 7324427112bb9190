"""What a damaged chunk is, and how its error names the store, the variable and the track.

Damaged chunks are never returned as values. Every chunk file is checked before Blosc sees it
(:class:`ChunkLayout`): its checksum, or, in stores written before checksums (``bytes`` + Blosc
only), its Blosc header (the compressed size must be the file's size and the decoded size the
chunk's), so that truncated or garbage bytes never reach Blosc (which reads out of bounds on
them, numcodecs #228). A chunk missing where it must exist is damage too
(:class:`~epitensor.store.checked.RequiredChunks`). Any of these raises
:class:`~epitensor.exceptions.CorruptChunkError` naming the store, variable, track and chunk
(:func:`corrupt_chunk`). Stores without checksums detect truncated, emptied and missing chunks and
altered headers, but a bit flipped inside the compressed data of such a store can still decode to
wrong values: rewrite old stores to get checksums.
"""

from __future__ import annotations

import os
from pathlib import Path

import google_crc32c
import numpy as np
import zarr

from ..exceptions import CorruptChunkError

_BLOSC_HEADER = 16


MISSING = ("the file is missing although the track holds data (every chunk of an observed or written track "
           "that overlaps a contig is written)")


class ChunkDamage(Exception):
    """What is wrong with one chunk file (raised by :meth:`ChunkLayout.payload`; callers add
    the store, variable and chunk and raise :class:`CorruptChunkError`)."""


class ChunkLayout:
    """How an array's chunk files are encoded, from its ``zarr.json``: what can be checked
    before decoding.

    Parameters
    ----------
    meta : dict
        The array's Zarr v3 metadata (``zarr.json`` contents).
    """

    def __init__(self, meta: dict):
        names = [c.get("name") if isinstance(c, dict) else str(c) for c in meta.get("codecs", ())]
        self.checksum = bool(names) and names[-1] == "crc32c"
        inner = names[1:-1] if self.checksum else names[1:]
        self.blosc = bool(inner) and inner[-1] == "blosc"
        self.nbytes = None  # decoded size of the Blosc data, where fixed
        if self.blosc and len(inner) == 1 and names[0] == "bytes":
            try:
                shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
                self.nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(meta["data_type"]).itemsize
            except (KeyError, TypeError, ValueError):
                self.nbytes = None

    def payload(self, raw: bytes) -> bytes:
        """``raw`` without its checksum, once checked; raises :class:`ChunkDamage`."""
        if self.checksum:
            if len(raw) < 4:
                raise ChunkDamage(f"the file has {len(raw)} bytes, fewer than its 4-byte checksum")
            raw, stored = raw[:-4], int.from_bytes(raw[-4:], "little")
            if google_crc32c.value(raw) != stored:
                raise ChunkDamage("its CRC-32C checksum does not match its bytes (altered or truncated)")
        if self.blosc:
            self._check_blosc_header(raw)
        return raw

    def _check_blosc_header(self, raw: bytes) -> None:
        if len(raw) < _BLOSC_HEADER:
            raise ChunkDamage(f"the file has {len(raw)} bytes, fewer than a Blosc header")
        nbytes, blocksize, cbytes = (int.from_bytes(raw[i : i + 4], "little") for i in (4, 8, 12))
        if cbytes != len(raw):
            raise ChunkDamage(f"its Blosc header promises {cbytes:,} compressed bytes but the file holds {len(raw):,} (truncated)")
        if self.nbytes is not None and nbytes != self.nbytes:
            raise ChunkDamage(f"its Blosc header promises {nbytes:,} decoded bytes, a chunk holds {self.nbytes:,}")
        if raw[0] not in (1, 2, 3) or raw[3] == 0 or (nbytes and not 0 < blocksize <= max(nbytes, 1)):
            raise ChunkDamage("its Blosc header is not valid")


_LABELS: dict[tuple[str, str], tuple] = {}


def _labels(root: Path, dim: str) -> list[str] | None:
    """Labels along ``dim`` for error messages (cached until the label array's files change)."""
    try:
        stamp = tuple(os.stat(root / dim / name).st_mtime_ns for name in ("zarr.json", "c"))
    except OSError:
        return None
    hit = _LABELS.get((str(root), dim))
    if hit is None or hit[0] != stamp:
        try:
            labels = [str(v) for v in zarr.open_array(str(root), path=dim, mode="r")[:]]
        except Exception:  # damaged or missing labels: the message falls back to row numbers
            labels = None
        hit = _LABELS[(str(root), dim)] = (stamp, labels)
    return hit[1]


def track_of(root, key: str) -> tuple[str, str] | None:
    """``(biosample, assay)`` labels of the track whose chunk file is ``key`` (relative to the store;
    ``row i`` where a label cannot be read), or None for a key that is not a track chunk."""
    root = Path(os.fspath(root))
    coords = key.rpartition("/c/")[2].split("/") if "/c/" in key else []
    if len(coords) != 3 or not all(c.isdigit() for c in coords):
        return None
    b, a, _ = map(int, coords)
    return tuple(labels[i] if labels is not None and i < len(labels) else f"row {i}"
                 for labels, i in ((_labels(root, "biosample"), b), (_labels(root, "assay"), a)))


def corrupt_chunk(root, variable: str, key: str, problem: str) -> CorruptChunkError:
    """The error for a damaged chunk ``key`` (relative to the store) of ``variable``."""
    root = Path(os.fspath(root))
    track, what = track_of(root, key), f"the {variable!r} array"
    if track is not None:
        k = key.rpartition("/")[2]
        what = f"track {track[0]}/{track[1]} of {variable!r} (chunk {k})"
        fix = (f"run `epitensor check {root}` to list every damaged track, delete the damaged chunk files and "
               f"write each damaged track again from its source (et.write_track, or delete the track's records in "
               f"{root}/ingest_progress and rerun et.ingest)")
    else:
        fix = (f"run `epitensor check {root}` to list every damaged chunk, then rewrite this array (labels and "
               "observed: rebuild the store; model factors: fit or save the model into the store again)")
    return CorruptChunkError(f"store {root}: chunk file {key} of {what} is damaged: {problem}. To fix it, {fix}",
                             store=root, variable=variable, key=key, track=track, problem=problem)
