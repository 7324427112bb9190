"""The ``.epi`` accessor of DataArrays: a track's regions read into memory, plotted, written to bigWig."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import RegionError, SchemaError
from ..genome_index import attach
from .base import EpiBase


@xr.register_dataarray_accessor("epi")
class EpiDataArrayAccessor(EpiBase):
    """epitensor methods on a track DataArray such as ``ds.signal`` or ``ds.imputed``."""

    def read(self, region):
        """Read a genomic region into memory: the same as ``.epi.region(region).load()``, faster.

        When this object is a store variable that has only been indexed since
        :func:`epitensor.open_dataset` (``ds.signal.sel(biosample=..., assay=...)``), the bins are
        read from the store's chunk files in this thread (:mod:`epitensor.store.direct`), skipping dask's
        graph and scheduler, which cost more than the read itself for a region of a few tracks. A
        list of regions is read region by region the same way, unless its bins are scattered
        (many short regions per chunk). Anything else is loaded through dask. Use :meth:`region` to stay lazy (large selections, many tracks, Dask clusters).

        Parameters
        ----------
        region : str, tuple, Region or list of them
            As for :meth:`region`.

        Returns
        -------
        DataArray
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
        from ..store import read_selection, store_source

        obj = attach(self._obj)
        source = store_source(obj)
        if source is None:
            return self.region(region).load()
        return read_selection(obj, source, self._indexer(obj, region))

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
        from ..io.export import to_bigwig

        return to_bigwig(self._obj, path, inverse_transform=inverse_transform)
