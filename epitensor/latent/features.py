"""Features at annotated regions: genome factors of a model, or track values, one row per region.

Downstream models take one row per gene (its TSS), enhancer, peak or window. Both builders take
the same ``regions`` (a BED path, a DataFrame with ``chrom``, ``start``, ``end`` and optionally
``name``, or a list of region strings/tuples) and give a DataFrame indexed by region name, rows
in the order given, so feature sets built from the same regions line up row by row with labels.

Each region covers the 25 bp bins overlapping ``[start - flank, end + flank)`` (clipped to its
contig). ``reduce="center"`` takes the bin holding the middle of the region (the TSS bin of a
1 bp TSS record), ``"mean"`` / ``"max"`` summarise all the covered bins.

Examples
--------
>>> import epitensor as et
>>> from epitensor.latent import tracks_at_regions
>>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=10_000, seed=0)
>>> t = tracks_at_regions(ds.signal.sel(biosample="B00"), ["synthetic:0-1,000", "synthetic:5,000-5,025"])
>>> t.shape
(2, 2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError, RegionError
from ..genome import Genome
from ..genome_index import genome_index
from ..regions import Region, as_regions

REDUCTIONS = ("center", "mean", "max")


def region_table(regions, genome: Genome) -> pd.DataFrame:
    """``chrom, start, end, name`` of ``regions`` (a BED path, DataFrame or list of regions).

    Contig names are resolved against ``genome`` (``1`` and ``chr1`` are the same contig); a
    missing or duplicated ``name`` becomes ``chrom:start-end``.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38", contigs=["chr1"])
    >>> region_table(["1:100-200"], g).to_dict("records")
    [{'chrom': 'chr1', 'start': 100, 'end': 200, 'name': 'chr1:100-200'}]
    """
    if isinstance(regions, str | Path) and Path(regions).suffix in (".bed", ".gz", ".narrowPeak", ".bedGraph"):
        from ..evaluation.annotations import read_bed

        regions = read_bed(regions)
    if isinstance(regions, pd.DataFrame):
        missing = {"chrom", "start", "end"} - set(regions.columns)
        if missing:
            raise DataError(f"the regions table lacks the columns {sorted(missing)}; give chrom, start, end (and name)")
        parsed = [Region(genome.resolve(str(c)), int(s), int(e)) for c, s, e in
                  zip(regions["chrom"], regions["start"], regions["end"], strict=True)]
        names = regions["name"].astype(str).to_numpy() if "name" in regions else None
    else:
        parsed = as_regions(regions if isinstance(regions, list | np.ndarray) else [regions], genome)
        names = None
    if not parsed:
        raise RegionError("no regions given; pass a BED file, a DataFrame with chrom/start/end, or region strings")
    for r in parsed:
        if r.end <= r.start or r.start < 0 or r.end > genome.length(r.contig):
            raise RegionError(f"region {r.contig}:{r.start}-{r.end} is empty or outside {r.contig} "
                              f"(0-{genome.length(r.contig):,}); fix its coordinates")
    table = pd.DataFrame({"chrom": [r.contig for r in parsed], "start": [r.start for r in parsed],
                          "end": [r.end for r in parsed]})
    default = (table["chrom"] + ":" + table["start"].astype(str) + "-" + table["end"].astype(str)).to_numpy()
    if names is None or len(set(names)) != len(names) or "." in set(names):
        names = default
    table["name"] = names
    return table


def region_positions(table: pd.DataFrame, genome: Genome, *, flank: int = 0,
                     reduce: str = "center") -> tuple[np.ndarray, np.ndarray]:
    """Genome-wide bins of every region and where each region's bins start: ``(positions, offsets)``.

    Region ``i`` owns ``positions[offsets[i]:offsets[i + 1]]`` (one bin for ``reduce="center"``).

    Examples
    --------
    >>> g = Genome.from_assembly("hg38", contigs=["chr1"])
    >>> t = pd.DataFrame({"chrom": ["chr1"], "start": [100], "end": [200]})
    >>> [a.tolist() for a in region_positions(t, g, reduce="mean")]
    [[4, 5, 6, 7], [0, 4]]
    >>> [a.tolist() for a in region_positions(t, g, reduce="center")]
    [[5], [0, 1]]
    """
    if reduce not in REDUCTIONS:
        raise ArgumentError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if isinstance(flank, bool) or not isinstance(flank, int | np.integer) or flank < 0:
        raise ArgumentError(f"flank must be a whole number of base pairs >= 0, got {flank!r}")
    first = np.array([genome.contig_bins(c)[0] for c in table["chrom"]], dtype=np.int64)
    length = np.array([genome.length(c) for c in table["chrom"]], dtype=np.int64)
    start = table["start"].to_numpy(np.int64)
    end = table["end"].to_numpy(np.int64)
    b = genome.bin_size
    if reduce == "center":
        return first + (start + end - 1) // 2 // b, np.arange(len(table) + 1)
    lo = np.maximum(start - flank, 0) // b
    hi = (np.minimum(end + flank, length) - 1) // b + 1
    counts = hi - lo
    offsets = np.concatenate([[0], np.cumsum(counts)])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
    return np.repeat(first + lo, counts) + within, offsets


def _reduce(values: np.ndarray, offsets: np.ndarray, reduce: str) -> np.ndarray:
    if reduce == "center":
        return values
    starts = offsets[:-1]
    if reduce == "max":
        return np.maximum.reduceat(values, starts, axis=0)
    with np.errstate(invalid="ignore"):
        sums = np.add.reduceat(np.nan_to_num(values), starts, axis=0)
        counts = np.add.reduceat((~np.isnan(values)).astype(np.int64), starts, axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def factors_at_regions(model, regions, *, flank: int = 0, reduce: str = "center",
                       resolutions=("25bp", "250bp", "5kbp")) -> pd.DataFrame:
    """A trained model's genome factors at each region: one row per region, one column per factor.

    Parameters
    ----------
    model : epitensor.Avocado
        Fitted; the regions must lie where it has genome factors (its training region, or blocks
        fitted with ``fit_genome``).
    regions : BED path, DataFrame (chrom, start, end[, name]) or list of regions
    flank : int, default 0
        Base pairs added on both sides before ``reduce="mean"``/``"max"``.
    reduce : {"center", "mean", "max"}
    resolutions : tuple of str
        Which genome tables to keep (columns are named ``"25bp_0"``, ..., ``"5kbp_44"``).

    Returns
    -------
    DataFrame
        Indexed by region name (``chrom:start-end`` when the regions have no unique names).

    Raises
    ------
    RegionError
        Regions where the model has no genome factors.

    Examples
    --------
    >>> factors_at_regions(model, "RefSeqTSS.hg38.bed.gz").shape  # doctest: +SKIP
    (n_genes, 110)
    """
    genome = model.genome
    table = region_table(regions, genome)
    positions, offsets = region_positions(table, genome, flank=flank, reduce=reduce)
    values = _reduce(model.genome_factors_at(positions), offsets, reduce)
    c = model.config
    names = np.concatenate([[f"{res}_{i}" for i in range(n)] for res, n in
                            (("25bp", c.n_25bp_factors), ("250bp", c.n_250bp_factors), ("5kbp", c.n_5kbp_factors))])
    unknown = set(resolutions) - {"25bp", "250bp", "5kbp"}
    if unknown or not resolutions:
        raise ArgumentError(f"resolutions must be some of '25bp', '250bp', '5kbp', got {list(resolutions)!r}")
    keep = np.array([n.split("_")[0] in resolutions for n in names])
    return pd.DataFrame(values[:, keep], index=pd.Index(table["name"], name="region"), columns=names[keep])


def tracks_at_regions(signal, regions, *, flank: int = 0, reduce: str = "mean") -> pd.DataFrame:
    """Track values summarised over each region: one row per region, one column per track.

    Parameters
    ----------
    signal : DataArray
        Any array with a ``position`` axis made by epitensor or xarray from a store (``ds.signal``,
        ``ds.imputed``, a subset, ``model.impute(...)``); every other dimension becomes columns
        (a MultiIndex of ``(biosample, assay)`` labels, or just ``assay`` for one biosample).
        Bins are selected by the positions the object holds (its labels), never by offset.
    regions, flank, reduce
        As in :func:`factors_at_regions` (``reduce="mean"`` ignores NaN bins).

    Raises
    ------
    RegionError
        Regions with bins this object does not hold.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=4_000, seed=0)
    >>> t = tracks_at_regions(ds.signal, ["synthetic:0-100"])
    >>> t.columns.names
    FrozenList(['biosample', 'assay'])
    >>> bool(abs(t.iloc[0, 0] - float(ds.signal[0, 0, :4].mean())) < 1e-6)
    True
    """
    index = genome_index(signal)
    table = region_table(regions, index.genome)
    positions, offsets = region_positions(table, index.genome, flank=flank, reduce=reduce)
    uniq, inverse = np.unique(positions, return_inverse=True)
    where = index.index.get_indexer(uniq)
    if (where < 0).any():
        missing = np.isin(positions, uniq[where < 0])
        bad = table["name"].iloc[int(np.searchsorted(offsets, np.flatnonzero(missing)[0], side="right") - 1)]
        raise RegionError(f"region {bad} has bins this array does not hold; select regions inside it or use the "
                          "whole store (ds.signal)")
    others = [d for d in signal.dims if d != "position"]
    block = signal.isel(position=where).transpose("position", *others).values
    values = _reduce(block.reshape(len(uniq), -1)[inverse].astype(np.float64), offsets, reduce)
    if others:
        columns = pd.MultiIndex.from_product([[str(x) for x in signal[d].values] for d in others], names=others)
        if len(others) == 1:
            columns = columns.get_level_values(0)
    else:
        columns = pd.Index([signal.name or "signal"])
    return pd.DataFrame(values, index=pd.Index(table["name"], name="region"), columns=columns)


#: Classes of :func:`annotate_positions`, highest priority first.
POSITION_CLASSES = ("promoter", "enhancer", "gene body", "other")


def annotate_positions(positions, genome: Genome, annotations, *, promoter_bp: int = 1000) -> pd.Series:
    """Label genome-wide bins promoter / enhancer / gene body / other, to colour genome-factor maps.

    A bin within ``promoter_bp`` of a TSS (``annotations.tss``, or the stranded starts of
    ``annotations.genes``) is a promoter; else one overlapping ``annotations.enhancers`` is an
    enhancer; else one inside ``annotations.genes`` is gene body; the rest are "other".

    Parameters
    ----------
    positions : array of int
        Genome-wide bin numbers (e.g. ``model.genome_factors(region).position.values``).
    genome : Genome
    annotations : Annotations, or "hg19"/"hg38"/a folder (see :func:`epitensor.evaluation.load_annotations`)

    Returns
    -------
    Series
        Categorical, one label per position, indexed by position.

    Examples
    --------
    >>> from epitensor.evaluation import Annotations
    >>> g = Genome.from_assembly("hg38", contigs=["chr1"])
    >>> tss = pd.DataFrame({"chrom": ["chr1"], "start": [10_000], "end": [10_001], "name": ["g"], "strand": ["+"]})
    >>> genes = pd.DataFrame({"chrom": ["chr1"], "start": [10_000], "end": [50_000], "name": ["g"], "strand": ["+"]})
    >>> annotate_positions([400, 1000, 4000], g, Annotations(genes=genes, tss=tss)).tolist()
    ['promoter', 'gene body', 'other']
    """
    from ..evaluation.annotations import load_annotations

    annotations = load_annotations(annotations)
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.full(len(positions), len(POSITION_CLASSES) - 1)
    tss = annotations.tss
    if tss is None and annotations.genes is not None:
        genes = annotations.genes
        start = np.where(genes["strand"] == "-", genes["end"] - 1, genes["start"])
        tss = genes.assign(start=start, end=start + 1)
    layers = [(0, tss, promoter_bp), (1, annotations.enhancers, 0), (2, annotations.genes, 0)]
    for rank, table, pad in reversed(layers):  # lower ranks written last, so they win
        if table is None:
            continue
        labels[_covered(positions, table, genome, pad)] = rank
    return pd.Series(pd.Categorical.from_codes(labels, POSITION_CLASSES), index=pd.Index(positions, name="position"),
                     name="annotation")


def _covered(positions: np.ndarray, table: pd.DataFrame, genome: Genome, pad: int) -> np.ndarray:
    """Which positions lie in a bin overlapping an interval of ``table`` widened by ``pad`` bp."""
    known = {c for c in table["chrom"].unique() if _resolves(genome, c)}
    rows = table[table["chrom"].isin(known)]
    if rows.empty:
        return np.zeros(len(positions), dtype=bool)
    chrom = rows["chrom"].map({c: genome.resolve(c) for c in known})
    first = chrom.map(lambda c: genome.contig_bins(c)[0]).to_numpy(np.int64)
    b = genome.bin_size
    lo = first + np.maximum(rows["start"].to_numpy(np.int64) - pad, 0) // b
    hi = first + (rows["end"].to_numpy(np.int64) + pad - 1) // b + 1
    order = np.argsort(lo)
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    i = np.searchsorted(lo, positions, side="right") - 1
    return (i >= 0) & (positions < hi[np.maximum(i, 0)])


def _resolves(genome: Genome, contig) -> bool:
    try:
        genome.resolve(str(contig))
    except Exception:
        return False
    return True
