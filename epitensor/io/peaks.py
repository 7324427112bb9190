"""Peak calls (narrowPeak, broadPeak, BED; gzipped or not) as tracks of 25 bp bins.

Rules (the same for every reader of a peak file in epitensor):

* **Format.** A file is a peak file when its name ends in ``.narrowPeak``, ``.broadPeak`` or
  ``.bed`` (each optionally followed by ``.gz``). The columns follow the suffix (narrowPeak 10,
  broadPeak 9, BED 3 to 12); a ``.bed`` file with 9 or 10 columns is read as broadPeak or
  narrowPeak. ``track``, ``browser`` and ``#`` lines are skipped, fields are tab-separated,
  coordinates are 0-based half-open.
* **Overlap.** A bin counts for a peak when the peak overlaps it by at least 1 bp: peak
  ``[start, end)`` covers bins ``start // 25`` to ``(end - 1) // 25``.
* **Values.** ``"coverage"`` (default): 1.0 for a bin covered by a peak, 0.0 elsewhere.
  ``"signalValue"``, ``"pValue"`` (-log10 p, as the formats store it) or ``"qValue"`` (-log10 q):
  the largest value of the peaks covering the bin, 0.0 where no peak does. The formats write -1
  for a value not given; such a row is an error naming the line (choose another column).
* **Replicates.** Several files of one (biosample, assay) track are merged: the union of their
  peaks for coverage, the largest value over all of them for a value column.
* **Contigs.** A store contig without peaks in a file is 0.0 (a peak file lists peaks, not
  contigs); rows on contigs that the store does not have are skipped; a file with rows but none on
  a contig of the store's assembly is an error (another assembly or contig naming?), a peak
  running past the end of its contig too (another genome build).

Parsed files are kept in a small per-process cache, so the chunk tasks of one track parse each
file once.
"""

from __future__ import annotations

import gzip
import os
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..exceptions import ArgumentError, DataError, GenomeError
from ..genome import Genome

#: What a peak track holds per bin (see the module notes).
PEAK_VALUES = ("coverage", "signalValue", "pValue", "qValue")
#: Column (0-based) of each value in narrowPeak and broadPeak files.
VALUE_COLUMNS = {"signalValue": 6, "pValue": 7, "qValue": 8}
#: Columns per format.
FORMAT_COLUMNS = {"narrowPeak": 10, "broadPeak": 9}
_SUFFIXES = {".narrowpeak": "narrowPeak", ".broadpeak": "broadPeak", ".bed": "BED"}
#: The rules, as recorded in a store's ``peaks`` attribute.
PEAK_RULES = {
    "overlap": "a bin counts when a peak overlaps it by >= 1 bp",
    "replicates": "union of peaks (coverage) or max over files (value columns)",
    "outside_peaks": 0.0,
}


def peak_format(path) -> str | None:
    """The peak format a file name says (``"narrowPeak"``, ``"broadPeak"``, ``"BED"``), or None.

    Examples
    --------
    >>> peak_format("K562/wgEncodeAwgTfbsSydhK562Pol3UniPk.narrowPeak.gz"), peak_format("a.bigWig")
    ('narrowPeak', None)
    """
    name = os.path.basename(str(path)).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _SUFFIXES.get(os.path.splitext(name)[1])


def is_peak_file(path) -> bool:
    """Whether ``path`` names a peak file (by its suffix, see :func:`peak_format`).

    Examples
    --------
    >>> is_peak_file("E017-H3K4me1.broadPeak.gz"), is_peak_file("E017-H3K4me1.bw")
    (True, False)
    """
    return peak_format(path) is not None


def check_peak_value(peak_value) -> str:
    """``peak_value`` if it is one of :data:`PEAK_VALUES`, else an :class:`ArgumentError`."""
    if peak_value not in PEAK_VALUES:
        raise ArgumentError(f"peak_value must be one of {list(PEAK_VALUES)} (what a bin of a peak track holds), got {peak_value!r}")
    return peak_value


