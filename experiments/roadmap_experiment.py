"""Impute five held-out Roadmap tracks and compare with the average-activity baseline.

    python experiments/roadmap_experiment.py [--n-bins 800000] [--train-bins 200000]
        [--config paper:paper,n_nodes=2048] [--config small:small] [--minutes 10]

The store is the Roadmap sample of the Avocado repository (5 biosamples x 5 histone marks, from
../shared/data/roadmap_pilot) with the Latin square of the Avocado tutorial held out: E003.H3K4me3,
E017.H3K27me3, E065.H3K36me3, E116.H3K9me3, E117.H3K4me1 (one per biosample and per assay). Each
configuration trains on the other 20 tracks over the first ``--train-bins`` bins for at most
``--minutes`` of wall-clock time, (or ``--epochs``), then imputes the five held-out tracks over the same bins
(the tutorial's protocol: the held-out tracks were never seen; the positions were).

Printed per track: MSE, Pearson r, mse1obs (MSE on the top 1% bins by observed value) and mse1imp
(top 1% by imputed value) on the arcsinh scale, for the model and for the average-activity baseline
(per-bin mean of the assay over the four training biosamples), then the overall MSE, the training
time and the configuration.
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
from epitensor.datasets.roadmap import LATIN_SQUARE  # noqa: E402


def top1_mse(truth, pred, by):
    """MSE on the bins whose ``by`` value is in the top 1% (threshold at rank int(0.01 N))."""
    k = max(1, int(0.01 * len(by)))
    thr = np.sort(by)[::-1][k - 1]
    keep = by >= thr
    return float(np.mean((truth[keep] - pred[keep]) ** 2))


def scores(truth, pred) -> dict:
    return {"mse": float(np.mean((truth - pred) ** 2)), "r": float(np.corrcoef(truth, pred)[0, 1]),
            "mse1obs": top1_mse(truth, pred, truth), "mse1imp": top1_mse(truth, pred, pred)}


def average_activity(ds, biosample, assay, region):
    """Per-bin mean of ``assay`` over the biosamples where it is observed (the baseline)."""
    obs = ds.observed.sel(assay=assay).values
    others = ds.signal.sel(assay=assay).isel(biosample=np.flatnonzero(obs)).epi.region(region)
    return others.mean("biosample").values


def parse_config(text: str) -> tuple[str, str, dict]:
    """``name:preset,key=value,...`` -> (name, preset, options)."""
    name, _, rest = text.partition(":")
    parts = [p for p in rest.split(",") if p]
    preset = parts[0] if parts and "=" not in parts[0] else "paper"
    options = {}
    for p in parts[1:] if parts and "=" not in parts[0] else parts:
        k, v = p.split("=")
        options[k] = None if v == "None" else (v == "True") if v in ("True", "False") else (int(v) if v.lstrip("-").isdigit() else float(v))
    return name, preset, options


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROADMAP) if ROADMAP else None)
    ap.add_argument("--n-bins", type=int, default=800_000, help="bins of the store")
    ap.add_argument("--train-bins", type=int, default=200_000, help="train and evaluate on the first bins")
    ap.add_argument("--config", action="append", help="name:preset,key=value,... (repeatable)")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget per configuration")
    ap.add_argument("--epochs", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blend", action="store_true", help="also score the mean of each model and the baseline")
    ap.add_argument("--members", type=int, default=1, help="train this many models (seeds seed, seed+1, ...) per "
                    "configuration within its budget and average their imputations")
    args = ap.parse_args(argv)
    if not args.data:
        sys.exit("no Roadmap data: pass --data pointing at a folder of {biosample}.{assay}.pilot.arcsinh.npz files")
    torch.set_num_threads(args.threads)
    configs = [parse_config(c) for c in (args.config or ["small:small"])]
    store = Path(tempfile.mkdtemp(prefix="roadmap-exp-")) / "roadmap.zarr"
    ds = et.datasets.roadmap_pilot(store, path=args.data, mask="latin-square", n_bins=args.n_bins)
    region = f"pilot:0-{args.train_bins * 25}"
    print(f"Roadmap pilot, {args.n_bins:,} bins; train and evaluate on {region} ({args.train_bins:,} bins); "
          f"held out: {', '.join(f'{b}.{a}' for b, a in LATIN_SQUARE)}; budget {args.minutes} min per config; "
          f"torch {torch.__version__}, {args.threads} threads, {machine()}")
    truth = {p: ds.held_out.sel(biosample=p[0], assay=p[1]).epi.region(region).values for p in LATIN_SQUARE}
    base = {p: average_activity(ds, *p, region) for p in LATIN_SQUARE}
    rows = [{"model": "average activity", "track": f"{b}.{a}", **scores(truth[(b, a)], base[(b, a)])} for b, a in LATIN_SQUARE]
    summary = []
    for name, preset, options in configs:
        t, cpu = time.perf_counter(), time.process_time()
        imps, alones, hists = [], [], []
        for member in range(args.members):
            model = et.Avocado(ds, preset=preset, seed=args.seed + member, **options)
            hists.append(model.fit(region=region, epochs=args.epochs, time_limit=args.minutes * 60 / args.members, progress=False))
            imps.append(model.impute(region=region))
            if model.config.baseline_weight > 0:  # also score the network alone (same weights)
                w, model.config.baseline_weight = model.config.baseline_weight, 0.0
                alones.append(model.impute(region=region))
                model.config.baseline_weight = w
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        imp, hist = sum(imps) / len(imps), hists[-1]
        if alones:
            alone = sum(alones) / len(alones)
            for b, a in LATIN_SQUARE:
                rows.append({"model": f"{name} (network only)", "track": f"{b}.{a}",
                             **scores(truth[(b, a)], alone.sel(biosample=b, assay=a).values)})
        for b, a in LATIN_SQUARE:
            pred = imp.sel(biosample=b, assay=a).values
            rows.append({"model": name, "track": f"{b}.{a}", **scores(truth[(b, a)], pred)})
            if args.blend:
                rows.append({"model": f"{name}+avg", "track": f"{b}.{a}", **scores(truth[(b, a)], 0.5 * (pred + base[(b, a)]))})
        last = hist.iloc[-1]
        summary.append({"model": name, "preset": preset, "options": options, "members": args.members, "epochs": len(hist), "seconds": round(seconds), "cpu_seconds": round(cpu),
                        "train_loss": round(float(last.loss), 4),
                        "val_mse": round(float(hist.val_mse.min()), 4) if "val_mse" in hist else None})
        print(f"  {name}: {len(hist)} epochs in {seconds:.0f} s ({cpu:.0f} CPU s), final training loss {last.loss:.4f}", flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print("\nPer track (arcsinh scale):")
    print(table.pivot(index="track", columns="model", values=["mse", "r"]).round(4).to_string())
    print(table.pivot(index="track", columns="model", values=["mse1obs", "mse1imp"]).round(4).to_string())
    overall = table.groupby("model")[["mse", "r", "mse1obs", "mse1imp"]].mean()
    base_mse = overall.loc["average activity", "mse"]
    overall["mse vs baseline"] = (overall["mse"] / base_mse - 1).map("{:+.1%}".format)
    r_base = table[table.model == "average activity"].set_index("track").r
    overall["tracks with better r"] = [int((table[table.model == m].set_index("track").r > r_base).sum()) for m in overall.index]
    print("\nOverall (mean over the five tracks):")
    print(overall.round(4).to_string())
    print("\nTraining:")
    print(pd.DataFrame(summary).to_string(index=False))


if __name__ == "__main__":
    main()
