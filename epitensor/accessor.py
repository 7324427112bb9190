"""The ``.epi`` accessor on xarray Datasets and DataArrays.

Accessors are stateless (xarray rebuilds them after every operation): everything they need lives
in the object's attributes (the genome) and coordinates (labels, ``observed``, ``position``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .exceptions import RegionError, SchemaError
from .genome import Genome
from .regions import Region, as_regions, region_bins


class _EpiBase:
    def __init__(self, obj):
        self._obj = obj

    # ------------------------------------------------------------------ layout
    @property
    def genome(self) -> Genome:
        """The :class:`~epitensor.Genome` recorded in the attributes."""
        return Genome.from_attrs(self._obj.attrs)

    def contigs(self) -> pd.DataFrame:
        """Contig table: ``length``, ``n_bins`` and ``first_bin`` per contig."""
        return self.genome.contig_table()

    # ------------------------------------------------------------------ regions
    def region(self, region):
        """Select a genomic region lazily, with readable ``chrom``/``start``/``end`` coordinates.

        Parameters
        ----------
        region : str, tuple, Region or list of them
            ``"chr20:1,000,000-2,000,000"``, ``"chrX"``, ``"6:1kb-2M"``, ``("chr1", 0, 1000)``; a
            list selects several regions, concatenated along ``position``. 0-based half-open; the
            bins overlapping the interval are selected.

        Returns
        -------
        Dataset or DataArray
            With a ``position`` index (genome-wide bin numbers) and ``chrom``, ``start``, ``end``
            coordinates along it. Nothing is computed: the cost is proportional to the region.

        Raises
        ------
        RegionError
            Malformed region, unknown contig, or an interval past the contig end.

        Examples
        --------
        >>> import epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, seed=1)
        >>> da = ds.signal.epi.region("synthetic:1kb-2kb")
        >>> da.sizes["position"], int(da.start[0]), da.chrom.item()
        (40, 1000, 'synthetic')
        """
        genome = self.genome
        return _join([self._select(r, genome) for r in as_regions(region, genome)])

    def read(self, region):
        """Read a genomic region into memory: the same as ``.epi.region(region).load()``, faster.

        When this object is a store variable that has only been indexed since
        :func:`epitensor.open_dataset` (``ds.signal.sel(biosample=..., assay=...)``), the bins are
        read from the store's chunk files in this thread (:mod:`epitensor.direct`), skipping dask's
        graph and scheduler, which cost more than the read itself for a region of a few tracks.
        Anything else is loaded through dask. Use :meth:`region` to stay lazy (large selections, many tracks, Dask clusters).

        Parameters
        ----------
        region : str, tuple, Region or list of them
            As for :meth:`region`.

        Returns
        -------
        DataArray or Dataset
            In memory, with the coordinates :meth:`region` gives.

        Raises
        ------
        RegionError
            Malformed region, unknown contig, or an interval past the contig end.

        Examples
        --------
        >>> import tempfile, epitensor as et
        >>> ds = et.datasets.synthetic(tempfile.mkdtemp() + "/s.zarr", n_biosamples=3, n_assays=2,
        ...                            n_positions=8_000, seed=1)
        >>> track = ds.signal.isel(biosample=0, assay=1)
        >>> values = track.epi.read("synthetic:1kb-2kb")
        >>> values.identical(track.epi.region("synthetic:1kb-2kb").load())
        True
        """
        from .direct import store_source

        source = store_source(self._obj) if isinstance(self._obj, xr.DataArray) else None
        if source is None:
            return self.region(region).load()
        genome = self.genome
        return _join([self._read(r, genome, source) for r in as_regions(region, genome)])

    def _select(self, region: Region, genome: Genome):
        lo, hi = self._bounds(region, genome)
        obj = self._obj
        if "position" in obj.indexes:
            return obj.sel(position=slice(lo, hi - 1))
        return obj.isel(position=slice(lo, hi)).assign_coords(_region_coords(region, genome, lo, hi))

    def _read(self, region: Region, genome: Genome, source):
        from .direct import read_store_bins

        lo, hi = self._bounds(region, genome)
        obj = self._obj
        # plain (dims, values, attrs): xarray deep-copies the on-disk encoding of Variables given to it
        coords = {k: (v.dims, v.values, v.attrs) for k, v in obj.coords.variables.items() if "position" not in v.dims and k != "chrom"}
        coords.update(_region_coords(region, genome, lo, hi))
        out = xr.DataArray(read_store_bins(obj, source, lo, hi), dims=obj.dims, coords=coords, name=obj.name, attrs=obj.attrs)
        out.encoding = dict(obj.encoding)
        return out

    def _bounds(self, region: Region, genome: Genome) -> tuple[int, int]:
        """Genome-wide bins ``[lo, hi)`` of ``region``, checked to lie inside this object."""
        lo, hi = region_bins(region, genome)
        if "position" in self._obj.indexes:
            have = self._obj.indexes["position"]
            if np.count_nonzero((have >= lo) & (have < hi)) != hi - lo:
                raise RegionError(
                    f"region {region} is not wholly inside this selection, which covers positions "
                    f"{have.min():,}-{have.max():,}; select from the full dataset instead"
                )
        return lo, hi

    # ------------------------------------------------------------------ tracks
    def tracks(self, which: str = "observed") -> pd.DataFrame:
        """Tracks as a DataFrame, one row per (biosample, assay).

        Parameters
        ----------
        which : {"observed", "missing", "all"}, default "observed"
            Observed tracks, unobserved pairs, or every pair (with an ``observed`` column).

        Returns
        -------
        pandas.DataFrame
            Columns ``biosample``, ``assay``, ``biosample_summary``, ``assay_category``, ``observed``.

        Examples
        --------
        >>> import epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, missing=0.5, seed=1)
        >>> ds.epi.tracks().columns.tolist()
        ['biosample', 'assay', 'biosample_summary', 'assay_category', 'observed']
        """
        if which not in ("observed", "missing", "all"):
            raise ValueError(f"which must be 'observed', 'missing' or 'all', got {which!r}")
        obs = self._observed()
        df = obs.to_series().rename("observed").reset_index()
        for meta, dim in (("biosample_summary", "biosample"), ("assay_category", "assay")):
            if meta in self._obj.coords:
                lookup = pd.Series(np.atleast_1d(self._obj[meta].values), index=np.atleast_1d(self._obj[dim].values))
                df[meta] = df[dim].map(lookup).astype(object)
            else:
                df[meta] = None
        df = df[["biosample", "assay", "biosample_summary", "assay_category", "observed"]]
        if which == "observed":
            df = df[df.observed]
        elif which == "missing":
            df = df[~df.observed]
        return df.reset_index(drop=True)

    def _observed(self) -> xr.DataArray:
        if "observed" not in self._obj.coords and "observed" not in getattr(self._obj, "data_vars", {}):
            raise SchemaError("no 'observed' mask here; open the data with epitensor.open_dataset")
        obs = self._obj["observed"]
        for dim in ("biosample", "assay"):
            if dim not in obs.dims:
                obs = obs.expand_dims(dim)
        return obs.transpose("biosample", "assay").load()

    def observed_fraction(self) -> float:
        """Fraction of (biosample, assay) pairs that are observed."""
        return float(self._observed().mean())

    # ------------------------------------------------------------------ export
    def to_bigwig(self, path, inverse_transform: bool = False):
        """Write this track (one biosample and assay) to a bigWig file of 25 bp bins.

        See :func:`epitensor.io.to_bigwig`.

        Examples
        --------
        >>> import tempfile, epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, missing=0.0, seed=1)
        >>> track = ds.signal.epi.region("synthetic:0-10kb").isel(biosample=0, assay=0)
        >>> track.epi.to_bigwig(tempfile.mkdtemp() + "/t.bw").suffix
        '.bw'
        """
        from .io.export import to_bigwig

        return to_bigwig(self._obj, path, inverse_transform=inverse_transform)

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        """A short human-readable description: labels, observed fraction, contigs, variables."""
        obj, genome = self._obj, self.genome
        obs = self._observed()
        n_b, n_a = obs.shape
        contigs = list(genome.contigs)
        shown = ", ".join(contigs[:6]) + (f", ... ({len(contigs)} contigs)" if len(contigs) > 6 else "")
        variables = list(obj.data_vars) if isinstance(obj, xr.Dataset) else [obj.name]
        lines = [
            f"epitensor {type(obj).__name__}" + (f" at {obj.attrs['source']}" if "source" in obj.attrs else ""),
            f"  genome     : {genome.assembly}, {genome.bin_size} bp bins, transform {obj.attrs.get('transform', '?')}",
            f"  contigs    : {shown}",
            f"  positions  : {obj.sizes.get('position', 0):,}",
            f"  biosamples : {n_b}  ({_head(obs.biosample.values)})",
            f"  assays     : {n_a}  ({_head(obs.assay.values)})",
            f"  observed   : {int(obs.sum()):,} of {obs.size:,} tracks ({obs.mean().item():.1%}), "
            f"{1 - obs.mean().item():.1%} missing",
            f"  variables  : {', '.join(map(str, variables))}",
        ]
        return "\n".join(lines)


def _region_coords(region: Region, genome: Genome, lo: int, hi: int) -> dict:
    """``position``, ``chrom``, ``start`` and ``end`` coordinates of bins ``[lo, hi)`` of ``region``."""
    first, _ = genome.contig_bins(region.contig)
    pos = np.arange(lo, hi, dtype=np.int64)
    start = (pos - first) * genome.bin_size
    end = np.minimum(start + genome.bin_size, genome.length(region.contig))
    # chrom is a scalar coordinate (cheap); _join of several regions spreads it along position
    return {"position": pos, "chrom": region.contig, "start": ("position", start), "end": ("position", end)}


def _join(parts):
    """One region as it is; several concatenated along ``position`` with ``chrom`` along it."""
    if len(parts) == 1:
        return parts[0]
    parts = [p.assign_coords(chrom=("position", np.full(p.sizes["position"], p.chrom.item()))) for p in parts]
    return xr.concat(parts, dim="position")


def _head(labels, n: int = 5) -> str:
    labels = [str(x) for x in labels]
    return ", ".join(labels[:n]) + (", ..." if len(labels) > n else "")


@xr.register_dataset_accessor("epi")
class EpiDatasetAccessor(_EpiBase):
    """epitensor methods on a Dataset opened with :func:`epitensor.open_dataset`."""


@xr.register_dataarray_accessor("epi")
class EpiDataArrayAccessor(_EpiBase):
    """epitensor methods on a track DataArray such as ``ds.signal`` or ``ds.imputed``."""
