"""Export one track (observed or imputed) to a bigWig file of 25 bp fixed-step entries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..exceptions import DataError, SchemaError, WriteError
from ..genome import Genome

#: Most zoom levels an exported bigWig holds (libBigWig writes fewer for short tracks).
ZOOM_LEVELS = 10


def to_bigwig(da: xr.DataArray, path, *, inverse_transform: bool = False) -> Path:
    """Write a 1-D track DataArray to a bigWig file, one entry per bin.

    Parameters
    ----------
    da : xarray.DataArray
        One biosample and one assay along ``position`` (e.g.
        ``ds.signal.sel(biosample="HepG2", assay="H3K27ac")``, whole-genome or cut with
        ``.epi.region``), with the store's genome attributes. One or more contigs.
    path : str or Path
        The bigWig file to write (replaced if it exists; written under a temporary name first).
    inverse_transform : bool, default False
        Undo the store's transform (``sinh`` of ``arcsinh`` signal) to write the original scale.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    The header lists every contig of the store's genome with its length. Each run of consecutive
    bins becomes fixed-step entries of span and step ``bin_size``; the last, partial bin of a
    contig ends at the contig's end. NaN bins (no value) are left out of the file. The file holds
    zoom levels (up to ``ZOOM_LEVELS`` summaries, each coarser than the last, that IGV and the UCSC
    browser draw zoomed-out views from). The array is read one chunk at a time, so memory does not
    grow with the track's length.

    Raises
    ------
    DataError
        The array has other dimensions than ``position``, or holds no values at all.
    WriteError
        ``path`` is a folder, its folder does not exist or cannot be written, or the disk is full.
    SchemaError
        The genome attributes are missing, or ``inverse_transform`` is asked of an array whose
        transform is unknown.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.open_dataset("compendium.zarr")                                       # doctest: +SKIP
    >>> track = ds.signal.epi.region("chr21:10M-11M").sel(biosample="HepG2", assay="H3K27ac")  # doctest: +SKIP
    >>> to_bigwig(track, "HepG2_H3K27ac.bw", inverse_transform=True)                  # doctest: +SKIP
    """
    from ..store import read_selection, store_source

    da = _one_track(da)
    genome = Genome.from_attrs(da.attrs)
    undo = _inverse(da, inverse_transform)
    positions = _positions(da, genome)
    order = np.argsort(positions, kind="stable")
    if (np.diff(positions[order]) == 0).any():
        raise DataError("the track repeats some positions (overlapping regions?); select each bin once")
    if not (order == np.arange(order.size)).all():
        da, positions = da.isel(position=order), positions[order]
    source = store_source(da)  # an unmodified store selection: its chunks are read directly
    path = Path(path)
    check_writable(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    bw = None
    wrote = 0
    try:
        bw = create_bigwig(tmp, shown=path)
        step = genome.chunk_bins
        try:
            bw.addHeader(list(zip(genome.contigs, genome.lengths)), maxZooms=ZOOM_LEVELS)
            for lo in range(0, positions.size, step):
                block = slice(lo, lo + step)
                part = read_selection(da, source, block) if source is not None else da.isel(position=block)
                values = np.asarray(part.values, dtype=np.float64)
                wrote += _write_block(bw, genome, positions[lo : lo + step], undo(values))
            done, bw = bw, None
            done.close()
        except (RuntimeError, SystemError) as err:  # libBigWig failed to write (pyBigWig: SystemError)
            raise _write_failed(path) from err
        if wrote == 0:
            raise DataError("the track holds no values (all NaN: an unobserved track?); nothing to export")
        _check_written(tmp, path)
        os.replace(tmp, path)
    finally:
        if bw is not None:
            bw.close()
        if tmp.exists():
            tmp.unlink()
    return path


def check_writable(path) -> Path:
    """Raise :class:`WriteError` unless a file can be created at ``path`` (checked before any C
    library sees the path: ``pyBigWig.open(path, "w")`` crashes the interpreter when it cannot).

    Examples
    --------
    >>> import tempfile
    >>> check_writable(Path(tempfile.mkdtemp()) / "t.bw").name
    't.bw'
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; pass a file name, e.g. {path / 'track.bw'}")
    parent = path.parent
    if not parent.exists():
        raise WriteError(f"cannot write {path}: folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise WriteError(f"cannot write {path}: {parent} is a file, not a folder; choose a path inside a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {path}: folder {parent} is not writable; choose a folder you can write to")
    return path


def create_bigwig(path, *, shown=None):
    """Open a new bigWig file at ``path`` for writing with pyBigWig, never handing pyBigWig a path it
    cannot open.

    The file is first created by Python, so a read-only file system, a full disk or a missing folder
    raises :class:`WriteError` (naming ``shown``, default ``path``) instead of crashing pyBigWig.

    Examples
    --------
    >>> import tempfile
    >>> bw = create_bigwig(Path(tempfile.mkdtemp()) / "t.bw")
    >>> bw.addHeader([("chr1", 100)]); bw.close()
    """
    import pyBigWig

    path, shown = Path(path), Path(shown if shown is not None else path)
    check_writable(path)
    try:
        with open(path, "wb"):
            pass
    except OSError as err:
        raise WriteError(f"cannot write {shown}: {err.strerror or err}; choose a folder you can write to (and free some disk space)") from None
    bw = pyBigWig.open(str(path), "w")
    if bw is None:
        raise WriteError(f"pyBigWig could not open {shown} for writing; choose a folder you can write to")
    return bw


def _check_written(tmp: Path, path: Path) -> None:
    """Reopen a bigWig just written: libBigWig only prints its write errors (a full disk)."""
    from .bigwig import open_bigwig
    from .bigwig_blocks import BigWigBlocks

    try:
        open_bigwig(tmp).close()
        with BigWigBlocks(tmp) as blocks:
            complete = blocks.is_complete()
    except (DataError, ValueError, OSError):
        complete = False
    if not complete:
        raise _write_failed(path)


def _write_failed(path) -> WriteError:
    return WriteError(f"writing {path} failed (the file came out truncated: is the disk full?); free some space and export again")


def _one_track(da) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise DataError(f"to_bigwig needs a DataArray of one track, got {type(da).__name__}")
    extra = [d for d in da.dims if d != "position"]
    if any(da.sizes[d] != 1 for d in extra) or "position" not in da.dims:
        raise DataError(
            f"to_bigwig writes one track along 'position', but this array has dims {dict(da.sizes)}; "
            "select one biosample and one assay first, e.g. da.sel(biosample='HepG2', assay='H3K27ac')"
        )
    return da.squeeze(extra, drop=False) if extra else da


def _inverse(da, inverse_transform):
    if not inverse_transform:
        return lambda v: v
    transform = da.attrs.get("transform")
    if transform == "arcsinh":
        return np.sinh
    if transform == "none":
        return lambda v: v
    raise SchemaError(f"inverse_transform=True but the array's transform is {transform!r}; open it with epitensor.open_dataset")


def _positions(da, genome) -> np.ndarray:
    if "position" in da.coords:
        return np.asarray(da["position"].values, dtype=np.int64)
    if da.sizes["position"] == genome.n_positions:
        return np.arange(genome.n_positions, dtype=np.int64)
    raise DataError(
        f"this track has {da.sizes['position']:,} positions but no position coordinate, so its bins cannot "
        "be placed on the genome; cut it with .epi.region(...) rather than .isel"
    )


def _write_block(bw, genome: Genome, positions, values) -> int:
    """Write the bins of one block as runs of consecutive, finite bins of one contig."""
    import pyBigWig

    names, starts = genome.locate(positions)
    keep = (names != "") & np.isfinite(values)
    positions, names, starts, values = positions[keep], names[keep], starts[keep], values[keep].astype(np.float32)
    if positions.size == 0:
        return 0
    breaks = np.flatnonzero((np.diff(positions) != 1) | (names[1:] != names[:-1])) + 1
    size = genome.bin_size
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, positions.size]):
        chrom, length = names[lo], genome.length(names[lo])
        full = hi if starts[hi - 1] + size <= length else hi - 1
        if full > lo:
            run = values[lo:full].astype(np.float64)  # an array where pyBigWig was built with numpy
            bw.addEntries(chrom, int(starts[lo]), values=run if pyBigWig.numpy else run.tolist(), span=size, step=size)
        if full < hi:  # the last, partial bin of the contig
            bw.addEntries([chrom], [int(starts[full])], ends=[length], values=[float(values[full])])
    return int(positions.size)
