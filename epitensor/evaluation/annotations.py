"""Genome annotations for the region metrics: genes, TSSs, enhancers, promoters and blacklists.

BED files (plain or gzipped) are read into tables with columns ``chrom, start, end, name,
strand``. Intervals become bins of the store's :class:`~epitensor.Genome` in one of two modes:

* ``eic_parity=True`` reproduces the ENCODE Imputation Challenge's scoring code: an interval
  ``[start, end)`` covers bins ``[start // 25, end // 25 + 1)`` (one bin too many when ``end`` is a
  multiple of 25), promoters are ``[s - 80, s)`` (+ strand) or ``[e, e + 80)`` (- strand) in bins,
  a + strand promoter with ``s < 80`` is empty (a negative slice start in the challenge's code),
  and blacklisted bins are *deleted* from each chromosome before these bin numbers are used as
  indices, so every region after the first blacklisted bin of a chromosome is shifted.
* The default (corrected) mode uses the bins that overlap each interval
  (``[start // 25, (end - 1) // 25 + 1)``), clips promoters at the chromosome start, and *masks*
  blacklisted bins: they are left out of every metric but regions keep their true positions.

The real annotation files are not shipped (GPL licences); point ``EPITENSOR_DATA`` at a data
folder with ``annotations/<assembly>/`` (or pass ``data_dir=``), or build :class:`Annotations`
from BED paths.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..genome import Genome

#: Chromosomes the challenge scored (chr1-22 and X).
EIC_CHROMS = tuple(f"chr{i}" for i in range(1, 23)) + ("chrX",)
#: Promoter length in bins upstream of the TSS (the challenge's ``prom_loc``).
PROMOTER_BINS = 80
_KINDS = ("genes", "tss", "enhancers", "promoters", "blacklist")
#: File names tried, per kind, in a folder of annotations (first match wins; {a} = assembly).
DEFAULT_FILES = {
    "genes": ("gencode.v29.genes.gtf.bed.gz", "RefSeqGene.{a}.bed.gz"),
    "tss": ("RefSeqTSS.{a}.bed.gz",),
    "enhancers": ("F5.{a}.enhancers.bed.gz",),
    "promoters": ("wgEncodeGencodeBasicV19.promoter.merged.bed.gz",),
    "blacklist": ("{a}-blacklist.v2.bed.gz", "{a}.blacklist.bed.gz"),
}


def read_bed(path) -> pd.DataFrame:
    """Read a BED or narrowPeak file (plain or gzipped) into ``chrom, start, end, name, strand``.

    Missing name/strand columns are filled with ``"."``; ``track``/``browser``/``#`` lines are skipped.

    Raises
    ------
    DataError
        The file is missing, has fewer than 3 columns, or has non-integer coordinates.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.bed"
    >>> _ = p.write_text("chr1\\t100\\t200\\tg1\\t0\\t-\\n")
    >>> t = read_bed(p)
    >>> t.chrom[0], int(t.start[0]), int(t.end[0]), t.strand[0]
    ('chr1', 100, 200, '-')
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"BED file {path} does not exist; pass the path of a .bed or .bed.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        rows = [line.rstrip("\n").split("\t") for line in fh
                if line.strip() and not line.startswith(("#", "track", "browser"))]
    if rows and len(rows[0]) == 1:  # space-separated files
        rows = [r[0].split() for r in rows]
    if any(len(r) < 3 for r in rows):
        raise DataError(f"{path} is not a BED file: some lines have fewer than 3 columns (chrom, start, end)")
    try:
        table = pd.DataFrame(
            {
                "chrom": [r[0] for r in rows],
                "start": np.array([int(r[1]) for r in rows], dtype=np.int64),
                "end": np.array([int(r[2]) for r in rows], dtype=np.int64),
                "name": [r[3] if len(r) > 3 else "." for r in rows],
                "strand": [r[5] if len(r) > 5 else "." for r in rows],
            }
        )
    except ValueError as err:
        raise DataError(f"{path}: start/end columns must be integers ({err})") from None
    return table


