"""Whole-chunk reads and writes of a track variable, straight to the chunk files.

A store's track variables (``signal``, ``imputed``, ...) are Zarr v3 arrays in ``(1, 1, L)``
chunks, float32, encoded as :mod:`epitensor.store.codecs` says. zarr-python moves every chunk
through its asyncio event loop and two worker-thread hand-offs; for the 1 Mb pieces that
ingestion writes and region reads touch, that costs more than the decoding and file I/O
themselves (``benchmarks/bench_libraries.py`` measures this module against zarr-python,
zarr-python with the zarrs codec pipeline, and tensorstore, and says when it stays).

:class:`ChunkFiles` does the same work in the calling thread, following the Zarr v3
specification for exactly this layout:

- the chunk key comes from the array's own chunk-key encoding (``c/<b>/<a>/<k>``);
- bytes are encoded and decoded with numcodecs' Blosc, configured from the array metadata (the
  call zarr-python makes), and the CRC-32C is computed with ``google_crc32c`` as zarr's
  ``crc32c`` codec does, so the files are byte-identical (tested);
- writes go to a ``.partial`` file and are renamed into place, as zarr's local store does;
- a chunk that is all fill value (NaN) is deleted rather than written (``write_empty_chunks``
  off, zarr's default).

Reads check every chunk (:mod:`epitensor.store.damage`, :mod:`epitensor.store.checked`).
:meth:`ChunkFiles.open` returns None for any array that does not have exactly the layouts above
(other codecs, sharding, another dtype or byte order); :class:`~epitensor.store.tracks.TrackArray`
then goes through zarr.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr

from ..exceptions import CorruptChunkError
from .checked import RequiredChunks, required_chunks
from .codecs import direct_codecs
from .damage import MISSING, ChunkDamage, ChunkLayout, corrupt_chunk
from .location import is_remote
from .precision import precision_of


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
        if is_remote(store):
            return None
        root = Path(os.fspath(store))
        try:
            array = zarr.open_array(str(root), path=variable, mode="r")
        except Exception:  # not there, not an array: the caller's zarr path reports it
            return None
        meta = array.metadata
        direct = direct_codecs(getattr(meta, "codecs", ()))
        if (
            direct is None
            or meta.zarr_format != 3
            or sys.byteorder != "little"
            or array.dtype != np.float32
            or len(array.shape) != 3
            or tuple(array.chunks[:2]) != (1, 1)
            or not (isinstance(meta.fill_value, float | np.floating) and np.isnan(meta.fill_value))
            or array.config.write_empty_chunks
        ):
            return None
        return cls(root, variable, array, *direct)

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
        the variable's storage precision (:mod:`epitensor.store.precision`)."""
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
