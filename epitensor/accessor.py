"""The ``.epi`` accessor on xarray Datasets and DataArrays.

Accessors are stateless (xarray rebuilds them after every operation): everything they need lives
in the object's coordinates: labels, ``observed``, and ``position``, whose index carries the genome
(:mod:`epitensor.genome_index`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .exceptions import RegionError, SchemaError
from .genome import Genome
from .genome_index import attach, genome_index, held_contigs


class _EpiBase:
    def __init__(self, obj):
        self._obj = obj

    # ------------------------------------------------------------------ layout
    @property
    def genome(self) -> Genome:
        """The :class:`~epitensor.Genome` of the ``position`` axis (from its index)."""
        return genome_index(self._obj).genome

    def contigs(self) -> pd.DataFrame:
        """Contigs this object holds bins of: ``length``, ``first_bin`` and the bp range held
        (``start``, ``end``) with its ``n_bins``."""
        return held_contigs(genome_index(self._obj))

    # ------------------------------------------------------------------ regions
    def region(self, region):
        """Select a genomic region lazily, with readable ``chrom``/``start``/``end`` coordinates.

        The same as ``obj.sel(position=region)`` for a region string; this method also takes
        tuples, :class:`~epitensor.regions.Region` objects and lists of regions.

        Parameters
        ----------
        region : str, tuple, Region or list of them
            ``"chr20:1,000,000-2,000,000"``, ``"chrX"``, ``"6:1kb-2M"``, ``("chr1", 0, 1000)``; a
            list selects several regions, concatenated along ``position``. 0-based half-open; the
            bins overlapping the interval are selected.

        Returns
        -------
        Dataset or DataArray
            Indexed by genome-wide bin numbers along ``position`` (a
            :class:`~epitensor.genome_index.GenomeIndex`), with ``chrom``, ``start``, ``end``
            coordinates. Nothing is computed: the cost is proportional to the region.

        Raises
        ------
        RegionError
            Malformed region, unknown contig, an interval past the contig end, or a region that
            this object (a selection) does not wholly hold.

        Examples
        --------
        >>> import epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, seed=1)
        >>> da = ds.signal.epi.region("synthetic:1kb-2kb")
        >>> da.sizes["position"], int(da.start[0]), str(da.chrom[0].item())
        (40, 1000, 'synthetic')
        """
        obj = attach(self._obj)
        return obj.isel(position=self._indexer(obj, region))

    def read(self, region):
        """Read a genomic region into memory: the same as ``.epi.region(region).load()``, faster.

        When this object is a store variable that has only been indexed since
        :func:`epitensor.open_dataset` (``ds.signal.sel(biosample=..., assay=...)``), the bins are
        read from the store's chunk files in this thread (:mod:`epitensor.store.direct`), skipping dask's
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
        from .store import read_selection, store_source

        obj = attach(self._obj)
        source = store_source(obj) if isinstance(obj, xr.DataArray) else None
        if source is None:
            return self.region(region).load()
        indexer = self._indexer(obj, region)
        if not isinstance(indexer, slice):
            return obj.isel(position=indexer).load()
        return read_selection(obj, source, indexer)

    @staticmethod
    def _indexer(obj, region):
        return genome_index(obj).regions_indexer(region)

    def plot(self, **kwargs):
        """Plot tracks of one contig's region with base pairs on x (``start``), one line per track.

        xarray's own ``.plot()`` draws against the dimension coordinate, which is the genome-wide
        bin number; ``da.plot(x="start")`` or this method put base pairs on x.

        Parameters
        ----------
        **kwargs
            Passed to :meth:`xarray.DataArray.plot.line` (``hue``, ``ax``, ``figsize``, ...).

        Examples
        --------
        >>> import epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=8_000, seed=1)
        >>> lines = ds.signal.sel(biosample="B00").epi.region("synthetic:0-10kb").epi.plot()
        >>> lines[0].axes.get_xlabel()
        'synthetic [bp]'
        """
        if not isinstance(self._obj, xr.DataArray):
            raise SchemaError("plot a DataArray, e.g. ds.signal.sel(biosample=...).epi.region(...).epi.plot()")
        obj = attach(self._obj)
        chroms = [c for c in pd.unique(np.asarray(obj["chrom"].values, dtype=object)) if c]
        if len(chroms) != 1:
            raise RegionError(f"this selection spans contigs {chroms[:5]}; select one contig's region with .epi.region first")
        obj = obj.assign_coords(start=obj["start"].assign_attrs(long_name=chroms[0], units="bp"))
        others = [d for d in obj.dims if d != "position"]
        if len(others) > 1:
            raise SchemaError(f"select down to at most one dimension besides position to plot (has {others})")
        if others and "hue" not in kwargs:
            kwargs["hue"] = others[0]
        return obj.plot.line(x="start", **kwargs)

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


def _head(labels, n: int = 5) -> str:
    labels = [str(x) for x in labels]
    return ", ".join(labels[:n]) + (", ..." if len(labels) > n else "")


@xr.register_dataset_accessor("epi")
class EpiDatasetAccessor(_EpiBase):
    """epitensor methods on a Dataset opened with :func:`epitensor.open_dataset`."""


@xr.register_dataarray_accessor("epi")
class EpiDataArrayAccessor(_EpiBase):
    """epitensor methods on a track DataArray such as ``ds.signal`` or ``ds.imputed``."""
