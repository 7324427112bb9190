"""Add a fifth Roadmap biosample to a trained model: freeze vs fine-tune vs retraining (paper Table 2).

    python experiments/extend_experiment.py [--train-bins 100000] [--epochs 30] [--add-epochs 10]
        [--track H3K4me3] [--preset small] [--threads 1]

The store is the Roadmap sample of the Avocado repository (5 biosamples x 5 histone marks, from
../shared/data/roadmap_pilot), every track observed. A model is trained on the 20 tracks of E003,
E017, E116 and E117 over the first ``--train-bins`` bins. Then E065 (aorta) is added from ONE of its
tracks (``--track``, default H3K4me3) in three ways:

* freeze: only E065's biosample row trains (``model.add_biosamples(..., mode="freeze")``);
* fine-tune: E065's row is appended and every parameter trains on the 20 old tracks + the new one;
* retrain: a new model trained from scratch on all 21 tracks, as long as the first one.

Each imputes E065's four other tracks over the same bins (never seen; the positions were). Printed:
MSE per track and overall for each mode and for the average-activity baseline (per-bin mean of the
assay over the four training biosamples), the wall time of each mode (measured in this run, so
comparable with each other), and a check that freeze left the old imputations bit-identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bench_path  # noqa: F401  (benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import torch
from common import ROADMAP, machine  # (and the source tree on sys.path)

import epitensor as et  # noqa: E402
from epitensor.datasets.roadmap import ASSAYS  # noqa: E402

OLD = ["E003", "E017", "E116", "E117"]
NEW = "E065"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROADMAP) if ROADMAP else None)
    ap.add_argument("--train-bins", type=int, default=100_000, help="train and evaluate on the first bins")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the first model and of retraining")
    ap.add_argument("--add-epochs", type=int, default=10, help="epochs of freeze and of fine-tune")
    ap.add_argument("--track", default="H3K4me3", help="the one E065 track the new biosample is fitted on")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.data:
        sys.exit("no Roadmap data: pass --data pointing at a folder of {biosample}.{assay}.pilot.arcsinh.npz files")
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="extend-exp-"))
    ds = et.datasets.roadmap_pilot(work / "roadmap.zarr", path=args.data, n_bins=args.train_bins)
    region = f"pilot:0-{args.train_bins * 25}"
    others = [a for a in ASSAYS if a != args.track]
    print(f"Roadmap pilot, first {args.train_bins:,} bins ({region}); train on {', '.join(OLD)} x {len(ASSAYS)} marks "
          f"(all observed); add {NEW} from {NEW}.{args.track}; evaluate on {NEW}'s {', '.join(others)}. preset "
          f"{args.preset!r}, {args.epochs} epochs (first model, retrain), {args.add_epochs} epochs (freeze, fine-tune); "
          f"torch {torch.__version__}, {args.threads} thread(s), {machine()}", flush=True)

    truth = ds.signal.sel(biosample=NEW).epi.region(region)
    truth = {a: truth.sel(assay=a).values for a in others}
    baseline = ds.signal.sel(biosample=OLD).epi.region(region).mean("biosample")
    preds = {"average activity": {a: baseline.sel(assay=a).values for a in others}}
    seconds = {}

    t = time.perf_counter()
    model = et.Avocado(ds, preset=args.preset, seed=args.seed, biosamples=OLD)
    model.fit(region=region, epochs=args.epochs, progress=False)
    seconds["train on 4 biosamples"] = time.perf_counter() - t
    model.save(work / "model")
    old_imputed = model.impute(region=region).values
    print(f"  first model: {len(model.history)} epochs in {seconds['train on 4 biosamples']:.0f} s", flush=True)

    identical = None
    for mode in ("freeze", "fine-tune"):
        m = et.Avocado.load(work / "model", ds)
        t = time.perf_counter()
        hist = m.add_biosamples(ds, tracks=[(NEW, args.track)], mode=mode, epochs=args.add_epochs, progress=False)
        seconds[mode] = time.perf_counter() - t
        imp = m.impute(NEW, others, region=region)
        preds[mode] = {a: imp.sel(assay=a).values[0] for a in others}
        if mode == "freeze":
            identical = bool(np.array_equal(m.impute(OLD, region=region).values, old_imputed))
        print(f"  {mode}: {len(hist)} epochs in {seconds[mode]:.1f} s", flush=True)

    t = time.perf_counter()
    tracks = [(b, a) for b in OLD for a in ASSAYS] + [(NEW, args.track)]
    retrained = et.Avocado(ds, preset=args.preset, seed=args.seed, biosamples=[*OLD, NEW])
    retrained.fit(region=region, epochs=args.epochs, tracks=tracks, progress=False)
    seconds["retrain"] = time.perf_counter() - t
    imp = retrained.impute(NEW, others, region=region)
    preds["retrain"] = {a: imp.sel(assay=a).values[0] for a in others}
    print(f"  retrain: {len(retrained.history)} epochs in {seconds['retrain']:.0f} s", flush=True)

    rows = [{"mode": mode, "track": f"{NEW}.{a}", "mse": float(np.mean((truth[a] - p[a]) ** 2))}
            for mode, p in preds.items() for a in others]
    table = pd.DataFrame(rows).pivot(index="track", columns="mode", values="mse")
    table = table[["average activity", "freeze", "fine-tune", "retrain"]]
    table.loc["mean"] = table.mean()
    pd.set_option("display.width", 160)
    print(f"\nMSE of {NEW}'s imputed tracks (arcsinh scale), fitted from {NEW}.{args.track} only:")
    print(table.round(4).to_string())
    print("\nMean MSE relative to the average-activity baseline:")
    print((table.loc["mean"] / table.loc["mean", "average activity"] - 1).map("{:+.1%}".format).to_string())
    print("\nWall time (this run):")
    ref = seconds["fine-tune"]
    print(pd.DataFrame({"seconds": pd.Series(seconds).round(1),
                        "vs fine-tune": (pd.Series(seconds) / ref).map("{:.2f}x".format)}).to_string())
    print(f"\nFreeze left the 4 old biosamples' imputations bit-identical: {identical}")


if __name__ == "__main__":
    main()
