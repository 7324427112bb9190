"""Reads that refuse damaged chunks: which chunks must exist, and a zarr store that checks each chunk.

A chunk missing from an observed ``signal`` track (or a written ``held_out`` track) where it
overlaps a contig is damage: values there are always finite, so such a chunk is always written
(:class:`RequiredChunks`); so is a missing ``observed`` chunk whose tracks hold signal.
:class:`CheckedStore` applies these rules and :class:`~epitensor.store.damage.ChunkLayout`'s checks
to every chunk that zarr (and so xarray and dask) reads through :func:`epitensor.open_dataset`.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from ..genome import Genome
from .damage import MISSING, ChunkDamage, ChunkLayout, corrupt_chunk


class RequiredChunks:
    """Which chunks of a track variable must exist: those of a written contig of a present track.

    Values inside contigs are finite (:meth:`epitensor.store.TrackWriter.write`) and a contig is
    written whole, so a chunk overlapping a contig is never all fill value: once any chunk of a
    contig of a track is written, all of them are (and an ingested contig has a completion record).
    Chunks wholly in the padding between contigs, of contigs never written (``write_track`` one
    contig at a time) and of absent tracks are legitimately missing. A ``signal`` track is present
    when it is observed (``observed`` is re-read when its chunk file changes). Not detected: every
    chunk of a contig deleted in a track written without ingestion records.
    """

    def __init__(self, root: Path, variable: str):
        self.root, self.variable = root, variable
        group = zarr.open_group(CheckedStore(root, read_only=True), mode="r")  # a damaged observed raises
        genome = Genome.from_attrs(group.attrs)
        self.observed = group["observed"] if variable == "signal" else None
        self.keys = group[variable].metadata
        self._blocks: dict = {}
        chunk, n = genome.chunk_bins, genome.n_positions
        self.contig_of = np.full(-(-n // chunk), -1, dtype=np.int64)  # chunk -> contig (-1: padding only)
        self.contig_chunks = []
        for i, contig in enumerate(genome.contigs):
            lo, hi = genome.contig_bins(contig)
            ks = (lo // chunk, (hi - 1) // chunk + 1) if lo < hi else (0, 0)
            self.contig_of[ks[0] : ks[1]] = i
            self.contig_chunks.append(ks)
        self.contigs = list(genome.contigs)
        self.inside = self.contig_of >= 0

    def required(self, b: int, a: int, k: int) -> bool:
        """True when chunk ``k`` of track ``(b, a)`` must have a file."""
        if k >= self.inside.shape[0] or not self.inside[k]:
            return False
        if self.observed is not None and not self._observed(b, a):
            return False
        contig = int(self.contig_of[k])
        if self.observed is not None and (self.root / "ingest_progress" / f"{b}.{a}.{self.contigs[contig]}.json").is_file():
            return True  # ingested (the record is written after the contig's chunks)
        return self._contig_written(b, a, k, contig)

    def _contig_written(self, b: int, a: int, k: int, contig: int) -> bool:
        """True when another chunk of ``contig`` of track ``(b, a)`` has a file."""
        first, end = self.contig_chunks[contig]
        folder = (self.root / self.variable / self.keys.encode_chunk_key((b, a, k))).parent
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file()]
        except OSError:
            return False
        return any(n.isdigit() and first <= int(n) < end and int(n) != k for n in names)

    def _observed(self, b: int, a: int) -> bool:
        cb, ca = self.observed.chunks
        coords = (b // cb, a // ca)
        path = self.root / "observed" / self.observed.metadata.encode_chunk_key(coords)
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        hit = self._blocks.get(coords)
        if hit is None or hit[0] != stamp:
            block = self.observed[coords[0] * cb : (coords[0] + 1) * cb, coords[1] * ca : (coords[1] + 1) * ca]
            hit = self._blocks[coords] = (stamp, np.asarray(block, dtype=bool))
        block = hit[1]
        i, j = b - coords[0] * cb, a - coords[1] * ca
        return i < block.shape[0] and j < block.shape[1] and bool(block[i, j])


#: Track variables whose present tracks have every chunk that overlaps a contig.
WHOLE_TRACKS = ("signal", "held_out")


def required_chunks(root: Path, variable: str) -> RequiredChunks | None:
    """The rule of required chunks for ``variable``, or None (``imputed`` may be imputed region by
    region, so any of its chunks may be missing)."""
    if variable not in WHOLE_TRACKS:
        return None
    try:
        return RequiredChunks(root, variable)
    except Exception:  # no observed mask or genome: nothing is known to be required
        return None


class CheckedStore(LocalStore):
    """A zarr local store that checks every chunk it reads (:class:`ChunkLayout`) and, read-only,
    that no required chunk of ``signal`` is missing (:class:`RequiredChunks`).

    :func:`epitensor.open_dataset` reads through it, so dask and xarray computations raise
    :class:`~epitensor.exceptions.CorruptChunkError` instead of returning damaged values. Metadata
    (``zarr.json``) and partial reads pass unchanged.
    """

    def __init__(self, root, *, read_only: bool = False):
        super().__init__(Path(os.fspath(root)), read_only=read_only)
        self._layouts: dict[str, ChunkLayout | None] = {}
        self._required: dict[str, RequiredChunks | None] = {}

    def _layout(self, array: str) -> ChunkLayout | None:
        if array not in self._layouts:
            try:
                meta = json.loads((self.root / array / "zarr.json").read_bytes())
                self._layouts[array] = ChunkLayout(meta) if meta.get("node_type") == "array" else None
            except (OSError, ValueError):
                self._layouts[array] = None
        return self._layouts[array]

    def _chunk(self, key: str, byte_range) -> tuple[str, list[str]] | None:
        """``(array, chunk coordinates)`` of a whole-chunk read, else None."""
        array, sep, coords = key.rpartition("/c/")
        if byte_range is not None or not sep or key.endswith("zarr.json"):
            return None
        return array, coords.split("/")

    def _damage(self, key: str, buf) -> str | None:
        """The problem of chunk bytes ``buf`` (checks only, no zarr call), or None."""
        layout = self._layout(key.rpartition("/c/")[0])
        if buf is None or layout is None:
            return None
        try:
            layout.payload(buf.to_bytes())
        except ChunkDamage as err:
            return str(err)
        return None

    def _missing(self, array: str, coords: list[str]) -> bool:
        """True when the absent chunk ``coords`` of ``array`` must exist (read-only stores)."""
        if not self.read_only or array not in WHOLE_TRACKS or len(coords) != 3:
            return False
        if array not in self._required:
            self._required[array] = required_chunks(self.root, array)
        rule = self._required[array]
        return rule is not None and rule.required(*map(int, coords))

    def _checked(self, key: str, buf, byte_range):
        chunk = self._chunk(key, byte_range)
        if chunk is not None:
            problem = MISSING if buf is None and self._missing(*chunk) else self._damage(key, buf)
            if problem:
                raise corrupt_chunk(self.root, chunk[0], key, problem)
        return buf

    async def get(self, key, prototype=None, byte_range=None):
        buf = await super().get(key, prototype, byte_range)
        chunk = self._chunk(key, byte_range)
        if chunk is None or (buf is None and not (self.read_only and chunk[0] in WHOLE_TRACKS)):
            return buf
        if buf is not None and self._damage(key, buf) is None:
            return buf
        # the rule of required chunks and the error's labels read zarr arrays: not on zarr's event loop
        return await asyncio.to_thread(self._checked, key, buf, byte_range)

    def get_sync(self, key, *, prototype=None, byte_range=None):
        return self._checked(key, super().get_sync(key, prototype=prototype, byte_range=byte_range), byte_range)
