"""Input and output of tracks: manifests, bigWig ingestion into a store, bigWig export."""

from .bigwig import bin_means, inspect_bigwig, read_bins
from .export import to_bigwig
from .ingestion import completed_pieces, ingest
from .manifest import fetch, read_manifest

__all__ = ["bin_means", "completed_pieces", "fetch", "ingest", "inspect_bigwig", "read_bins", "read_manifest", "to_bigwig"]
