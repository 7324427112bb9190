"""Input and output of tracks: manifests, bigWig and peak-file ingestion into a store, bigWig export."""

from .bigwig import bin_means, inspect_bigwig, read_bins
from .export import to_bigwig
from .ingestion import ingest
from .manifest import fetch, read_manifest
from .peaks import PEAK_VALUES, is_peak_file, peak_bins, read_peaks
from .progress import completed_pieces

__all__ = [
    "PEAK_VALUES",
    "bin_means",
    "completed_pieces",
    "fetch",
    "ingest",
    "inspect_bigwig",
    "is_peak_file",
    "peak_bins",
    "read_bins",
    "read_manifest",
    "read_peaks",
    "to_bigwig",
]
