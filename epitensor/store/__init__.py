"""The epigenome tensor on disk: a zarr v3 store read and written through xarray.

Schema (see ``docs/ARCHITECTURE.md``):

* ``signal (biosample, assay, position)``: float32, NaN where a track is not observed, chunks
  ``(1, 1, chunk_bins)`` so an unobserved track writes no bytes and each writer owns its chunks.
* ``observed (biosample, assay)``: bool, the truth about which tracks exist.
* Coordinates ``biosample`` and ``assay`` (unique strings), ``biosample_summary`` and
  ``assay_category`` beside them.
* Attributes: ``assembly``, ``bin_size``, ``chunk_bins``, the contig table (``contigs``,
  ``contig_lengths``, ``contig_first_bins``), ``transform`` and ``epitensor_schema``.

``position`` has no coordinate variable on disk: a genome-wide store never materialises a
124-million-entry index. :func:`open_dataset` indexes it with a
:class:`~epitensor.genome_index.GenomeIndex` (a range, with lazy ``chrom``/``start``/``end``); a
subset saved by xarray stores its bin numbers, which reopen the same way (``docs/data_model.md``).

The package is the only code of epitensor that touches zarr. Its modules, by responsibility:

* :mod:`~epitensor.store.schema`: the version, variables, labels and :func:`validate`;
* :mod:`~epitensor.store.codecs`: the one Blosc + CRC-32C configuration;
* :mod:`~epitensor.store.location`: where a store lives (a folder or an object-store prefix);
* :mod:`~epitensor.store.create` and :mod:`~epitensor.store.metadata`: creating and growing
  stores, and the derived metadata (label copies ``labels_utf8``, consolidated metadata);
* :mod:`~epitensor.store.open`: :func:`open_group` and :func:`open_dataset`;
* :mod:`~epitensor.store.tracks`: track variables and :class:`TrackArray`, the one reader/writer
  that picks the chunk files or zarr; :mod:`~epitensor.store.direct`: labelled region reads;
* :mod:`~epitensor.store.chunk_files`, :mod:`~epitensor.store.damage`,
  :mod:`~epitensor.store.checked` and :mod:`~epitensor.store.integrity`: direct chunk I/O and
  the checks that refuse damaged chunks;
* :mod:`~epitensor.store.precision`: storage precision of ``imputed``;
* :mod:`~epitensor.store.factors`: model factors; :mod:`~epitensor.store.records`: the write
  records of ingestion and stage 2.
"""

from .checked import CheckedStore, RequiredChunks, required_chunks
from .chunk_files import ChunkFiles
from .codecs import compressors
from .create import add_labels, create_store
from .damage import ChunkDamage, ChunkLayout, corrupt_chunk, track_of
from .direct import read_selection, read_tracks, store_source
from .factors import read_store_rows, runs, write_embedding, write_genome_factors
from .fitted import (
    GENOME_FIT_GROUP,
    MARKER_KINDS,
    Intervals,
    fitted_intervals,
    has_fitted_factors,
    marker_ranges,
)
from .integrity import check_store
from .location import StoreLocation, access_error, check_bucket, is_remote, locate, zarr_store
from .metadata import (
    has_consolidated_metadata,
    label_bytes,
    remove_interrupted_writes,
    sync_metadata,
)
from .open import as_unicode_labels, open_dataset, open_group, store_path
from .precision import Precision, check_precision, default_precision, parse_precision, precision_of
from .records import prepare_records, read_records, remove_record, write_record
from .schema import (
    ASSAY_CATEGORIES,
    FACTOR_RESOLUTIONS,
    GENOME_ATTRS,
    LABEL_ARRAYS,
    LABEL_BYTES_GROUP,
    SCHEMA_VERSION,
    TRACK_VARIABLES,
    TRANSFORMS,
    assay_category,
    genome_attrs,
    label_index,
    schema_problems,
    validate,
)
from .tracks import (
    TrackArray,
    TrackWriter,
    add_track_variable,
    check_track_chunks,
    genome_mask,
    open_zarr_group,
    set_observed,
    write_track,
)

__all__ = [
    "GENOME_FIT_GROUP",
    "Intervals",
    "MARKER_KINDS",
    "fitted_intervals",
    "has_fitted_factors",
    "marker_ranges",
    "ASSAY_CATEGORIES",
    "CheckedStore",
    "ChunkDamage",
    "ChunkFiles",
    "ChunkLayout",
    "FACTOR_RESOLUTIONS",
    "GENOME_ATTRS",
    "LABEL_ARRAYS",
    "LABEL_BYTES_GROUP",
    "Precision",
    "RequiredChunks",
    "SCHEMA_VERSION",
    "StoreLocation",
    "TRACK_VARIABLES",
    "TRANSFORMS",
    "TrackArray",
    "TrackWriter",
    "access_error",
    "add_labels",
    "add_track_variable",
    "as_unicode_labels",
    "assay_category",
    "check_bucket",
    "check_precision",
    "check_store",
    "check_track_chunks",
    "compressors",
    "corrupt_chunk",
    "create_store",
    "default_precision",
    "genome_attrs",
    "genome_mask",
    "has_consolidated_metadata",
    "is_remote",
    "label_bytes",
    "label_index",
    "locate",
    "open_dataset",
    "open_group",
    "open_zarr_group",
    "parse_precision",
    "precision_of",
    "prepare_records",
    "read_records",
    "read_selection",
    "read_store_rows",
    "read_tracks",
    "remove_interrupted_writes",
    "remove_record",
    "required_chunks",
    "runs",
    "schema_problems",
    "set_observed",
    "store_path",
    "store_source",
    "sync_metadata",
    "track_of",
    "validate",
    "write_embedding",
    "write_genome_factors",
    "write_record",
    "write_track",
    "zarr_store",
]