@dataclass
class Annotations:
    """Interval tables used by the region metrics and the track view.

    Parameters
    ----------
    genes, tss, enhancers, promoters, blacklist : DataFrame, optional
        Tables from :func:`read_bed`. ``promoters`` given explicitly are used as intervals;
        otherwise promoters are derived from stranded ``genes`` by the challenge's rule.
    assembly : str, optional

    Examples
    --------
    >>> ann = Annotations.from_files(genes="gencode.v29.genes.gtf.bed.gz")     # doctest: +SKIP
    >>> ann = load_annotations("hg38")    # with EPITENSOR_DATA set            # doctest: +SKIP
    """

    genes: pd.DataFrame | None = None
    tss: pd.DataFrame | None = None
    enhancers: pd.DataFrame | None = None
    promoters: pd.DataFrame | None = None
    blacklist: pd.DataFrame | None = None
    assembly: str | None = None

    @classmethod
    def from_files(cls, assembly=None, **paths) -> Annotations:
        """Build from BED paths given as ``genes=``, ``tss=``, ``enhancers=``, ``promoters=``, ``blacklist=``."""
        bad = [k for k in paths if k not in _KINDS]
        if bad:
            raise ValueError(f"unknown annotation kind(s) {bad}; use {list(_KINDS)}")
        return cls(assembly=assembly, **{k: read_bed(p) for k, p in paths.items() if p is not None})

    @classmethod
    def from_folder(cls, folder, assembly: str) -> Annotations:
        """Read the files of :data:`DEFAULT_FILES` found in ``folder`` (e.g. ``annotations/hg38``)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"annotation folder {folder} does not exist")
        paths = {}
        for kind, names in DEFAULT_FILES.items():
            for name in names:
                if (folder / name.format(a=assembly)).exists():
                    paths[kind] = folder / name.format(a=assembly)
                    break
        if not paths:
            raise DataError(f"no annotation files for {assembly} in {folder}; expected e.g. {DEFAULT_FILES['genes']}")
        return cls.from_files(assembly=assembly, **paths)

    def available(self) -> list[str]:
        """Kinds of annotation present."""
        return [k for k in _KINDS if getattr(self, k) is not None]


def annotation_folder(assembly: str, data_dir=None) -> Path:
    """Folder holding the annotation files of ``assembly``.

    Looks in ``data_dir`` (or ``$EPITENSOR_DATA``) for ``annotations/<assembly>``, ``<assembly>``,
    or the folder itself.
    """
    root = data_dir or os.environ.get("EPITENSOR_DATA")
    if not root:
        raise DataError(
            f"annotations={assembly!r} needs the annotation files: set EPITENSOR_DATA to a data folder with "
            f"annotations/{assembly}/, pass data_dir=, or pass Annotations.from_files(...)"
        )
    for cand in (Path(root) / "annotations" / assembly, Path(root) / assembly, Path(root)):
        if cand.is_dir() and any(cand.glob("*.bed*")):
            return cand
    raise DataError(f"no annotation files for {assembly} under {root} (looked in annotations/{assembly}/ and {assembly}/)")


def load_annotations(spec, data_dir=None) -> Annotations | None:
    """Annotations from an assembly name, a folder, an :class:`Annotations` object, or None.

    Examples
    --------
    >>> load_annotations(None) is None
    True
    """
    if spec is None or isinstance(spec, Annotations):
        return spec
    if isinstance(spec, str) and spec in ("hg19", "hg38"):
        return Annotations.from_folder(annotation_folder(spec, data_dir), spec)
    path = Path(spec)
    if path.is_dir():
        return Annotations.from_folder(path, _guess_assembly(path))
    raise DataError(f"annotations={spec!r}: pass 'hg19', 'hg38', a folder of BED files, an Annotations object or None")


def _guess_assembly(folder: Path) -> str:
    for name in ("hg38", "hg19"):
        if name in folder.name or any(name in p.name for p in folder.glob("*.bed*")):
            return name
    return folder.name


# ---------------------------------------------------------------------------- intervals -> bins
def interval_bins(table: pd.DataFrame, bin_size: int, eic_parity: bool) -> tuple[np.ndarray, np.ndarray]:
    """Contig-local bin ranges ``[lo, hi)`` of intervals (challenge rule or overlap rule).

    Examples
    --------
    >>> t = pd.DataFrame({"start": [0, 30], "end": [50, 60]})
    >>> [a.tolist() for a in interval_bins(t, 25, eic_parity=True)]
    [[0, 1], [3, 3]]
    >>> [a.tolist() for a in interval_bins(t, 25, eic_parity=False)]
    [[0, 1], [2, 3]]
    """
    start = table["start"].to_numpy(np.int64)
    end = table["end"].to_numpy(np.int64)
    lo = start // bin_size
    hi = end // bin_size + 1 if eic_parity else (end - 1) // bin_size + 1
    return lo, hi


def promoter_bins(genes: pd.DataFrame, bin_size: int, eic_parity: bool, window: int = PROMOTER_BINS):
    """Promoter bin ranges from stranded genes by the challenge's rule.

    + strand: ``[s - window, s)``; - strand: ``[e, e + window)``, ``s``/``e`` the gene's bin range.
    With ``eic_parity`` a + strand promoter with ``s < window`` is empty (as the challenge's
    negative slice); otherwise it is clipped at bin 0.

    Raises
    ------
    DataError
        The genes have no strand column values (``+``/``-``).

    Examples
    --------
    >>> g = pd.DataFrame({"start": [5000, 50], "end": [6000, 80], "strand": ["+", "+"]})
    >>> [a.tolist() for a in promoter_bins(g, 25, eic_parity=True)[:2]]
    [[120, 2], [200, 2]]
    """
    strand = genes["strand"].to_numpy()
    if not np.isin(strand, ["+", "-"]).any():
        raise DataError("genes have no strand ('+'/'-') so promoters cannot be derived; pass promoters= intervals instead")
    s, e = interval_bins(genes, bin_size, eic_parity)
    plus = strand == "+"
    lo = np.where(plus, s - window, e)
    hi = np.where(plus, s, e + window)
    if eic_parity:
        lo = np.where(plus & (lo < 0), hi, lo)  # empty slice
    else:
        lo = np.maximum(lo, 0)
    keep = np.isin(strand, ["+", "-"])
    return lo[keep], hi[keep], keep


def region_table(annotations: Annotations, kind: str, bin_size: int, eic_parity: bool) -> pd.DataFrame | None:
    """Bin ranges (``chrom, lo, hi``, contig-local) of the regions of one metric kind.

    ``kind`` is ``"promoters"``, ``"genes"``, ``"enhancers"`` or ``"blacklist"``.
    """
    if kind == "promoters" and annotations.promoters is None and annotations.genes is not None:
        genes = annotations.genes
        lo, hi, keep = promoter_bins(genes, bin_size, eic_parity)
        return pd.DataFrame({"chrom": genes["chrom"].to_numpy()[keep], "lo": lo, "hi": hi})
    table = getattr(annotations, kind)
    if table is None:
        return None
    lo, hi = interval_bins(table, bin_size, eic_parity)
    return pd.DataFrame({"chrom": table["chrom"].to_numpy(), "lo": lo, "hi": hi})


@dataclass
class TrackLayout:
    """Which bins of a track are scored, and the index intervals of each region kind.

    Attributes
    ----------
    positions : ndarray of int64
        Genome-wide positions of the scored bins, ascending.
    select : ndarray of int64
        Indices of the scored bins in the input array (its ``position`` axis).
    regions : dict
        ``kind -> (lo, hi)`` index intervals into the scored vector, or ``(lo, hi, n)`` where the
        pooled MSE divides by ``n`` (the challenge's unclipped gene/enhancer lengths).
    """

    positions: np.ndarray
    select: np.ndarray
    regions: dict

    def subset(self, keep: np.ndarray) -> TrackLayout:
        """The layout restricted to scored bins where ``keep`` is True (intervals re-indexed)."""
        new = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        regions = {k: (new[v[0]], new[v[1]], *v[2:]) for k, v in self.regions.items()}
        return TrackLayout(self.positions[keep], self.select[keep], regions)


def track_layout(genome: Genome, positions, annotations: Annotations | None = None, *,
                 eic_parity: bool = False, kinds=("promoters", "genes", "enhancers")) -> TrackLayout:
    """Scored bins and region index intervals for tracks laid out on ``positions``.

    Parameters
    ----------
    genome : Genome
    positions : array of int or None
        Genome-wide positions of the array's ``position`` axis (None: the whole axis).
    annotations : Annotations, optional
        Regions and blacklist; None scores every bin inside a contig and no region metric.
    eic_parity : bool, default False
        The challenge's choices: only chr1-22 and X, blacklisted bins deleted before the regions'
        bin numbers are used as indices. Default: every contig, blacklisted bins masked.

    Examples
    --------
    >>> g = Genome.single_contig("chr1", 1000)
    >>> lay = track_layout(g, None)
    >>> lay.positions.size, lay.regions
    (1000, {})
    """
    bs = genome.bin_size
    contigs = [c for c in genome.contigs if not eic_parity or c in EIC_CHROMS]
    if eic_parity and not contigs:
        raise DataError(f"eic_parity=True scores chr1-22 and chrX, but this genome has only {list(genome.contigs)[:10]}")
    spans = sorted((genome.contig_bins(c), c) for c in contigs)
    contigs = [c for _, c in spans]
    starts = np.array([lo for (lo, _), _ in spans], dtype=np.int64)
    ends = np.array([hi for (_, hi), _ in spans], dtype=np.int64)
    bl_bins = _blacklist_bins(annotations, contigs, ends - starts, bs, eic_parity)
    if positions is None:  # the whole axis: masks by slices, no per-position search
        keep = np.zeros(genome.n_positions, dtype=bool)
        for i, c in enumerate(contigs):
            keep[starts[i]:ends[i]] = True if c not in bl_bins else ~bl_bins[c]
        kept = np.flatnonzero(keep)
        del keep
        select = kept
    else:
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size > 1 and (np.diff(pos) <= 0).any():
            raise DataError("positions must be increasing; sort the array along 'position' (da.sortby('position'))")
        keep = np.zeros(pos.size, dtype=bool)
        for i, c in enumerate(contigs):
            lo, hi = np.searchsorted(pos, [starts[i], ends[i]])
            keep[lo:hi] = True if c not in bl_bins else ~bl_bins[c][pos[lo:hi] - starts[i]]
        select = np.flatnonzero(keep)
        kept = pos[select]
    # keys: genome-wide position (default) or contig start + compacted bin number (parity)
    keys = kept
    if eic_parity and bl_bins:
        keys = kept.copy()
        for i, c in enumerate(contigs):
            if c in bl_bins:
                lo, hi = np.searchsorted(kept, [starts[i], ends[i]])
                compact = np.cumsum(~bl_bins[c]) - 1
                keys[lo:hi] = starts[i] + compact[kept[lo:hi] - starts[i]]
    regions = {}
    if annotations is not None:
        for kind in kinds:
            table = region_table(annotations, kind, bs, eic_parity)
            if table is None:
                continue
            regions[kind] = _index_intervals(table, contigs, starts, ends, bl_bins, keys, eic_parity)
            if eic_parity and kind != "promoters":
                # the challenge divides gene/enhancer sums by the unclipped lengths (n += end - start)
                scored = table[table["chrom"].isin(contigs)]
                regions[kind] = (*regions[kind], int((scored["hi"] - scored["lo"]).sum()))
    return TrackLayout(kept, select, regions)


def _blacklist_bins(annotations, contigs, sizes, bin_size, eic_parity) -> dict:
    """Per-contig boolean arrays of blacklisted bins."""
    bl = region_table(annotations, "blacklist", bin_size, eic_parity) if annotations is not None else None
    out = {}
    if bl is None:
        return out
    for c, grp in bl.groupby("chrom", sort=False):
        if c in contigs:
            n = int(sizes[contigs.index(c)])
            mark = np.zeros(n + 1, dtype=np.int32)
            np.add.at(mark, np.clip(grp["lo"].to_numpy(), 0, n), 1)
            np.add.at(mark, np.clip(grp["hi"].to_numpy(), 0, n), -1)
            out[c] = np.cumsum(mark[:n]) > 0
    return out


def _index_intervals(table, contigs, starts, ends, bl_bins, keys, eic_parity):
    """Map contig-local bin ranges onto index intervals of the scored vector (whose keys are sorted)."""
    lo_all, hi_all = [], []
    for c, grp in table.groupby("chrom", sort=False):
        if c not in contigs:
            continue
        i = contigs.index(c)
        length = ends[i] - starts[i]
        if eic_parity and c in bl_bins:
            length = int(np.count_nonzero(~bl_bins[c]))  # the compacted chromosome
        lo = np.clip(grp["lo"].to_numpy(), 0, length)
        hi = np.clip(grp["hi"].to_numpy(), 0, length)
        hi = np.maximum(hi, lo)
        lo_all.append(np.searchsorted(keys, starts[i] + lo))
        hi_all.append(np.searchsorted(keys, starts[i] + hi))
    if not lo_all:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(lo_all).astype(np.int64), np.concatenate(hi_all).astype(np.int64)


def peak_labels(peaks: pd.DataFrame, genome: Genome, contig: str, n_windows: int, window_bp: int) -> np.ndarray:
    """Boolean labels of ``window_bp`` windows of ``contig``: True where a peak overlaps the window.

    Examples
    --------
    >>> g = Genome.single_contig("chr1", 100)
    >>> p = pd.DataFrame({"chrom": ["chr1"], "start": [210], "end": [260]})
    >>> peak_labels(p, g, "chr1", 13, 200)[:3].tolist()
    [False, True, False]
    """
    mask = np.zeros(n_windows + 1, dtype=np.int32)
    rows = peaks[peaks["chrom"] == contig]
    lo = np.clip(rows["start"].to_numpy(np.int64) // window_bp, 0, n_windows)
    hi = np.clip((rows["end"].to_numpy(np.int64) - 1) // window_bp + 1, 0, n_windows)
    np.add.at(mask, lo, 1)
    np.add.at(mask, hi, -1)
    return np.cumsum(mask[:n_windows]) > 0