def read_peaks(path, genome: Genome, peak_value: str = "coverage", missing_chroms: str = "error") -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The peaks of a file on the contigs of ``genome``: contig -> (starts, ends, values).

    Parameters
    ----------
    path : str or Path
        A narrowPeak, broadPeak or BED file, gzipped or not.
    genome : Genome
        Contigs to keep (aliases such as ``21``/``chr21`` accepted); rows on other contigs are
        skipped.
    peak_value : {"coverage", "signalValue", "pValue", "qValue"}
        ``values`` are 1.0 for coverage, else the column.
    missing_chroms : {"error", "zero"}, default "error"
        A file with rows but none on a contig of ``genome``'s assembly is an error, or no peaks.

    Returns
    -------
    dict
        One entry per contig of ``genome`` with peaks: int64 starts and ends, float64 values,
        in the order of the file.

    Raises
    ------
    DataError
        The file is missing, unreadable, not text, has the wrong number of columns, a coordinate
        that is not a whole number, ``end <= start``, or a value that is not a number (or -1, "not
        given"), naming the line.
    GenomeError
        A peak past the end of its contig, or no row on a contig of ``genome``'s assembly.

    Examples
    --------
    >>> import epitensor as et
    >>> genome = et.Genome.from_assembly("hg19", contigs=["chr21", "chr22"])
    >>> peaks = read_peaks("GM12878/wgEncodeAwgTfbsBroadGm12878CtcfUniPk.narrowPeak.gz", genome)  # doctest: +SKIP
    >>> peaks["chr21"][0][:2]                                                                     # doctest: +SKIP
    array([9485005, 9590188])
    """
    check_peak_value(peak_value)
    path = Path(path)
    kind = peak_format(path) or "BED"
    lines = _text_lines(path)
    column = VALUE_COLUMNS.get(peak_value)
    names: dict[str, str | None] = {}
    found: dict[str, list] = {}
    width = None
    n_rows = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if width is None:
            width = _check_width(path, kind, len(fields), number, peak_value)
        elif len(fields) != width:
            raise DataError(f"{path} line {number} has {len(fields)} tab-separated columns, the lines before it {width}; every line of a peak file needs the same columns")
        n_rows += 1
        contig = names.get(fields[0], "")
        if contig == "":
            try:
                contig = genome.resolve(fields[0])
            except GenomeError:
                contig = None
            names[fields[0]] = contig
        if contig is None:
            continue
        start, end = _coordinate(path, number, fields[1], "start"), _coordinate(path, number, fields[2], "end")
        if end <= start:
            raise DataError(f"{path} line {number}: end {end:,} is not after start {start:,}; a peak is [start, end) with end > start")
        if end > genome.length(contig):
            raise GenomeError(
                f"{path} line {number}: peak {fields[0]}:{start:,}-{end:,} runs past the end of {contig} "
                f"({genome.length(contig):,} bp in {genome.assembly}); the file is from another genome build"
            )
        value = 1.0 if column is None else _value(path, number, fields[column], peak_value)
        found.setdefault(contig, []).append((start, end, value))
    if n_rows and not found and missing_chroms != "zero" and not _any_known(names, genome):
        shown = ", ".join(sorted(names)[:20])
        raise GenomeError(
            f"{path} has no row on a contig of {genome.assembly} (its contigs: {shown}); is it from "
            "another assembly or contig naming? Pass missing_chroms='zero' to read it as no peaks"
        )
    out = {}
    for contig, rows in found.items():
        table = np.asarray(rows, dtype=np.float64)
        out[contig] = (table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2])
    return out


def _any_known(names, genome: Genome) -> bool:
    """Whether any contig name of a file is a contig of the store's whole assembly (a file with
    peaks only on other chromosomes of it is a track without peaks here, not an error)."""
    try:
        whole = Genome.from_assembly(genome.assembly)
    except GenomeError:  # a custom genome: only its own contigs are known
        return False
    for name in names:
        try:
            whole.resolve(name)
            return True
        except GenomeError:
            continue
    return False


def _text_lines(path: Path) -> list[str]:
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a peak file; check the path in the manifest")
    if not path.is_file():
        raise DataError(f"peak file {path} does not exist; check the path in the manifest (or pass missing_files='report')")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} cannot be read ({err}); is the gzip file complete? Download it again") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line} is not text (byte 0x{raw[err.start]:02x}); is it a peak file (narrowPeak, broadPeak, BED)?") from None
    return text.split("\n")


def _check_width(path, kind, n, number, peak_value) -> int:
    if kind in FORMAT_COLUMNS and n != FORMAT_COLUMNS[kind]:
        raise DataError(
            f"{path} line {number} has {n} tab-separated columns; a {kind} file has {FORMAT_COLUMNS[kind]} "
            "(chrom, start, end, name, score, strand, signalValue, pValue, qValue"
            f"{', peak' if kind == 'narrowPeak' else ''}). Is it tab-separated and of the format its name says?"
        )
    if kind == "BED" and not 3 <= n <= 12:
        raise DataError(f"{path} line {number} has {n} tab-separated columns; a BED file has 3 to 12 (chrom, start, end, ...)")
    if peak_value in VALUE_COLUMNS and n not in FORMAT_COLUMNS.values():
        raise DataError(f"{path} has {n} columns and no {peak_value} column (narrowPeak and broadPeak have one); use peak_value='coverage'")
    return n


def _coordinate(path, number, text, what) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{path} line {number}: {what} {text!r} is not a whole number; peak coordinates are 0-based integer positions") from None
    if value < 0:
        raise DataError(f"{path} line {number}: {what} {value} is negative; peak coordinates are 0-based positions")
    return value


def _value(path, number, text, peak_value) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise DataError(f"{path} line {number}: {peak_value} {text!r} is not a finite number")
    if value == -1:
        raise DataError(f"{path} line {number}: {peak_value} is -1 (not given in this file); use another peak_value (e.g. 'signalValue' or 'coverage')")
    return value


# ---------------------------------------------------------------------- bins
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def cached_peaks(path, genome: Genome, peak_value: str, missing_chroms: str = "error") -> dict:
    """:func:`read_peaks`, parsed once per process for a file as it is on disk (size, mtime)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns, peak_value, missing_chroms, tuple(genome.contigs), tuple(genome.lengths))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    peaks = read_peaks(path, genome, peak_value, missing_chroms)
    with _CACHE_LOCK:
        _CACHE[key] = peaks
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return peaks


