"""The Dask tasks of an ingestion: read and bin one chunk of a piece and write it; write a piece's record."""

from __future__ import annotations

import errno
from contextlib import contextmanager

import numpy as np

from ..exceptions import DataError, EpitensorError, ObjectStoreError, SchemaError, WriteError
from ..genome import Genome
from ..store import TrackArray, write_record
from .bigwig import apply_transform, read_bins
from .peaks import peak_bins
from .pieces import Piece, describe
from .progress import PROGRESS_GROUP


@contextmanager
def writing(store, what: str = ""):
    """Turn an OSError of the writes in this block (a full disk, no permission) into a WriteError."""
    try:
        yield
    except OSError as err:
        if isinstance(err, EpitensorError):
            raise
        raise write_error(store, err, what) from err


def write_error(store, err: OSError, what: str = "") -> WriteError:
    """The :class:`WriteError` for an OSError writing ``store`` (a full disk names the fix of a rerun)."""
    if err.errno == errno.ENOSPC:
        return WriteError(
            f"disk full writing {store}{what}; free some space and run the same ingest again: it "
            "keeps the tracks that finished and redoes the others (no half track is kept)"
        )
    return WriteError(
        f"cannot write {store}{what}: {err}; check that the store's folder is writable, then run the "
        "same ingest again (it keeps the tracks that finished)"
    )


# ---------------------------------------------------------------------- tasks
def ingest_chunk(store, shape: tuple, piece: dict, lo_bin: int, hi_bin: int, first_pos: int, chunk_end: int, length: int, bin_size: int, genome: Genome | None = None) -> int:
    """Read bins ``[lo_bin, hi_bin)`` of one piece and write its whole store chunk."""
    p = Piece(**piece)
    try:
        if p.files:  # a peak track: its replicate files painted onto the bins
            bins = peak_bins(p.files, genome, p.contig, lo_bin, hi_bin, peak_value=p.peak_value, missing_chroms=p.peak_missing)
            values = apply_transform(bins, p.transform)
        else:
            values = read_bins(p.local, p.file_contig, length, lo_bin, hi_bin, bin_size=bin_size, transform=p.transform, check=p.check)
    except Exception as err:  # pyBigWig's RuntimeError, zlib, OSError ...: one error naming the track
        raise _read_failed(p, lo_bin, hi_bin, bin_size, err) from err
    out = np.full(chunk_end - (first_pos + lo_bin), np.nan, dtype=np.float32)
    out[: values.shape[0]] = values
    try:
        _signal_array(store, shape).write(p.b, p.a, first_pos + lo_bin, out)  # a whole chunk
    except OSError as err:
        raise write_error(store, err, f" ({describe(p)}, {p.contig})") from err
    return hi_bin - lo_bin


_TRACKS: dict[tuple, TrackArray] = {}


def _signal_array(store, shape: tuple) -> TrackArray:
    """The store's ``signal`` track variable, opened once per worker process (opening costs as
    much as a write)."""
    key = (store, tuple(shape))
    found = _TRACKS.get(key)
    if found is None:
        found = TrackArray.open(store, "signal")
        if found.shape != tuple(shape):
            raise SchemaError(f"store {store} changed while ingesting: signal has shape {found.shape}, expected {shape}")
        _TRACKS.clear()  # keep one store's array per process
        _TRACKS[key] = found
    return found


def write_piece_record(store, piece: dict, *chunks_done) -> str:
    """Task: write the completion record of ``piece`` (after ``chunks_done``, its chunk tasks)."""
    p = Piece(**piece)
    try:  # whole or not at all, after every chunk of the piece is stored (a rename; on an object store one PUT)
        write_record(store, f"{PROGRESS_GROUP}/{p.record_name}", p.record())
    except ObjectStoreError:  # already names the store and the fix
        raise
    except OSError as err:
        raise write_error(store, err, f" ({describe(p)}, {p.contig})") from err
    return p.record_name


def _read_failed(p: Piece, lo_bin: int, hi_bin: int, bin_size: int, err: Exception) -> EpitensorError:
    where = f"{p.contig}:{lo_bin * bin_size:,}-{hi_bin * bin_size:,}"
    if isinstance(err, EpitensorError):  # already says what is wrong with the file
        return type(err)(f"{describe(p)}: {err}")
    return DataError(
        f"{p.local} ({describe(p)}): cannot read {where} ({type(err).__name__}: {err}); the file is "
        "damaged (truncated or corrupt). Download or regenerate it; nothing of this track is kept"
    )
