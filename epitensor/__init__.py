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

from . import accessors as _accessors  # noqa: F401  (registers the .epi accessors)
from . import datasets, evaluation, io, latent
from .evaluation import Annotations, baselines, cross_validate, cv_folds, evaluate, plot
from .exceptions import (
    ArgumentError,
    BlockError,
    CorruptChunkError,
    DataError,
    DownloadError,
    EpitensorError,
    GenomeError,
    LabelError,
    ManifestError,
    ModelError,
    ModelFileError,
    ObjectStoreError,
    PrecisionError,
    ReferenceModelError,
    RegionError,
    SchemaError,
    StoreNotFoundError,
    WriteError,
)
from .genome import Genome
from .io import ingest, read_manifest, to_bigwig
from .regions import Region, parse_region
from .store import (
    TrackWriter,
    add_labels,
    check_store,
    create_store,
    open_dataset,
    precision,
    validate,
    write_track,
)
from .version import __version__  # noqa: F401  (the package version)


def __getattr__(name):
    """Import the model (and with it PyTorch, ~2 s) only when it is first used, so that opening
    stores, ingesting and Dask worker processes start fast."""
    if name == "Avocado":
        from .model import Avocado

        return Avocado
    if name in ("model", "scale"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'epitensor' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"Avocado", "model", "scale"})

__all__ = [
    "Annotations",
    "ArgumentError",
    "Avocado",
    "BlockError",
    "CorruptChunkError",
    "DataError",
    "DownloadError",
    "EpitensorError",
    "Genome",
    "GenomeError",
    "LabelError",
    "ManifestError",
    "ModelError",
    "ModelFileError",
    "ObjectStoreError",
    "PrecisionError",
    "Region",
    "ReferenceModelError",
    "RegionError",
    "SchemaError",
    "StoreNotFoundError",
    "TrackWriter",
    "add_labels",
    "baselines",
    "check_store",
    "create_store",
    "cross_validate",
    "cv_folds",
    "datasets",
    "evaluate",
    "evaluation",
    "ingest",
    "io",
    "latent",
    "open_dataset",
    "parse_region",
    "plot",
    "precision",
    "read_manifest",
    "to_bigwig",
    "validate",
    "WriteError",
    "write_track",
]
