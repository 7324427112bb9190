"""The main job behind ``epitensor demo``: the Roadmap sample end to end.

Build the store of the 25 Roadmap tracks with the five Latin-square tracks hidden (one per
biosample and per assay), train Avocado on the other 20, impute the five into the store's
``imputed`` variable, score them and the average-activity baseline against the hidden truth, and
write a score table and figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from . import datasets
from .store import open_dataset

#: Positions of the demo (5 Mb of the ENCODE pilot regions): big enough to be real, small enough
#: to train in a few minutes on a 2-core CPU.
DEMO_BINS = 200_000
#: Training budget of the demo in minutes (the whole run stays under 10 minutes on 2 CPU cores).
DEMO_MINUTES = 5.0
#: Training epochs of the demo. Measured on an idle 2-core CPU (200,000 bins, preset "small"), mean
#: MSE of the five hidden tracks vs the average-activity baseline: 10 epochs -4.7%, 15 -4.8% (better
#: Pearson r on all five), 30 -1.7%, 60 +0.1%. The per-position genome factors overfit 20 tracks,
#: and the preset's early stopping on random observed entries does not see it.
DEMO_EPOCHS = 15


def build_sample_store(out: Path, synthetic: bool = False, data=None, n_bins: int | None = None):
    """Build the demo store in ``out``: the Roadmap sample with the Latin-square tracks hidden.

    Parameters
    ----------
    out : Path
        Output folder; the store is ``out/roadmap.zarr`` (``out/synthetic.zarr`` offline).
    synthetic : bool, default False
        Use the offline synthetic compendium (5 x 5, the same missing pattern's size) instead.
    data : str or Path, optional
        Folder with the Roadmap ``.npz`` files; default ``EPITENSOR_DATA``, else download.
    n_bins : int, optional
        Keep only the first ``n_bins`` positions.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if synthetic:
        return datasets.synthetic(out / "synthetic.zarr", n_biosamples=5, n_assays=5, n_positions=n_bins or DEMO_BINS,
                                  missing=0.2, seed=0)
    if data is not None and not (Path(data) / "E003.H3K4me3.pilot.arcsinh.npz").exists():
        data = Path(data) / "roadmap_pilot"  # a data folder holding roadmap_pilot/
    return datasets.roadmap_pilot(out / "roadmap.zarr", path=data, mask="latin-square", n_bins=n_bins)


def run_demo(out="demo-output", *, synthetic: bool = False, data=None, n_bins: int | None = DEMO_BINS,
             minutes: float = DEMO_MINUTES, epochs: int = DEMO_EPOCHS, preset: str = "small", device="auto",
             progress: bool = True, echo=print) -> dict:
    """Run the demo: store, training, imputation, scores and figures, written to ``out``.

    Parameters
    ----------
    out : str or Path, default "demo-output"
        Output folder.
    synthetic : bool, default False
        Offline synthetic data instead of the Roadmap tracks.
    data : str or Path, optional
        Folder of the Roadmap tracks (default ``EPITENSOR_DATA``, else the sha256-checked download).
    n_bins : int, default 200,000
        Positions used (``None``: every position of the tracks).
    minutes : float, default 5
        Training budget; training also stops early on its validation entries.
    epochs : int, default 15
        Training epochs (see :data:`DEMO_EPOCHS`).
    preset : str, default "small"
        Model preset; ``"small"`` is the documented choice for small compendia (the paper's
        configuration overfits 20 tracks; see :data:`epitensor.model.config.PRESETS`).
    device : str, default "auto"
        ``"auto"`` uses a CUDA GPU when there is one.
    progress : bool, default True
        Progress bars.
    echo : callable, default print
        Where the report goes.

    Returns
    -------
    dict
        Paths of what was written (``store``, ``model``, ``scores``, ``improvement``, ``figures``)
        and the summary table.
    """
    from .evaluation import baselines, evaluate, plot
    from .evaluation.report import improvement_table
    from .model import Avocado

    out = Path(out)
    t0 = time.perf_counter()
    ds = build_sample_store(out, synthetic=synthetic, data=data, n_bins=n_bins)
    store = Path(ds.attrs["source"])
    echo(ds.epi.summary())
    hidden = ds.epi.tracks("missing")[["biosample", "assay"]].itertuples(index=False, name=None)
    hidden = list(hidden)

    t1 = time.perf_counter()
    model = Avocado(ds, preset=preset, device=device)
    echo(f"\ntraining {model!r} for at most {minutes:g} min ...")
    history = model.fit(epochs=epochs, time_limit=minutes * 60, progress=progress)
    train_s = time.perf_counter() - t1
    model.save(out / "model")
    for biosample, assay in hidden:
        model.impute_to_store(store, biosamples=[biosample], assays=[assay], progress=False)
    model.write_factors(store)

    ds = open_dataset(store)
    baseline = baselines.average_activity(ds.signal)
    scores = evaluate(ds.imputed, ds.held_out, variance_from=ds.signal, progress=False)
    base_scores = evaluate(baseline, ds.held_out, variance_from=ds.signal, progress=False)
    table = pd.concat([scores.assign(method="avocado"), base_scores.assign(method="average_activity")])
    table.to_csv(out / "scores.csv", index=False)
    improvement = improvement_table(scores, base_scores)
    improvement.to_csv(out / "improvement.csv")

    figures = [out / "mse_vs_baseline.png"]
    plot.metric_scatter(scores, base_scores, metric="mse", path=figures[0])
    contig = ds.attrs["contigs"][0]
    window = f"{contig}:1,000,000-1,020,000" if ds.sizes["position"] * 25 >= 1_020_000 else contig
    for biosample, assay in hidden:
        path = out / f"tracks_{biosample}_{assay}.png"
        plot.tracks(ds.held_out, ds.imputed, baseline, biosample=biosample, assay=assay, region=window, path=path)
        figures.append(path)

    summary = _summary(scores, base_scores)
    echo(f"\ntrained {len(history)} epochs in {train_s / 60:.1f} min; imputed the {len(hidden)} hidden tracks\n")
    echo(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    overall = summary.loc["mean"]
    echo(f"\nmean MSE: Avocado {overall.mse_avocado:.4f} vs average activity {overall.mse_baseline:.4f} "
         f"({overall.mse_change:+.1%}); Pearson r {overall.r_avocado:.3f} vs {overall.r_baseline:.3f}")
    echo(f"\nwrote: store {store}\n       model {out / 'model'}\n       scores {out / 'scores.csv'}, "
         f"{out / 'improvement.csv'}\n       figures {', '.join(str(f) for f in figures)}")
    echo(f"total {time.perf_counter() - t0:.0f} s")
    return {"store": store, "model": out / "model", "scores": out / "scores.csv", "improvement": out / "improvement.csv",
            "figures": figures, "summary": summary}


def _summary(scores: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Per-track MSE and Pearson r of the model and the baseline, with a mean row."""
    key = ["biosample", "assay"]
    both = scores.set_index(key)[["mse", "gwcorr"]].merge(base.set_index(key)[["mse", "gwcorr"]], left_index=True,
                                                           right_index=True, suffixes=("_m", "_b"))
    table = pd.DataFrame({
        "mse_avocado": both.mse_m, "mse_baseline": both.mse_b,
        "r_avocado": both.gwcorr_m, "r_baseline": both.gwcorr_b,
    })
    table.index = [f"{b} {a}" for b, a in table.index]
    table.loc["mean"] = table.mean()
    table["mse_change"] = table.mse_avocado / table.mse_baseline - 1
    return table
