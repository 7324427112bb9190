"""The main job behind ``epitensor demo``: the Roadmap sample end to end."""

from __future__ import annotations

import time
from pathlib import Path

from . import datasets


def build_sample_store(out: Path, synthetic: bool = False, data=None, n_bins: int | None = None):
    """Build the demo store in ``out``: the Roadmap sample with the Latin-square tracks hidden.

    Parameters
    ----------
    out : Path
        Output folder; the store is ``out/roadmap.zarr`` (``out/synthetic.zarr`` offline).
    synthetic : bool, default False
        Use the offline synthetic compendium instead of the real tracks.
    data : str or Path, optional
        Folder with the Roadmap ``.npz`` files; default ``EPITENSOR_DATA``, else download.
    n_bins : int, optional
        Keep only the first ``n_bins`` positions.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if synthetic:
        return datasets.synthetic(out / "synthetic.zarr", n_biosamples=5, n_assays=5, n_positions=n_bins or 100_000,
                                  missing=0.2, seed=0)
    return datasets.roadmap_pilot(out / "roadmap.zarr", path=data, mask="latin-square", n_bins=n_bins)


def run_demo(out, synthetic: bool = False, data=None, n_bins: int | None = None, echo=print):
    """Run the demo and report what it wrote."""
    t0 = time.perf_counter()
    ds = build_sample_store(Path(out), synthetic=synthetic, data=data, n_bins=n_bins)
    echo(ds.epi.summary())
    echo(f"\nstore written to {ds.attrs['source']} in {time.perf_counter() - t0:.1f} s")
    return ds
