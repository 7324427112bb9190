"""The Roadmap Epigenomics sample of the Avocado repository: 5 biosamples x 5 histone marks.

Values are arcsinh(-log10 p-value) ChIP-seq signal in 25 bp bins (hg19) over the ENCODE pilot
regions of chr1-22, concatenated in order; 1,126,469 bins per track. The source ships no
coordinates, so the store lays the positions out as one pseudo-contig called ``pilot``.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr

from ..exceptions import DataError, DownloadError, LabelError
from ..genome import Genome
from ..store import TrackWriter, create_store, open_dataset
from .fetch import fetch_registry

BIOSAMPLES = {
    "E003": "H1 embryonic stem cells",
    "E017": "IMR-90 fetal lung fibroblasts",
    "E065": "Aorta",
    "E116": "GM12878 lymphoblastoid cells",
    "E117": "HeLa-S3 cervical carcinoma cells",
}
ASSAYS = ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3", "H3K4me1")
#: The five held-out tracks of the Avocado tutorial: one per biosample and one per assay.
LATIN_SQUARE = (("E003", "H3K4me3"), ("E017", "H3K27me3"), ("E065", "H3K36me3"), ("E116", "H3K9me3"), ("E117", "H3K4me1"))
#: Bins per track in the original files.
PILOT_BINS = 1_126_469
_COMMIT = "35961b6b0374dff0262914e84e864b2086f73933"
BASE_URL = f"https://github.com/jmschrei/avocado/raw/{_COMMIT}/data/"


def _file_name(biosample: str, assay: str) -> str:
    return f"{biosample}.{assay}.pilot.arcsinh.npz"


def registry() -> dict[str, str]:
    """File name -> ``sha256:<hash>`` of the original (full-length) files."""
    text = resources.files("epitensor.data").joinpath("roadmap_pilot.sha256").read_text()
    return {name: f"sha256:{digest}" for digest, name in (line.split() for line in text.splitlines() if line.strip())}


def fetch_roadmap_pilot(cache_dir=None, progress: bool = True) -> Path:
    """Download the 25 original tracks, verified against their sha256, and return their folder.

    Files already in ``cache_dir`` with the right hash are not downloaded again.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Default: the user cache (``pooch.os_cache("epitensor")/roadmap_pilot``).
    progress : bool, default True
        Show a download progress bar.
    """
    return fetch_registry(registry(), BASE_URL, "roadmap_pilot", cache_dir, progress, kind=".npz")


def find_local_copy() -> Path | None:
    """Folder of local Roadmap ``.npz`` files named by ``EPITENSOR_DATA``, if any.

    ``EPITENSOR_DATA`` may name the folder of the files itself, or a data folder that has a
    ``roadmap_pilot`` subfolder.
    """
    root = os.environ.get("EPITENSOR_DATA")
    if not root:
        return None
    for cand in (Path(root), Path(root) / "roadmap_pilot"):
        if (cand / _file_name(*LATIN_SQUARE[0])).exists():
            return cand
    return None


def roadmap_pilot(
    store=None,
    *,
    path=None,
    mask=(),
    n_bins: int | None = None,
    keep_held_out: bool = True,
    overwrite: bool = True,
) -> xr.Dataset:
    """Build a store of the 25 Roadmap tracks (E003, E017, E065, E116, E117 x 5 histone marks).

    Parameters
    ----------
    store : str or Path, optional
        Where to write the zarr store; default: a new temporary directory.
    path : str or Path, optional
        Folder with the ``{biosample}.{assay}.pilot.arcsinh.npz`` files. Default: the folder named
        by ``EPITENSOR_DATA``, else the originals downloaded (sha256-verified) into the cache.
        Local files are read without hash checks (copies may be truncated).
    mask : "latin-square" or iterable of (biosample, assay), default ()
        Tracks to hide: they stay unobserved in ``signal`` and, with ``keep_held_out``, their
        values go into ``held_out`` for evaluation. ``"latin-square"`` hides :data:`LATIN_SQUARE`.
    n_bins : int, optional
        Keep only the first ``n_bins`` bins (quick experiments); default: all the files have.
    keep_held_out : bool, default True
        Keep the hidden tracks' values in ``held_out``.
    overwrite : bool, default True
        Replace an existing store at ``store``.

    Returns
    -------
    xarray.Dataset
        The opened store, genome ``hg19-pilot`` with one contig ``pilot``.

    Examples
    --------
    >>> ds = roadmap_pilot(path="../shared/data/roadmap_pilot", mask="latin-square")  # doctest: +SKIP
    >>> ds.epi.observed_fraction()                                                     # doctest: +SKIP
    0.8
    """
    folder = Path(path) if path is not None else (find_local_copy() or fetch_roadmap_pilot())
    hidden = set(LATIN_SQUARE) if isinstance(mask, str) and mask == "latin-square" else {tuple(p) for p in mask}
    unknown = [p for p in hidden if p[0] not in BIOSAMPLES or p[1] not in ASSAYS]
    if unknown:
        raise LabelError(f"cannot mask {unknown}: the Roadmap sample has biosamples {list(BIOSAMPLES)} and assays {list(ASSAYS)}")
    tracks = {(b, a): _read_npz(folder / _file_name(b, a)) for b in BIOSAMPLES for a in ASSAYS}
    length = min(v.shape[0] for v in tracks.values())
    if n_bins is not None:
        if not 0 < n_bins <= length:
            raise DataError(f"n_bins must be between 1 and {length:,} (the tracks' length), got {n_bins}")
        length = n_bins
    store = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="epitensor-roadmap-")) / "roadmap.zarr"
    genome = Genome.single_contig("pilot", length, assembly="hg19-pilot")
    create_store(store, BIOSAMPLES, {a: "histone" for a in ASSAYS}, genome, overwrite=overwrite)
    writer = TrackWriter(store)
    for (b, a), values in tracks.items():
        if (b, a) in hidden and not keep_held_out:
            continue
        writer.write(b, a, values[:length], "pilot", "held_out" if (b, a) in hidden else "signal")
    writer.mark_observed([p for p in tracks if p not in hidden])
    return open_dataset(store)


def _read_npz(file: Path) -> np.ndarray:
    if not file.exists():
        raise DownloadError(f"missing Roadmap track file {file}; pass path= a folder holding all 25 files, or unset it to download")
    with np.load(file) as npz:
        return np.asarray(npz["arr_0"], dtype=np.float32)
