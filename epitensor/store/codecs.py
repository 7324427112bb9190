"""The one codec configuration of the arrays epitensor creates: Blosc, then a CRC-32C checksum.

Track variables hold plain little-endian float32 (the ``bytes`` codec), compressed by Blosc and
followed by ``crc32c`` (4 bytes, little-endian, of the Blosc bytes): core Zarr v3 codecs that
any Zarr v3 client decodes. Values at full precision use Blosc lz4 with byte shuffle; values
rounded to a storage precision (:mod:`epitensor.store.precision`) use Blosc zstd level 1 with
bit shuffle, which turns their runs of zero low bits into the saving. The direct chunk path
(:class:`~epitensor.store.chunk_files.ChunkFiles`) encodes with numcodecs' Blosc configured from
the same metadata (:func:`numcodecs_blosc`), so its files are byte-identical to zarr's.
"""

from __future__ import annotations

import numcodecs
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec

_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def compressors(rounded: bool = False) -> tuple:
    """The bytes-to-bytes codecs of an array epitensor creates: Blosc, then ``crc32c``.

    Parameters
    ----------
    rounded : bool, default False
        Values rounded to a storage precision: Blosc zstd (level 1) with bit shuffle instead of
        Blosc lz4 (level 5) with byte shuffle.

    Examples
    --------
    >>> [type(c).__name__ for c in compressors()]
    ['BloscCodec', 'Crc32cCodec']
    """
    if rounded:
        return (BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"), Crc32cCodec())
    return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec())


def direct_codecs(codecs) -> tuple[numcodecs.Blosc, bool] | None:
    """numcodecs' Blosc and whether a CRC-32C follows, for an array's zarr codecs ``bytes`` (little
    endian), Blosc and optionally ``crc32c``; None for any other codec chain."""
    codecs = tuple(codecs)
    checksum = len(codecs) == 3 and isinstance(codecs[2], Crc32cCodec)
    if (len(codecs) != 2 + checksum or not isinstance(codecs[0], BytesCodec)
            or getattr(codecs[0].endian, "value", codecs[0].endian) not in ("little", None)
            or not isinstance(codecs[1], BloscCodec)):
        return None
    return numcodecs_blosc(codecs[1]), checksum


def numcodecs_blosc(blosc: BloscCodec) -> numcodecs.Blosc:
    """numcodecs' Blosc configured as zarr's ``blosc`` codec ``blosc`` (the call zarr-python makes)."""
    config = {"cname": blosc.cname.value, "clevel": blosc.clevel, "shuffle": _SHUFFLE[blosc.shuffle.value],
              "blocksize": blosc.blocksize, "typesize": blosc.typesize}
    return numcodecs.Blosc.from_config(config)
