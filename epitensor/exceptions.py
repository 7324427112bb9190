"""Exceptions raised by epitensor.

Every error is an :class:`EpitensorError`; the narrow subclasses also derive from the
built-in type a Python user would expect (``ValueError`` for bad values, ``FileNotFoundError``
for a missing store), so ``except ValueError`` keeps working in user code.
"""

from __future__ import annotations


class EpitensorError(Exception):
    """Root of every error raised by epitensor."""


class RegionError(EpitensorError, ValueError):
    """A genomic region string or tuple that cannot be parsed or lies outside the genome."""


class GenomeError(EpitensorError, ValueError):
    """An unknown assembly or contig, or genomes that disagree (e.g. a wrong genome build)."""


class LabelError(EpitensorError, ValueError):
    """Biosample or assay labels that are unknown, duplicated or otherwise invalid."""


class SchemaError(EpitensorError, ValueError):
    """A dataset or store that does not follow the epitensor tensor schema."""


class StoreNotFoundError(EpitensorError, FileNotFoundError):
    """A path that is not an epitensor zarr store."""


class DataError(EpitensorError, ValueError):
    """Signal values that cannot be used: wrong shape or dtype, NaN or infinite values."""


class DownloadError(EpitensorError, OSError):
    """A sample dataset that could not be downloaded or failed its hash check."""


class ManifestError(LabelError):
    """A manifest of tracks to ingest that lacks a column, repeats a track or names no files."""


class ModelError(EpitensorError, ValueError):
    """A model that cannot be trained, used or loaded as asked (not fitted, mismatched store, diverged)."""


class ModelFileError(ModelError):
    """A saved model directory that cannot be read or written: not a model, damaged or incomplete files."""


class ReferenceModelError(ModelFileError):
    """A reference Avocado model (the Keras ``NAME.json`` + ``NAME.h5`` its ``model.save`` writes) that
    cannot be imported: not a reference model, or weights missing or not matching its hyper-parameters."""


class BlockError(EpitensorError, RuntimeError):
    """Some blocks of a genome-scale run (stage 2 or block-wise imputation) failed.

    The finished blocks are recorded in the store; ``report`` (a DataFrame, one row per block) says
    which failed and why. Running the same call again redoes only the unfinished blocks.
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class WriteError(EpitensorError, OSError):
    """A file or store that cannot be written: a missing or read-only folder, a path that is a
    folder, a full disk."""


class ArgumentError(EpitensorError, ValueError):
    """An argument of an epitensor function outside its valid choices (the message lists them)."""


class PrecisionError(SchemaError):
    """Values written into a track variable at another storage precision than the one it was
    created with (see :mod:`epitensor.store.precision`)."""


class CorruptChunkError(DataError):
    """A chunk file of a store that is damaged: truncated, altered, not decodable, or missing from
    an observed track.

    Attributes ``store``, ``variable``, ``key`` (the chunk file, relative to the store), ``track``
    (``(biosample, assay)`` labels for a track variable, else None) and ``problem`` say which chunk
    and what is wrong with it.
    """

    def __init__(self, message: str, *, store=None, variable=None, key=None, track=None, problem=None):
        super().__init__(message)
        self.store, self.variable, self.key, self.track, self.problem = store, variable, key, track, problem


class MissingFilesWarning(UserWarning):
    """Files of a manifest that do not exist, left out of an ingest asked to report them
    (``missing_files="report"``); the store's ``absent_files`` attribute lists them."""


class ObjectStoreError(StoreNotFoundError):
    """An object store (S3, GCS, MinIO ...) that cannot be reached, read or written: no such
    bucket, wrong credentials or endpoint, or the object-store extra not installed."""


class SchedulerError(EpitensorError, ConnectionError):
    """A Dask scheduler that cannot be reached or used as asked (an address, or no active Client)."""
