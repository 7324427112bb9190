"""Whole-chunk reads and writes of a track variable, straight to the chunk files; chunk checks.

A store's track variables (``signal``, ``imputed``, ...) are Zarr v3 arrays in ``(1, 1, L)``
chunks, float32, encoded with the ``bytes`` codec (little-endian), then Blosc, then ``crc32c``
(a 4-byte CRC-32C of the Blosc bytes, little-endian, appended to each chunk file). zarr-python
moves every chunk through its asyncio event loop and two worker-thread hand-offs. For the 1 Mb
pieces that ingestion writes and region reads touch, that costs several times the decoding and
file I/O themselves. ``benchmarks/bench_libraries.py`` measures this module against zarr-python,
zarr-python with the zarrs codec pipeline, and tensorstore; it stays while it is at least 1.5x
faster than the fastest of them (the tests check it against them bit for bit).

:class:`ChunkFiles` does the same work in the calling thread, following the Zarr v3
specification for exactly this layout:

- the chunk key comes from the array's own chunk-key encoding (``c/<b>/<a>/<k>``);
- bytes are encoded and decoded with numcodecs' Blosc, configured from the array metadata (the
  call zarr-python makes), and the CRC-32C is computed with ``google_crc32c`` as zarr's
  ``crc32c`` codec does, so the files are byte-identical (tested);
- writes go to a ``.partial`` file and are renamed into place, as zarr's local store does;
- a chunk that is all fill value (NaN) is deleted rather than written (``write_empty_chunks``
  off, zarr's default).

Damaged chunks are never returned as values. Every chunk file is checked before Blosc sees it
(:class:`ChunkLayout`): its checksum, or, in stores written before checksums (``bytes`` + Blosc
only), its Blosc header (the compressed size must be the file's size and the decoded size the
chunk's), so that truncated or garbage bytes never reach Blosc (which reads out of bounds on
them, numcodecs #228). A chunk missing from an observed ``signal`` track (or a written ``held_out``
track) where it overlaps a contig is damage too: values there are always finite, so such a chunk
is always written (:class:`RequiredChunks`); so is a missing ``observed`` chunk whose tracks hold
signal. Any of these raises :class:`~epitensor.exceptions.CorruptChunkError`
naming the store, variable, track and chunk. Stores without checksums detect truncated, emptied
and missing chunks and altered headers, but a bit flipped inside the compressed data of such a
store can still decode to wrong values: rewrite old stores to get checksums.

:class:`CheckedStore` applies the same checks to every chunk that zarr (and so xarray and dask)
reads through :func:`epitensor.open_dataset`. :meth:`ChunkFiles.open` returns None for any array
that does not have exactly the layouts above (other codecs, sharding, another dtype or byte
order). Callers then go through zarr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec
from zarr.storage import LocalStore

from .exceptions import CorruptChunkError
from .precision import precision_of

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_BLOSC_HEADER = 16
MISSING = ("the file is missing although the track holds data (every chunk of an observed or written track "
           "that overlaps a contig is written)")


def compressors() -> tuple:
    """The bytes-to-bytes codecs of every array epitensor creates: Blosc (lz4), then ``crc32c``."""
    return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec())


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
        from .genome import Genome

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


class ChunkFiles:
    """Direct chunk I/O for one ``(biosample, assay, position)`` variable of a local store.

    Use :meth:`open`; it returns None when the array's layout is not one this class handles.
    Reads check every chunk (:class:`ChunkLayout`, :class:`RequiredChunks`) and raise
    :class:`~epitensor.exceptions.CorruptChunkError` for a damaged one.

    Examples
    --------
    >>> files = ChunkFiles.open("compendium.zarr", "signal")            # doctest: +SKIP
    >>> files.read(0, 3, 1_000_000, 1_040_000).shape                    # doctest: +SKIP
    (40000,)
    """

    def __init__(self, root: Path, variable: str, array: zarr.Array, codec: numcodecs.Blosc, checksum: bool):
        self.root, self.variable = root, variable
        self.folder = root / variable
        self.array = array
        self.chunk = int(array.chunks[2])
        self.length = int(array.shape[2])
        self.checksum = checksum
        self._codec = codec
        self._layout = ChunkLayout(array.metadata.to_dict())
        self.precision = precision_of(array.attrs)  # applied by write, as the zarr-path writers do
        self._rule: list[RequiredChunks | None] = []  # read on the first missing chunk

    @classmethod
    def open(cls, store, variable: str) -> ChunkFiles | None:
        """Chunk files of ``store/variable``, or None when zarr must do the I/O (also for a store on
        an object store)."""
        from .storage_location import is_remote

        if is_remote(store):
            return None
        root = Path(os.fspath(store))
        try:
            array = zarr.open_array(str(root), path=variable, mode="r")
        except Exception:  # not there, not an array: the caller's zarr path reports it
            return None
        meta = array.metadata
        codecs = tuple(getattr(meta, "codecs", ()))
        checksum = len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec)
        if (
            meta.zarr_format != 3
            or sys.byteorder != "little"
            or array.dtype != np.float32
            or len(array.shape) != 3
            or tuple(array.chunks[:2]) != (1, 1)
            or not (isinstance(meta.fill_value, float | np.floating) and np.isnan(meta.fill_value))
            or array.config.write_empty_chunks
            or len(codecs) != 2 + checksum
            or not isinstance(codecs[0], BytesCodec)
            or getattr(codecs[0].endian, "value", codecs[0].endian) not in ("little", None)
            or not isinstance(codecs[1], BloscCodec)
        ):
            return None
        blosc = codecs[1]
        config = {"cname": blosc.cname.value, "clevel": blosc.clevel, "shuffle": _SHUFFLE[blosc.shuffle.value],
                  "blocksize": blosc.blocksize, "typesize": blosc.typesize}
        return cls(root, variable, array, numcodecs.Blosc.from_config(config), checksum)

    def _key(self, b: int, a: int, k: int) -> str:
        return self.array.metadata.encode_chunk_key((b, a, k))

    def _required(self, b: int, a: int, k: int) -> bool:
        if not self._rule:
            self._rule.append(required_chunks(self.root, self.variable))
        return self._rule[0] is not None and self._rule[0].required(b, a, k)

    def _damaged(self, b: int, a: int, k: int, problem: str) -> CorruptChunkError:
        return corrupt_chunk(self.root, self.variable, f"{self.variable}/{self._key(b, a, k)}", problem)

    def decode(self, b: int, a: int, k: int, raw: bytes) -> np.ndarray:
        """The ``chunk`` float32 values of chunk file bytes ``raw``, checked before decoding."""
        try:
            payload = self._layout.payload(raw)
            values = np.frombuffer(self._codec.decode(payload), dtype="<f4")
        except ChunkDamage as err:
            raise self._damaged(b, a, k, str(err)) from None
        except Exception as err:  # Blosc's own errors on bytes that passed the checks
            raise self._damaged(b, a, k, f"Blosc cannot decode it ({err})") from None
        if values.shape[0] != self.chunk:
            raise self._damaged(b, a, k, f"it decodes to {values.shape[0]:,} values, a chunk holds {self.chunk:,}")
        return values

    def read(self, b: int, a: int, lo: int, hi: int) -> np.ndarray:
        """float32 values of positions ``[lo, hi)`` of track ``(b, a)`` (NaN where no chunk).

        Raises
        ------
        CorruptChunkError
            A chunk is damaged, or missing where the track is observed and overlaps a contig.
        """
        out = np.full(hi - lo, np.nan, dtype=np.float32)
        for k in range(lo // self.chunk, (hi - 1) // self.chunk + 1):
            first = k * self.chunk
            try:
                raw = (self.folder / self._key(b, a, k)).read_bytes()
            except FileNotFoundError:
                if self._required(b, a, k):
                    raise self._damaged(b, a, k, MISSING) from None
                continue  # never written: all fill value
            values = self.decode(b, a, k, raw)
            s, e = max(lo, first), min(hi, first + values.shape[0])
            out[s - lo : e - lo] = values[s - first : e - first]
        return out

    def write(self, b: int, a: int, k: int, values: np.ndarray) -> None:
        """Write chunk ``k`` of track ``(b, a)`` whole (``values`` covers the whole chunk), rounded to
        the variable's storage precision (:mod:`epitensor.precision`)."""
        end = min((k + 1) * self.chunk, self.length)
        values = self.precision.round(np.ascontiguousarray(values, dtype="<f4"))
        if values.shape != (end - k * self.chunk,):
            raise ValueError(f"chunk {k} holds {end - k * self.chunk} values, got {values.shape}")
        path = self.folder / self._key(b, a, k)
        if np.isnan(values).all():
            path.unlink(missing_ok=True)  # an empty chunk is no file, as zarr does it
            return
        if values.shape[0] < self.chunk:  # the edge chunk is stored full size, padded with fill
            values = np.concatenate([values, np.full(self.chunk - values.shape[0], np.nan, dtype="<f4")])
        encoded = self._codec.encode(values)
        if self.checksum:
            encoded = bytes(encoded) + google_crc32c.value(encoded).to_bytes(4, "little")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        tmp.write_bytes(encoded)
        os.replace(tmp, path)


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
