"""The ``.epi`` accessor of Datasets opened with :func:`epitensor.open_dataset`."""

from __future__ import annotations

import xarray as xr

from .base import EpiBase


@xr.register_dataset_accessor("epi")
class EpiDatasetAccessor(EpiBase):
    """epitensor methods on a Dataset opened with :func:`epitensor.open_dataset`."""

    def read(self, region) -> xr.Dataset:
        """Read a genomic region of every variable into memory: ``.epi.region(region).load()``.

        Parameters
        ----------
        region : str, tuple, Region or list of them
            As for :meth:`region`.

        Returns
        -------
        Dataset
            In memory, with the coordinates :meth:`region` gives.

        Examples
        --------
        >>> import epitensor as et
        >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, seed=1)
        >>> ds.epi.read("synthetic:1kb-2kb").sizes["position"]
        40
        """
        return self.region(region).load()
