"""What the ``.epi`` accessors of Datasets and DataArrays share: layout, regions, tracks, summary.

Accessors are stateless (xarray rebuilds them after every operation): everything they need lives
in the object's coordinates: labels, ``observed``, and ``position``, whose index carries the genome
(:mod:`epitensor.genome_index`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import SchemaError
from ..genome import Genome
from ..genome_index import attach, genome_index, held_contigs


class EpiBase:
    """The ``.epi`` methods of both Datasets and DataArrays (see the two accessors)."""

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

    @staticmethod
    def _indexer(obj, region):
        return genome_index(obj).regions_indexer(region)

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