def paint_bins(starts, ends, values, first_bin: int, end_bin: int, bin_size: int = 25) -> np.ndarray:
    """Bins ``[first_bin, end_bin)`` of a contig: the largest value of the peaks overlapping each
    bin by >= 1 bp, 0.0 where none does.

    Examples
    --------
    >>> paint_bins(np.array([10, 60]), np.array([30, 61]), np.array([1.0, 2.0]), 0, 4)
    array([1., 1., 2., 0.])
    """
    out = np.zeros(end_bin - first_bin, dtype=np.float64)
    starts, ends, values = np.asarray(starts), np.asarray(ends), np.asarray(values, dtype=np.float64)
    lo = np.maximum(starts // bin_size, first_bin) - first_bin
    hi = np.minimum((ends - 1) // bin_size + 1, end_bin) - first_bin
    keep = hi > lo
    lo, hi, values = lo[keep], hi[keep], values[keep]
    if lo.size == 0:
        return out
    if np.all(values == values[0]):  # coverage: mark [lo, hi) through a difference array
        diff = np.zeros(out.size + 1, dtype=np.int64)
        np.add.at(diff, lo, 1)
        np.add.at(diff, hi, -1)
        out[np.cumsum(diff[:-1]) > 0] = values[0]
        return out
    lengths = hi - lo
    index = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    np.maximum.at(out, index, np.repeat(values, lengths))
    return out


def peak_bins(files, genome: Genome, contig: str, first_bin: int, end_bin: int, *, peak_value: str = "coverage", missing_chroms: str = "error") -> np.ndarray:
    """Bins ``[first_bin, end_bin)`` of ``contig`` of a peak track made of ``files`` (replicates
    merged: union of peaks, or the largest value), float64.

    Examples
    --------
    >>> import epitensor as et
    >>> genome = et.Genome.from_assembly("hg19", contigs=["chr21"])
    >>> peak_bins(["rep1.narrowPeak.gz", "rep2.narrowPeak.gz"], genome, "chr21", 0, 40_000)  # doctest: +SKIP
    array([0., 0., 0., ..., 0., 0., 0.])
    """
    out = np.zeros(end_bin - first_bin, dtype=np.float64)
    for file in files:
        peaks = cached_peaks(file, genome, peak_value, missing_chroms).get(contig)
        if peaks is not None:
            np.maximum(out, paint_bins(*peaks, first_bin, end_bin, genome.bin_size), out=out)
    return out
