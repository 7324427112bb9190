"""Read bigWig files into 25 bp bins, one chromosome piece at a time.

Binning follows the papers (``docs/SCIENCE.md``): base-level values, no coverage (NaN) counts as
0, the mean over each 25 bp bin (the last, partial bin of a contig averages the bases it has), then
the transform (``arcsinh`` or ``none``). A piece is read with pybigtools' exact binned means
(``values(bins=..., summary="mean", exact=True, uncovered=0)``: cost proportional to the file's
intervals, not its bases; the same numbers as ``pyBigWig.values`` -> NaN to 0 -> 25 bp means,
tested bit-exact on the real files of ``../shared/data/bigwig``), so memory is bounded by the
piece (one store chunk, 1 Mb at the defaults), not the genome. pyBigWig opens the files for
their header and contigs (after :mod:`epitensor.io.bigwig_blocks` checks the header's layout) and
reads base-level values where a caller passes its handle.

File handles are opened inside each task and never stored on picklable objects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import ArgumentError, DataError, GenomeError
from ..genome import Genome
from .bigwig_blocks import BigWigBlocks

#: What a ``except BaseException`` around pybigtools (whose Rust panics are BaseExceptions) re-raises.
_INTERRUPTS = (KeyboardInterrupt, SystemExit)


@dataclass(frozen=True)
class BigWigInfo:
    """What ingestion needs to know about a bigWig file before reading its values.

    Attributes
    ----------
    path : str
    chroms : dict
        Contig name -> length, as written in the file's header.
    finite : bool or None
        Whether the file's total summary (sum of all values) is finite: False means the file holds
        NaN or infinite values somewhere; None means the file has no total summary.
    """

    path: str
    chroms: dict
    finite: bool | None


def open_bigwig(path):
    """Open a bigWig file with pyBigWig, raising :class:`DataError` if it is not one.

    Examples
    --------
    >>> bw = open_bigwig("H1_Ctcf.bw")  # doctest: +SKIP
    >>> bw.chroms("chr6")               # doctest: +SKIP
    171115067
    """
    import pyBigWig

    path = str(path)
    _check_readable(Path(path))
    try:  # our own reader first: pyBigWig crashes on some damaged headers
        with BigWigBlocks(path) as blocks:
            blocks.check_layout()
    except (ValueError, OSError, TypeError, OverflowError, MemoryError) as err:  # garbage sizes
        raise DataError(f"{path} cannot be opened as a bigWig file ({err}); is it a bigWig (not bedGraph, BAM or bigBed), and complete (not truncated)?") from None
    try:
        bw = pyBigWig.open(path)
    except (RuntimeError, OSError) as err:
        raise DataError(f"{path} cannot be opened as a bigWig file ({err}); is it a bigWig (not bedGraph, BAM or bigBed), and complete (not truncated)?") from None
    if bw is None or not bw.isBigWig():
        if bw is not None:
            bw.close()
        raise DataError(f"{path} is not a bigWig file (a bigBed?); ingest needs bigWig signal tracks")
    return bw


def _check_readable(path: Path) -> None:
    """Raise :class:`DataError` for a path that pyBigWig cannot read, before pyBigWig sees it."""
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a bigWig file; check the path in the manifest")
    if not path.is_file():
        raise DataError(f"bigWig file {path} does not exist; check the path in the manifest")
    if not os.access(path, os.R_OK):
        raise DataError(f"bigWig file {path} cannot be read (permission denied); make it readable (chmod +r)")
    if path.stat().st_size == 0:
        raise DataError(f"bigWig file {path} is empty (0 bytes): an interrupted download? Download or regenerate it")


def _damaged(path, chrom, start, end, err) -> DataError:
    """The error for data that pyBigWig fails to read from a file that opened."""
    return DataError(
        f"{path}: cannot read {chrom}:{start:,}-{end:,} ({err}); the file is damaged (truncated or "
        "corrupt data blocks). Download or regenerate it"
    )


def inspect_bigwig(path) -> BigWigInfo:
    """Contigs and the finiteness of all values of a bigWig file, without reading its data.

    The finiteness comes from the file's total summary (its sum of all values, which NaN or
    infinity poisons), read straight from the header because ``pyBigWig.header()`` crashes on
    such files.

    Raises
    ------
    DataError
        The file is missing or is not a bigWig file.

    Examples
    --------
    >>> info = inspect_bigwig("H1_Ctcf.bw")  # doctest: +SKIP
    >>> info.chroms, info.finite             # doctest: +SKIP
    ({'chr6': 171115067}, True)
    """
    bw = open_bigwig(path)
    try:
        chroms = dict(bw.chroms())
    except RuntimeError as err:  # a damaged chromosome tree
        raise DataError(f"{path}: cannot read its contigs ({err}); the file is damaged. Download or regenerate it") from None
    finally:
        bw.close()
    return BigWigInfo(str(path), chroms, _summary_is_finite(path))


def _summary_is_finite(path) -> bool | None:
    """Whether the total summary (min, max, sum, standard deviation) pybigtools reads from the
    header is finite, which proves every value is; None when it cannot be read."""
    import pybigtools

    try:
        with pybigtools.open(os.fspath(path)) as bw:
            summary = bw.info()["summary"]
    except BaseException as err:  # BBIReadError, or a Rust panic on a damaged header: no proof either way
        if isinstance(err, _INTERRUPTS):
            raise
        return None
    return bool(np.isfinite([summary["min"], summary["max"], summary["sum"], summary["std"]]).all())


def find_non_finite(path) -> tuple[str, int, float] | None:
    """First (contig, start, value) of a NaN or infinite value in a bigWig file, or None."""
    bw = open_bigwig(path)
    try:
        for chrom, length in bw.chroms().items():
            try:
                found = bw.intervals(chrom) or ()
            except RuntimeError as err:
                raise _damaged(path, chrom, 0, length, err) from None
            for start, _, value in found:
                if not np.isfinite(value):
                    return chrom, start, value
    finally:
        bw.close()
    return None


def match_contigs(info: BigWigInfo, genome: Genome, missing: str = "error") -> dict[str, str | None]:
    """Map each contig of ``genome`` to its name in the file (aliases such as ``1``/``chr1`` allowed).

    Parameters
    ----------
    info : BigWigInfo
    genome : Genome
    missing : {"error", "zero"}
        A genome contig absent from the file is an error, or maps to None (zero coverage).

    Raises
    ------
    GenomeError
        A contig is absent (listing the file's contigs), or its length differs from the genome's
        (a file from another genome build).
    """
    if missing not in ("error", "zero"):
        raise ArgumentError(f"missing_chroms must be 'error' or 'zero', got {missing!r}")
    if not info.chroms:
        raise DataError(f"{info.path} lists no contigs in its header; is it an empty bigWig?")
    in_file = Genome("file", list(info.chroms), list(info.chroms.values()))
    out = {}
    for contig, length in zip(genome.contigs, genome.lengths):
        try:
            name = in_file.resolve(contig)
        except GenomeError:
            if missing == "zero":
                out[contig] = None
                continue
            shown = ", ".join(list(info.chroms)[:40]) + (" ..." if len(info.chroms) > 40 else "")
            raise GenomeError(
                f"{info.path} has no contig {contig} (nor an alias of it); the file has: {shown}. "
                "Ingest only the contigs it has (chroms=[...]) or pass missing_chroms='zero' to "
                "treat the absent contig as zero coverage"
            ) from None
        if info.chroms[name] != length:
            raise GenomeError(
                f"{info.path}: contig {name} is {info.chroms[name]:,} bp but {contig} of the store's "
                f"genome {genome.assembly} is {length:,} bp; the file is from another genome build. "
                "Use files of the store's assembly (or lift them over first)"
            )
        out[contig] = name
    return out


def base_values(bw, chrom: str | None, start: int, end: int, *, label: str = "", check: bool = True) -> np.ndarray:
    """Base-level float32 values of ``[start, end)`` with no coverage (NaN) as 0.

    Parameters
    ----------
    bw : pyBigWig handle, or None for a contig absent from the file (all zeros)
    chrom : str or None
        Contig name as written in the file.
    start, end : int
        0-based half-open bp.
    label : str
        File name used in errors.
    check : bool, default True
        Look for infinite values, and for NaN values stored in the file (indistinguishable from
        no coverage in ``values``: found by comparing covered bases with non-NaN ones). Ingestion
        turns this off for files whose total summary is finite (see :func:`inspect_bigwig`),
        which proves there are none.

    Raises
    ------
    DataError
        NaN or infinite values stored in the file (with ``check``), or data pyBigWig cannot read
        (a damaged file).
    """
    if bw is None or chrom is None:
        return np.zeros(end - start, dtype=np.float32)
    try:
        values = bw.values(chrom, start, end, numpy=True)
        covered = (bw.stats(chrom, start, end, type="coverage", exact=True)[0] or 0.0) if check else None
    except RuntimeError as err:
        raise _damaged(label, chrom, start, end, err) from None
    nan = np.isnan(values)
    if check:
        if round(covered * (end - start)) != (end - start) - int(np.count_nonzero(nan)):
            _raise_non_finite(label, chrom, start, end, "NaN")
        if np.isinf(values).any():
            _raise_non_finite(label, chrom, start, end, "infinite")
    values[nan] = 0.0
    return values


def _raise_non_finite(label, chrom, start, end, kind):
    raise DataError(
        f"{label}: {kind} values in {chrom}:{start:,}-{end:,}; a bigWig track must hold finite numbers "
        "(no coverage is written as a gap, not NaN). Fix or regenerate the file"
    )


def bin_means(values: np.ndarray, bin_size: int) -> np.ndarray:
    """Mean of each ``bin_size`` bin of base-level ``values`` (float64); the last bin may be partial.

    Examples
    --------
    >>> bin_means(np.array([1, 1, 3, 3, 5], dtype=np.float32), 2)
    array([1., 3., 5.])
    """
    n = values.shape[0]
    full = n // bin_size
    # einsum sums each row in float64 without a float64 copy of the values (faster than .sum)
    sums = np.einsum("ij->i", values[: full * bin_size].reshape(full, bin_size), dtype=np.float64) / bin_size
    if n > full * bin_size:
        tail = values[full * bin_size :].sum(dtype=np.float64) / (n - full * bin_size)
        sums = np.concatenate([sums, [tail]])
    return sums


def apply_transform(means: np.ndarray, transform: str) -> np.ndarray:
    """``arcsinh`` (or nothing, for ``"none"``) of binned means, as float32."""
    if transform == "arcsinh":
        return np.arcsinh(means).astype(np.float32)
    if transform == "none":
        return means.astype(np.float32)
    raise ValueError(f"transform must be 'arcsinh' or 'none', got {transform!r}")


def read_bins(
    path,
    chrom: str | None,
    length: int,
    first_bin: int,
    end_bin: int,
    *,
    bin_size: int = 25,
    transform: str = "arcsinh",
    check: bool = True,
    bw=None,
) -> np.ndarray:
    """Binned, transformed values of bins ``[first_bin, end_bin)`` of one contig of a bigWig file.

    Parameters
    ----------
    path : str or Path
        The bigWig file.
    chrom : str or None
        The contig's name in the file; None reads zeros (contig absent from the file).
    length : int
        Contig length in bp (the last bin of the contig is partial when it is not a multiple
        of ``bin_size``).
    first_bin, end_bin : int
        Bins of the contig to read, counted from its start.
    bin_size : int, default 25
    transform : {"arcsinh", "none"}, default "arcsinh"
    check : bool, default True
        Check for NaN and infinite values when reading through ``bw`` (see :func:`base_values`);
        the pybigtools path always checks (a stored NaN or infinity makes its bin's mean so).
    bw : pyBigWig handle, optional
        Read base-level values through this pyBigWig handle and average them (:func:`base_values`,
        :func:`bin_means`). Without one, pybigtools computes the bin means from the file's
        intervals (:func:`interval_bin_means`): the same numbers at the cost of the intervals
        rather than the bases.

    Returns
    -------
    numpy.ndarray
        float32, ``end_bin - first_bin`` values.

    Raises
    ------
    DataError
        NaN or infinite values stored in the region, or data blocks that cannot be read.

    Examples
    --------
    >>> read_bins("H1_k27ac.bw", "chr6", 171115067, 1245031, 1245035)  # doctest: +SKIP
    array([3.0..., 2.9..., 2.6..., 2.6...], dtype=float32)
    """
    start, end = first_bin * bin_size, min(end_bin * bin_size, length)
    if chrom is None:
        return apply_transform(np.zeros(end_bin - first_bin), transform)
    if bw is None:
        return apply_transform(interval_bin_means(path, chrom, start, end, bin_size), transform)
    values = base_values(bw, chrom, start, end, label=str(path), check=check)
    return apply_transform(bin_means(values, bin_size), transform)


def interval_bin_means(path, chrom: str, start: int, end: int, bin_size: int = 25) -> np.ndarray:
    """Mean of each ``bin_size`` bin of ``[start, end)`` of a bigWig file, no coverage as 0 (float64).

    pybigtools' exact binned means over the file's intervals, bases without an interval counted
    as 0; the last bin ends at ``end`` and averages the bases it has (``end - start`` need not be
    a multiple of ``bin_size``).

    Raises
    ------
    DataError
        NaN or infinite values stored in the region (they make a bin's mean non-finite), or data
        blocks pybigtools cannot read (a damaged file).

    Examples
    --------
    >>> interval_bin_means("H1_k27ac.bw", "chr6", 31_125_800, 31_125_900)  # doctest: +SKIP
    array([21.16..., 22.2..., 23.0..., 23.2...])
    """
    import pybigtools

    full = (end - start) // bin_size
    cut = start + full * bin_size
    means = dict(summary="mean", exact=True, uncovered=0.0, fillna=None)
    try:
        with pybigtools.open(os.fspath(path)) as bw:
            parts = [bw.values(chrom, start, cut, bins=full, **means)] if full else []
            if cut < end:  # the last, partial bin of a contig
                parts.append(bw.values(chrom, cut, end, bins=1, **means))
    except BaseException as err:  # BBIReadError, or a Rust panic (a BaseException) on a corrupt block
        if isinstance(err, _INTERRUPTS):
            raise
        raise _damaged(path, chrom, start, end, err) from None
    out = np.concatenate(parts) if parts else np.zeros(0)
    if not np.isfinite(out).all():  # bases without an interval are 0: only stored values get here
        _raise_non_finite(path, chrom, start, end, "NaN" if np.isnan(out).any() else "infinite")
    return out


__all__ = [
    "BigWigInfo",
    "apply_transform",
    "base_values",
    "bin_means",
    "find_non_finite",
    "inspect_bigwig",
    "interval_bin_means",
    "match_contigs",
    "open_bigwig",
    "read_bins",
]
