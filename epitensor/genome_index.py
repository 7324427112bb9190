"""The genome travels with the ``position`` coordinate: a custom xarray index.

``position`` holds genome-wide bin numbers (the store's position axis: contigs laid end to end,
each starting on a chunk boundary). :class:`GenomeIndex` is a :class:`xarray.indexes.PandasIndex`
that also carries the :class:`~epitensor.Genome` (assembly, contig table, bin size), so that every
xarray operation that keeps the ``position`` index keeps the genome true: ``isel``, ``sel``,
``sortby``, ``concat``, ``where``, arithmetic, ``to_zarr``/``to_netcdf`` and reopening.
Attributes cannot do this: xarray does not update them when it slices, and drops them in
arithmetic.

A genome-wide store is indexed by a :class:`pandas.RangeIndex`, so opening a 124-million-bin
genome allocates nothing per position; slices stay ranges. Beside ``position`` the index lays out
``chrom``, ``start`` and ``end`` (bp, 0-based half-open) as lazy coordinates: their values are
computed only for the bins that are read or shown.

Selection rules (the one rule for regions, stated once):

* ``obj.sel(position="chr20:1,000,000-2,000,000")`` (or ``obj.epi.region(...)``, the same code) takes
  every bin that overlaps the 0-based half-open base-pair interval. The region must lie wholly
  inside the object.
* ``obj.sel(position=slice(a, b))`` with bin numbers is label-inclusive, like every label slice in
  xarray and pandas.

The genome is written into the ``position`` variable's attributes (``epitensor_genome``, a JSON
string, which netCDF and zarr both keep), so a subset saved by any xarray writer reopens with
:func:`epitensor.open_dataset` holding exactly its own positions.

Examples
--------
>>> import epitensor as et
>>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=8_000, seed=0)
>>> type(ds.xindexes["position"]).__name__
'GenomeIndex'
>>> part = ds.sel(position="synthetic:1kb-2kb")
>>> part.sizes["position"], int(part.start[0]), str(part.chrom[0].item())
(40, 1000, 'synthetic')
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing
from xarray.indexes import PandasIndex

from .exceptions import GenomeError, RegionError, SchemaError
from .genome import Genome

GENOME_ATTR = "epitensor_genome"
#: Coordinates along ``position`` that the index lays out (besides ``position`` itself).
LOCATION_COORDS = ("chrom", "start", "end")


class GenomeIndex(PandasIndex):
    """Index of genome-wide bin numbers that knows the genome they belong to.

    Build it with :meth:`from_genome` (every bin of a genome) or :meth:`from_positions`; attach
    it with :func:`with_genome_index`.
    """

    __slots__ = ("genome", "source")

    def __init__(self, array, dim, coord_dtype=None, *, fastpath=False, genome: Genome | None = None,
                 source: str | None = None):
        super().__init__(array, dim, coord_dtype, fastpath=fastpath)
        self.genome = genome
        self.source = source  # the store whose position axis these bins are (see from_store)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_genome(cls, genome: Genome, dim: str = "position", source: str | None = None) -> GenomeIndex:
        """Every bin of ``genome``'s position axis (a range: nothing allocated per position)."""
        return cls(pd.RangeIndex(genome.n_positions, name=dim), dim, np.dtype(np.int64), genome=genome,
                   source=source)

    @classmethod
    def from_positions(cls, genome: Genome, positions, dim: str = "position", source: str | None = None) -> GenomeIndex:
        """Genome-wide bin numbers ``positions`` of ``genome`` (checked to lie on its axis)."""
        index = positions if isinstance(positions, pd.Index) else pd.Index(np.asarray(positions, dtype=np.int64))
        if len(index) and (index.min() < 0 or index.max() >= genome.n_positions):
            raise SchemaError(
                f"positions {index.min():,}-{index.max():,} are not all on the position axis of genome "
                f"{genome.assembly!r} (0-{genome.n_positions - 1:,}); were they written for another genome?"
            )
        return cls(_as_range_if_possible(index).rename(dim), dim, np.dtype(np.int64), genome=genome, source=source)

    @classmethod
    def from_variables(cls, variables, *, options):
        """Used by ``set_xindex("position", GenomeIndex, genome=...)``; the genome comes from the
        ``genome`` option or the variable's ``epitensor_genome`` attribute."""
        name, var = next(iter(variables.items()))
        genome = options.get("genome") or genome_from_attrs(var.attrs)
        if genome is None:
            raise SchemaError(f"coordinate {name!r} carries no genome; pass set_xindex(..., genome=Genome(...))")
        return cls.from_positions(genome, np.asarray(var.values), dim=var.dims[0])

    def _replace(self, index, dim=None, coord_dtype=None):
        return type(self)(index, self.dim if dim is None else dim,
                          self.coord_dtype if coord_dtype is None else coord_dtype,
                          fastpath=True, genome=self.genome, source=self.source)

    @classmethod
    def concat(cls, indexes, dim, positions=None):
        genomes = [idx.genome for idx in indexes]
        for g in genomes[1:]:
            genomes[0].check_same(g, "the pieces being concatenated along position have genomes that")
        index = cls._concat_indexes(indexes, dim, positions)
        return cls(_as_range_if_possible(index), dim, np.dtype(np.int64), genome=genomes[0] if genomes else None)

    def join(self, other, how="inner"):
        self._check_genome(other)
        index = self.index.union(other.index) if how == "outer" else self.index.intersection(other.index)
        return self._replace(_as_range_if_possible(pd.Index(index, dtype=np.int64)))

    def reindex_like(self, other, method=None, tolerance=None):
        self._check_genome(other)
        return super().reindex_like(other, method, tolerance)

    def equals(self, other, *, exclude=None):
        if isinstance(other, GenomeIndex) and other.genome != self.genome:
            return False
        return super().equals(other, exclude=exclude)

    def _check_genome(self, other):
        if isinstance(other, GenomeIndex):
            self.genome.check_same(other.genome, "the two objects' genomes")

    # ------------------------------------------------------------------ variables
    def create_variables(self, variables=None):
        out = super().create_variables(variables)
        var = out[self.index.name]
        var.attrs = {**var.attrs, GENOME_ATTR: genome_to_json(self.genome),
                     "long_name": "genome-wide bin", "units": f"{self.genome.bin_size} bp bins"}
        return out

    # ------------------------------------------------------------------ selection
    def sel(self, labels, method=None, tolerance=None):
        from .regions import Region

        (name, label), = labels.items()
        if isinstance(label, str | Region):
            return indexing.IndexSelResult({self.dim: self.regions_indexer(label)})
        return super().sel(labels, method=method, tolerance=tolerance)

    def regions_indexer(self, regions) -> slice | np.ndarray:
        """Indexer of the bins of ``regions`` (one region, or a list of them concatenated in order):
        a slice for one region wherever it can be; see :meth:`region_bins`."""
        from .regions import as_regions

        parts = [self.region_bins(r) for r in as_regions(regions, self.genome)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([np.arange(p.start, p.stop) if isinstance(p, slice) else p for p in parts])

    def region_bins(self, region) -> slice | np.ndarray:
        """Indexer (a slice when it can be) of the bins of ``region`` in this index.

        Raises
        ------
        RegionError
            When the region is not wholly inside the positions this index holds.
        """
        from .regions import region_bins

        lo, hi = region_bins(region, self.genome)
        index = self.index
        if isinstance(index, pd.RangeIndex) and index.step == 1:
            first = lo - index.start
            if first >= 0 and hi <= index.stop:
                return slice(first, hi - index.start)
        elif index.is_monotonic_increasing:
            a, b = index.searchsorted(lo), index.searchsorted(hi)
            if b - a == hi - lo:
                return slice(int(a), int(b))
        else:
            found = np.flatnonzero((index >= lo) & (index < hi))
            if found.size == hi - lo and pd.Index(index[found]).is_unique:
                return found
        held = held_ranges(self)
        raise RegionError(
            f"region {region} is not wholly inside this selection, which holds {held}; select it from "
            "the full dataset (et.open_dataset(store)) instead"
        )

    def __repr__(self):
        return f"GenomeIndex({self.genome.assembly}, {len(self.index):,} bins, {held_ranges(self)})"

    def _repr_inline_(self, max_width):
        return f"GenomeIndex ({self.genome.assembly}, {self.genome.bin_size} bp bins)"


STORE_KEY = "epitensor_store"  # encoding key: the store whose rows a label coordinate names


def mark_store_labels(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Record on the ``biosample``/``assay`` coordinates that they name the rows of store ``source``.

    The mark lives in the coordinates' encoding, which xarray carries through selections and
    sorting (the labels move with the data) and which new labels (``assign_coords``, ``reindex``,
    ``concat``) do not have, so :func:`from_store` can tell the two apart.
    """
    for dim in ("biosample", "assay"):
        if dim in ds.variables:
            ds.variables[dim].encoding[STORE_KEY] = source
    return ds


def from_store(obj, dim: str, source: str | None) -> bool:
    """True when ``obj``'s ``dim`` coordinate still names the rows of store ``source``: the
    ``position`` index of that store, or labels marked by :func:`mark_store_labels`."""
    if source is None or dim not in obj.coords:
        return dim not in obj.dims
    if dim == "position":
        index = obj.xindexes.get(dim)
        return isinstance(index, GenomeIndex) and index.source == source
    return obj.coords.variables[dim].encoding.get(STORE_KEY) == source


# ---------------------------------------------------------------------- lazy location coordinates
class _LocationArray(BackendArray):
    """``chrom``, ``start`` or ``end`` of a contiguous run of bins, computed when indexed."""

    def __init__(self, genome: Genome, first: int, n: int, field: str):
        self.genome, self.first, self.field = genome, first, field
        self.shape = (n,)
        self.dtype = np.dtype(object) if field == "chrom" else np.dtype(np.int64)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._get)

    def _get(self, key):
        (k,) = key  # a slice or non-negative integers (xarray's lazy indexing normalises the rest)
        offsets = np.arange(*k.indices(self.shape[0])) if isinstance(k, slice) else np.asarray(k, dtype=np.int64)
        return locations(self.genome, self.first + offsets)[self.field]


def locations(genome: Genome, positions) -> dict[str, np.ndarray]:
    """``chrom`` (str), ``start`` and ``end`` (bp) of genome-wide bins (:meth:`Genome.locate_bins`)."""
    chrom, start, end = genome.locate_bins(positions)
    return {"chrom": chrom.astype(object), "start": start.astype(np.int64), "end": end.astype(np.int64)}


def _location_coords(index: GenomeIndex) -> dict[str, xr.Variable]:
    """Lazy variables for a range index; plain arrays for other positions (already in memory)."""
    pd_index = index.index
    attrs = {"chrom": {"long_name": "contig"}, "start": {"long_name": "bin start", "units": "bp"},
             "end": {"long_name": "bin end (exclusive)", "units": "bp"}}
    if isinstance(pd_index, pd.RangeIndex) and pd_index.step == 1:
        return {f: xr.Variable(index.dim, indexing.LazilyIndexedArray(
            _LocationArray(index.genome, pd_index.start, len(pd_index), f)), attrs[f]) for f in LOCATION_COORDS}
    values = locations(index.genome, pd_index.to_numpy())
    return {f: xr.Variable(index.dim, values[f], attrs[f]) for f in LOCATION_COORDS}


# ---------------------------------------------------------------------- attaching and finding
def with_genome_index(obj, genome: Genome, positions=None, source: str | None = None):
    """``obj`` with a :class:`GenomeIndex` on ``position`` (all of ``genome``'s bins by default)
    and lazy ``chrom``/``start``/``end`` coordinates."""
    index = (GenomeIndex.from_genome(genome, source=source) if positions is None
             else GenomeIndex.from_positions(genome, positions, source=source))
    coords = xr.Coordinates.from_xindex(index)
    obj = obj.drop_vars([c for c in ("position", *LOCATION_COORDS) if c in obj.coords])
    return obj.assign_coords(coords).assign_coords(_location_coords(index))


@functools.lru_cache(maxsize=64)
def genome_to_json(genome: Genome) -> str:
    """The genome as the compact JSON of the ``epitensor_genome`` attribute."""
    return json.dumps(genome.to_attrs(), separators=(",", ":"))


def genome_from_attrs(attrs) -> Genome | None:
    """The genome in ``attrs``: the ``epitensor_genome`` JSON of a position coordinate, or the
    store attributes (``assembly``, ``contigs``, ...); None when neither is there."""
    if GENOME_ATTR in attrs:
        try:
            return Genome.from_attrs(json.loads(attrs[GENOME_ATTR]))
        except (ValueError, TypeError, KeyError, GenomeError) as err:
            raise SchemaError(f"the position coordinate's {GENOME_ATTR!r} attribute is not a genome ({err})") from None
    if "contigs" in attrs and "assembly" in attrs:
        return Genome.from_attrs(attrs)
    return None


def genome_index(obj) -> GenomeIndex:
    """The :class:`GenomeIndex` of ``obj``'s ``position`` axis, found or rebuilt.

    Objects made by :func:`epitensor.open_dataset` carry it. Others get one when the genome can be
    recovered exactly: from a ``position`` coordinate's ``epitensor_genome`` attribute (subsets
    saved by xarray and reopened with ``xr.open_zarr``/``xr.open_dataset``), or from genome
    attributes when the object spans the whole position axis (``xr.open_zarr(store).signal``).

    Raises
    ------
    SchemaError
        When the positions this object holds cannot be known: no genome anywhere, or genome
        attributes on an object that was sliced along ``position`` without an index.
    """
    index = obj.xindexes.get("position") if "position" in obj.dims else None
    if isinstance(index, GenomeIndex):
        return index
    if "position" not in obj.dims:
        raise SchemaError("this object has no 'position' dimension, so it has no genomic layout")
    if "position" in obj.coords:
        var = obj.coords["position"].variable
        genome = genome_from_attrs(var.attrs) or genome_from_attrs(obj.attrs)
        if genome is None:
            raise SchemaError("the position coordinate carries no genome; open the data with epitensor.open_dataset")
        return GenomeIndex.from_positions(genome, np.asarray(var.values))
    genome = genome_from_attrs(obj.attrs)
    if genome is None:
        raise SchemaError(
            "this object carries no genome (no position index and no genome attributes); open the data "
            "with epitensor.open_dataset, which attaches the genome to the position axis")
    if obj.sizes["position"] != genome.n_positions:
        raise SchemaError(
            f"this object has {obj.sizes['position']:,} positions without a position index, but its genome "
            f"attributes describe {genome.n_positions:,}; which bins it holds is unknown. Open the store with "
            "epitensor.open_dataset and select with .sel(position=region) or .epi.region(region)")
    return GenomeIndex.from_genome(genome)


def attach(obj):
    """``obj`` with its :class:`GenomeIndex` (see :func:`genome_index`); unchanged when it has one."""
    index = genome_index(obj)
    if obj.xindexes.get("position") is index:
        return obj
    return with_genome_index(obj, index.genome, index.index)


def _held_pieces(index: GenomeIndex):
    """``(contig, first bin of the contig, lo, hi)`` for each run of consecutive bins that ``index``
    holds, cut at contig boundaries (padding dropped), in genome order."""
    pd_index = index.index
    if isinstance(pd_index, pd.RangeIndex) and pd_index.step == 1:
        runs = [(pd_index.start, pd_index.stop)] if len(pd_index) else []
    else:
        values = np.sort(pd_index.to_numpy())
        breaks = np.flatnonzero(np.diff(values) != 1)
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [values.size - 1]])
        runs = [(int(values[s]), int(values[e]) + 1) for s, e in zip(starts, ends)] if values.size else []
    for lo, hi in runs:
        for contig in index.genome.contigs:
            first, end = index.genome.contig_bins(contig)
            s, e = max(lo, first), min(hi, end)
            if s < e:
                yield contig, first, s, e


def _bp(index: GenomeIndex, contig: str, first: int, lo: int, hi: int) -> tuple[int, int]:
    """The bp interval of bins ``[lo, hi)`` of ``contig`` (whose first bin is ``first``)."""
    bin_size = index.genome.bin_size
    return (lo - first) * bin_size, min((hi - first) * bin_size, index.genome.length(contig))


def held_ranges(index: GenomeIndex, limit: int = 4) -> str:
    """Human-readable contig ranges an index holds, e.g. ``chr21:0-46,709,983``."""
    if not len(index.index):
        return "no bins"
    parts = []
    for contig, first, lo, hi in _held_pieces(index):
        start, end = _bp(index, contig, first, lo, hi)
        parts.append(f"{contig}:{start:,}-{end:,}")
    shown = ", ".join(parts[:limit]) + (f" and {len(parts) - limit} more ranges" if len(parts) > limit else "")
    return shown or "only padding bins"


def held_contigs(index: GenomeIndex) -> pd.DataFrame:
    """Contigs that ``index`` holds bins of, with the bp range held (``start``, ``end``)."""
    held: dict[str, dict] = {}
    for contig, first, lo, hi in _held_pieces(index):
        start, end = _bp(index, contig, first, lo, hi)
        row = held.setdefault(contig, {"contig": contig, "start": start, "end": end, "n_bins": 0})
        row["start"], row["end"] = min(row["start"], start), max(row["end"], end)
        row["n_bins"] += hi - lo
    table = pd.DataFrame(list(held.values()), columns=["contig", "start", "end", "n_bins"]).set_index("contig")
    return index.genome.contig_table()[["length", "first_bin"]].join(table, how="inner")


def _as_range_if_possible(index: pd.Index) -> pd.Index:
    """A contiguous increasing run of bins as a RangeIndex (cheap to slice, compare and hold)."""
    if isinstance(index, pd.RangeIndex) or len(index) < 2:
        return index
    values = index.to_numpy()
    if values[-1] - values[0] == len(values) - 1 and index.is_monotonic_increasing and index.is_unique:
        return pd.RangeIndex(int(values[0]), int(values[-1]) + 1, name=index.name)
    return index
