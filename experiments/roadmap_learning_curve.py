"""Held-out error of the five Latin-square Roadmap tracks after every epoch, for model variants.

    python experiments/roadmap_learning_curve.py [--n-bins 800000] [--epochs 8] \
        [--variant "{}"] [--variant "{'n_25bp_factors': 2, 'n_250bp_factors': 8, 'n_5kbp_factors': 8}"]

An analysis tool, not a model-selection procedure: it scores the hidden tracks after each epoch to
show whether *any* stopping point of a configuration would beat the average-activity baseline
(``experiments/roadmap_experiment.py`` is the experiment itself). Each variant is a dict of
``AvocadoConfig`` overrides on the ``small`` preset, trained without its random-entry validation and
without shrinkage; every epoch prints the change of the mean MSE over the five tracks against the
baseline, and how many tracks have a better Pearson r, for the network alone and for its blends
with the baseline (weights 0.3 and 0.5 on the baseline).
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from pathlib import Path

import bench_path  # noqa: F401  (benchmarks/ on sys.path)
import common  # noqa: F401  (the source tree on sys.path)
import numpy as np
import torch
from roadmap_experiment import ROADMAP, average_activity, scores  # noqa: E402

import epitensor as et  # noqa: E402
from epitensor.datasets.roadmap import LATIN_SQUARE  # noqa: E402

BLENDS = (0.0, 0.3, 0.5)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROADMAP) if ROADMAP else None)
    ap.add_argument("--n-bins", type=int, default=800_000, help="train and score on these first bins")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--variant", action="append", help="dict of AvocadoConfig overrides (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.data:
        sys.exit("no Roadmap data: pass --data pointing at a folder of {biosample}.{assay}.pilot.arcsinh.npz files")
    torch.set_num_threads(args.threads)
    ds = et.datasets.roadmap_pilot(Path(tempfile.mkdtemp()) / "r.zarr", path=args.data, mask="latin-square", n_bins=args.n_bins)
    region = f"pilot:0-{args.n_bins * 25}"
    truth = {p: ds.held_out.sel(biosample=p[0], assay=p[1]).values for p in LATIN_SQUARE}
    base = {p: average_activity(ds, *p, region) for p in LATIN_SQUARE}
    base_mse = np.mean([scores(truth[p], base[p])["mse"] for p in LATIN_SQUARE])
    base_r = [scores(truth[p], base[p])["r"] for p in LATIN_SQUARE]
    print(f"Roadmap pilot, {args.n_bins:,} bins; average-activity baseline MSE {base_mse:.4f}", flush=True)
    for text in args.variant or ["{}"]:
        overrides = ast.literal_eval(text)
        options = {"validation_fraction": 0.0, "patience": None, "baseline_weight": 0.0, **overrides}
        model = et.Avocado(ds, preset="small", seed=0, **options)
        print(f"\nsmall + {overrides}", flush=True)
        trained = 0.0
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            model.fit(region=region, epochs=1, progress=False)  # Adam's state carries over between calls
            trained += time.perf_counter() - t0
            preds = {p: model.impute(biosample=p[0], assay=p[1], region=region).values.ravel() for p in LATIN_SQUARE}
            cells = []
            for w in BLENDS:
                s = [scores(truth[p], (1 - w) * preds[p] + w * base[p]) for p in LATIN_SQUARE]
                better = sum(x["r"] > r0 for x, r0 in zip(s, base_r))
                cells.append(f"baseline weight {w}: {np.mean([x['mse'] for x in s]) / base_mse - 1:+.1%}, r better {better}/5")
            print(f"epoch {epoch:>2}  train {trained:5.0f} s  loss {model.history.loss.iloc[-1]:.4f}  " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
