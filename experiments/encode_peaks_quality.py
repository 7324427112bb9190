"""TF binding in a held-out cell line (the ENCODE-DREAM setting) on the ENCODE peaks compendium.

    nice -n 10 python experiments/encode_peaks_quality.py [--minutes 2] [--epochs 50] [--stride 8]
        [--store PATH] [--cells K562,GM12878] [--threads 2]

The store is :func:`epitensor.datasets.encode_peaks` (6 cell lines x 200 assays, peak coverage in
25 bp bins on hg19 chr21 and chr22, from ../shared/data/encode_peaks or $EPITENSOR_DATA). For each
cell line, the TF tracks of that line whose TF is observed in at least two other lines are hidden;
``et.Avocado(ds, preset="small", seed=0, validation_fraction=0)`` trains on every other observed
track over chr21 and chr22 (the hidden tracks' positions are seen, the tracks are not) for at most
``--minutes`` of wall-clock time, then imputes the hidden tracks. The preset's validation on 5% of
the observed entries is turned off: here that is 5% of 380 tracks x 4 million bins, 77 million
predictions per epoch, twenty times the epoch's own training. The average-activity baseline of a hidden track is
the per-bin mean of its TF over the other lines where it is observed.

Scored per hidden track over every ``--stride``-th bin of chr21 and chr22 (a regular, unbiased
subsample: 25 bp bins 200 bp apart at the default 8, about 500,000 per track; imputing all 4
million bins of every hidden track would cost more CPU than the training): average precision
against the hidden peak coverage (``sklearn.metrics.average_precision_score``, a bin is positive when a peak covers
it) and MSE, for the model and the baseline. Printed: per track, per cell line, overall, split by
"TF observed in >= 4 other lines", the issue's targets (MAP >= 1.2x the baseline overall, >= 1.3x
on TFs observed in >= 4 other lines, better AP on >= 70% of the tracks), and CPU time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import bench_path  # noqa: F401  (benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import torch
from common import machine  # (and the source tree on sys.path)
from sklearn.metrics import average_precision_score

import epitensor as et  # noqa: E402
from epitensor.exceptions import MissingFilesWarning  # noqa: E402


def hidden_tracks(ds, cell: str, min_other: int = 2) -> list[tuple[str, int]]:
    """TF assays observed in ``cell`` and in at least ``min_other`` other lines, with that count."""
    observed = ds.observed.to_pandas()
    tf = ds.assay_category.to_pandas() == "tf"
    out = []
    for assay in observed.columns[tf.to_numpy()]:
        others = int(observed[assay].drop(cell).sum())
        if observed.loc[cell, assay] and others >= min_other:
            out.append((str(assay), others))
    return out


def score(truth: np.ndarray, pred: np.ndarray) -> dict:
    """AP (NaN for a track without a peak in the scored bins: it is undefined) and MSE."""
    labels = truth > 0.5
    ap = float(average_precision_score(labels, pred)) if labels.any() else float("nan")
    return {"ap": ap, "mse": float(np.mean((truth - pred) ** 2))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="reuse (or build) the compendium store here; default: a temporary folder")
    ap.add_argument("--cells", help="comma-separated cell lines (default: all six)")
    ap.add_argument("--minutes", type=float, default=2.0, help="wall-clock training budget per cell line")
    ap.add_argument("--epochs", type=int, default=50, help="most epochs per cell line (the budget usually stops first)")
    ap.add_argument("--stride", type=int, default=8, help="score every stride-th bin")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", help="also write the per-track table here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-encode-peaks-")) / "encode_peaks.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFilesWarning)  # the 17 absent files, listed below
        ds = et.datasets.encode_peaks(store, workers=args.threads)
    build = time.perf_counter() - wall0
    region = list(ds.attrs["contigs"])
    print(f"ENCODE peaks: {ds.sizes['biosample']} cell lines x {ds.sizes['assay']} assays x {ds.sizes['position']:,} bins "
          f"({', '.join(region)}), {int(ds.observed.sum())} observed tracks, {len(ds.attrs['absent_files'])} listed files absent; "
          f"store ready in {build:.0f} s. Preset {args.preset!r}, {args.minutes} min / at most {args.epochs} epochs per line; "
          f"torch {torch.__version__}, {args.threads} threads, {machine()}", flush=True)
    cells = args.cells.split(",") if args.cells else [str(b) for b in ds.biosample.values]
    observed = [(str(b), str(a)) for b, a in ds.epi.tracks()[["biosample", "assay"]].itertuples(index=False)]
    positions = np.concatenate([ds.signal.epi.region(c).position.values[:: args.stride] for c in region])
    rows, training = [], []
    for cell in cells:
        hidden = hidden_tracks(ds, cell)
        if not hidden:
            print(f"  {cell}: no TF observed here and in two other lines; skipped")
            continue
        names = {a for a, _ in hidden}
        tracks = [p for p in observed if not (p[0] == cell and p[1] in names)]
        t, cpu = time.perf_counter(), time.process_time()
        model = et.Avocado(ds, preset=args.preset, seed=args.seed, validation_fraction=0.0)
        hist = model.fit(region=region, epochs=args.epochs, tracks=tracks, time_limit=args.minutes * 60, progress=False)
        fit_s = time.perf_counter() - t
        a_idx = [list(model.assays).index(a) for a, _ in hidden]  # rows of the model's tables
        imputed = model.predict([list(model.biosamples).index(cell)] * len(a_idx), a_idx, positions)
        for k, (assay, others) in enumerate(hidden):
            truth = ds.signal.sel(biosample=cell, assay=assay).values[positions]  # position i is row i of signal
            others_obs = [str(b) for b in ds.biosample.values if b != cell and ds.observed.sel(biosample=b, assay=assay)]
            base = ds.signal.sel(assay=assay, biosample=others_obs).values[:, positions].mean(axis=0)
            pred = imputed[k]
            rows.append({"cell": cell, "assay": assay, "others": others, "positive": float((truth > 0.5).mean()),
                         **{f"model_{k}": v for k, v in score(truth, pred).items()},
                         **{f"base_{k}": v for k, v in score(truth, base).items()}})
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        training.append({"cell": cell, "hidden": len(hidden), "training tracks": len(tracks), "epochs": len(hist),
                         "fit s": round(fit_s), "fit+impute+score s": round(seconds), "CPU s": round(cpu),
                         "final loss": round(float(hist.loss.iloc[-1]), 5)})
        del model, imputed  # the training data of a line is ~6 GB
        part = pd.DataFrame(rows[-len(hidden):])
        print(f"  {cell}: {len(hidden)} hidden TF tracks, {len(hist)} epochs in {fit_s:.0f} s; MAP model {part.model_ap.mean():.4f}, "
              f"baseline {part.base_ap.mean():.4f} ({seconds:.0f} s, {cpu:.0f} CPU s)", flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 180)
    pd.set_option("display.max_rows", 500)
    table["ap ratio"] = table.model_ap / table.base_ap
    no_peaks = table[table.model_ap.isna()]
    if not no_peaks.empty:
        print(f"\nLeft out of the AP summaries (no peak in the scored bins): {', '.join(no_peaks.cell + '/' + no_peaks.assay)}")
    print("\nPer hidden track (AP: average precision against the hidden peak coverage; MSE on 0/1 coverage):")
    print(table.round(4).to_string(index=False))
    scored = table.dropna(subset=["model_ap"])
    print("\nPer cell line:")
    print(scored.groupby("cell")[["model_ap", "base_ap", "model_mse", "base_mse"]].mean().assign(
        tracks=scored.groupby("cell").size(), better=scored.assign(b=scored.model_ap > scored.base_ap).groupby("cell").b.mean()).round(4).to_string())
    if args.csv:
        table.to_csv(args.csv, index=False)
    summary = []
    for name, part in (("all", scored), ("TF in >= 4 other lines", scored[scored.others >= 4]), ("TF in 2-3 other lines", scored[scored.others < 4])):
        if part.empty:
            continue
        summary.append({"tracks": name, "n": len(part), "MAP model": part.model_ap.mean(), "MAP baseline": part.base_ap.mean(),
                        "MAP ratio": part.model_ap.mean() / part.base_ap.mean(), "better AP on": (part.model_ap > part.base_ap).mean(),
                        "MSE model": part.model_mse.mean(), "MSE baseline": part.base_mse.mean()})
    summary = pd.DataFrame(summary).set_index("tracks")
    print("\nOverall:")
    print(summary.round(4).to_string())
    four = summary.loc["TF in >= 4 other lines", "MAP ratio"] if "TF in >= 4 other lines" in summary.index else float("nan")
    targets = {"MAP >= 1.2x baseline overall": summary.loc["all", "MAP ratio"] >= 1.2,
               "MAP >= 1.3x on TFs in >= 4 other lines": four >= 1.3,
               "better AP on >= 70% of tracks": summary.loc["all", "better AP on"] >= 0.7}
    print("\nIssue targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))
    print("\nTraining:")
    print(pd.DataFrame(training).to_string(index=False))
    print(f"\nTotal: {time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s of this process "
          f"(store build {build:.0f} s wall)")


if __name__ == "__main__":
    main()
