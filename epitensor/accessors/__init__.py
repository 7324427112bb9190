"""The ``.epi`` accessors, registered on xarray when this package is imported (as rioxarray's).

:mod:`.dataarray` holds the DataArray accessor (``read``, ``plot``, ``to_bigwig``), :mod:`.dataset`
the Dataset one, and :mod:`.base` what both share (``genome``, ``contigs``, ``region``,
``tracks``, ``observed_fraction``, ``summary``).
"""

from .base import EpiBase
from .dataarray import EpiDataArrayAccessor
from .dataset import EpiDatasetAccessor

__all__ = ["EpiBase", "EpiDataArrayAccessor", "EpiDatasetAccessor"]
