"""Whole-chunk reads and writes of a track variable, straight to the chunk files.

A store's track variables (``signal``, ``imputed``, ...) are Zarr v3 arrays in ``(1, 1, L)``
chunks, float32, encoded with the ``bytes`` codec (little-endian) and then Blosc. zarr-python
moves every chunk through its asyncio event loop and two worker-thread hand-offs. For the 1 Mb
pieces that ingestion writes and region reads touch, that costs several times the decoding and
file I/O themselves (measured: 3.1 ms per chunk write, of which encoding and the file write are
0.6 ms).

:class:`ChunkFiles` does the same work in the calling thread, following the Zarr v3
specification for exactly this layout:

- the chunk key comes from the array's own chunk-key encoding (``c/<b>/<a>/<k>``);
- bytes are encoded and decoded with numcodecs' Blosc, configured from the array metadata (the
  call zarr-python makes, so the files are byte-identical, which is tested);
- writes go to a ``.partial`` file and are renamed into place, as zarr's local store does;
- a chunk that is all fill value (NaN) is deleted rather than written (``write_empty_chunks``
  off, zarr's default).

:meth:`ChunkFiles.open` returns None for any array that does not have exactly this layout (other
codecs, sharding, another dtype or byte order). Callers then go through zarr.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


class ChunkFiles:
    """Direct chunk I/O for one ``(biosample, assay, position)`` variable of a local store.

    Use :meth:`open`; it returns None when the array's layout is not the one this class handles.

    Examples
    --------
    >>> files = ChunkFiles.open("compendium.zarr", "signal")            # doctest: +SKIP
    >>> files.read(0, 3, 1_000_000, 1_040_000).shape                    # doctest: +SKIP
    (40000,)
    """

    def __init__(self, folder: Path, array: zarr.Array, codec: numcodecs.Blosc):
        self.folder = folder
        self.array = array
        self.chunk = int(array.chunks[2])
        self.length = int(array.shape[2])
        self._codec = codec

    @classmethod
    def open(cls, store, variable: str) -> ChunkFiles | None:
        """Chunk files of ``store/variable``, or None when zarr must do the I/O."""
        root = Path(os.fspath(store))
        try:
            array = zarr.open_array(str(root), path=variable, mode="r")
        except Exception:  # not there, not an array: the caller's zarr path reports it
            return None
        meta = array.metadata
        codecs = getattr(meta, "codecs", ())
        if (
            meta.zarr_format != 3
            or sys.byteorder != "little"
            or array.dtype != np.float32
            or len(array.shape) != 3
            or tuple(array.chunks[:2]) != (1, 1)
            or not (isinstance(meta.fill_value, float | np.floating) and np.isnan(meta.fill_value))
            or array.config.write_empty_chunks
            or len(codecs) != 2
            or not isinstance(codecs[0], BytesCodec)
            or getattr(codecs[0].endian, "value", codecs[0].endian) not in ("little", None)
            or not isinstance(codecs[1], BloscCodec)
        ):
            return None
        blosc = codecs[1]
        config = {"cname": blosc.cname.value, "clevel": blosc.clevel, "shuffle": _SHUFFLE[blosc.shuffle.value],
                  "blocksize": blosc.blocksize, "typesize": blosc.typesize}
        return cls(root / variable, array, numcodecs.Blosc.from_config(config))

    def _path(self, b: int, a: int, k: int) -> Path:
        return self.folder / self.array.metadata.encode_chunk_key((b, a, k))

    def read(self, b: int, a: int, lo: int, hi: int) -> np.ndarray:
        """float32 values of positions ``[lo, hi)`` of track ``(b, a)`` (NaN where no chunk)."""
        out = np.full(hi - lo, np.nan, dtype=np.float32)
        for k in range(lo // self.chunk, (hi - 1) // self.chunk + 1):
            first = k * self.chunk
            try:
                raw = self._path(b, a, k).read_bytes()
            except FileNotFoundError:
                continue  # never written: all fill value
            values = np.frombuffer(self._codec.decode(raw), dtype="<f4")
            s, e = max(lo, first), min(hi, first + values.shape[0])
            out[s - lo : e - lo] = values[s - first : e - first]
        return out

    def write(self, b: int, a: int, k: int, values: np.ndarray) -> None:
        """Write chunk ``k`` of track ``(b, a)`` whole (``values`` covers the whole chunk)."""
        end = min((k + 1) * self.chunk, self.length)
        values = np.ascontiguousarray(values, dtype="<f4")
        if values.shape != (end - k * self.chunk,):
            raise ValueError(f"chunk {k} holds {end - k * self.chunk} values, got {values.shape}")
        path = self._path(b, a, k)
        if np.isnan(values).all():
            path.unlink(missing_ok=True)  # an empty chunk is no file, as zarr does it
            return
        if values.shape[0] < self.chunk:  # the edge chunk is stored full size, padded with fill
            values = np.concatenate([values, np.full(self.chunk - values.shape[0], np.nan, dtype="<f4")])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        tmp.write_bytes(self._codec.encode(values))
        os.replace(tmp, path)
