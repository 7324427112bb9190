"""epitensor: complete the human epigenome.

A labelled (biosample x assay x position) tensor on chunked zarr, read lazily through xarray,
and the Avocado deep tensor factorization in PyTorch.

Examples
--------
>>> import epitensor as et
>>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=3, n_positions=10_000, seed=0)
>>> ds.signal.epi.region("synthetic:0-100kb").sel(biosample="B00").dims
('assay', 'position')
"""

from . import accessor as _accessor  # noqa: F401  (registers the .epi accessor)
from . import datasets

# evaluation: the subpackage epitensor.evaluate is shadowed at top level by its main function
from .evaluate import Annotations, baselines, cross_validate, cv_folds, plot  # noqa: E402
from .evaluate.scoring import evaluate  # noqa: E402
from .exceptions import (
    DataError,
    DownloadError,
    EpitensorError,
    GenomeError,
    LabelError,
    RegionError,
    SchemaError,
    StoreNotFoundError,
)
from .genome import Genome
from .regions import Region, parse_region
from .store import create_store, open_dataset, validate, write_track

__version__ = "0.1.0"

__all__ = [
    "Annotations",
    "DataError",
    "DownloadError",
    "EpitensorError",
    "Genome",
    "GenomeError",
    "LabelError",
    "Region",
    "RegionError",
    "SchemaError",
    "StoreNotFoundError",
    "baselines",
    "create_store",
    "cross_validate",
    "cv_folds",
    "datasets",
    "evaluate",
    "open_dataset",
    "parse_region",
    "plot",
    "validate",
    "write_track",
]
