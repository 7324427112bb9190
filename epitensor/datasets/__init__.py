"""Sample data: the real Roadmap pilot tracks, the ENCODE peaks compendium, ENCODE2018 experiment lists, the reference downstream demo's
feature sets, and a synthetic generator."""

from .bigwigs import synthetic_bigwigs, write_bigwig
from .downstream import avocado_downstream, fetch_avocado_downstream
from .encode import experiment_mask, read_encode_experiments, short_assay_name
from .peaks import encode_peaks, encode_peaks_manifest, fetch_encode_peaks
from .roadmap import LATIN_SQUARE, fetch_roadmap_pilot, roadmap_pilot
from .synthetic import synthetic, synthetic_tensor

__all__ = [
    "LATIN_SQUARE",
    "avocado_downstream",
    "encode_peaks",
    "encode_peaks_manifest",
    "experiment_mask",
    "fetch_avocado_downstream",
    "fetch_encode_peaks",
    "fetch_roadmap_pilot",
    "read_encode_experiments",
    "roadmap_pilot",
    "short_assay_name",
    "synthetic",
    "synthetic_bigwigs",
    "synthetic_tensor",
    "write_bigwig",
]
