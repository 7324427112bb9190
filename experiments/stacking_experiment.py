"""Stacking on the Roadmap Latin square: the network, the average activity and a cross-assay regressor.

    python experiments/stacking_experiment.py [--n-bins 800000] [--minutes M]

Issue 13, part 3. Three predictions of each of the five hidden Latin-square tracks (b, a), on all
``--n-bins`` bins:

- ``average``: the average activity (:func:`epitensor.baselines.average_activity`);
- ``network``: the default ``et.Avocado(ds).fit()`` imputation with its blend switched off;
- ``cross-assay``: :func:`epitensor.evaluation.cross_assay`, a ChromImpute-style regressor of how
  the track departs from a's average activity, from b's own observed marks (and their departures
  from their averages) around each bin, trained on the other biosamples where a is observed.

The in-script stacks (least squares with an intercept) fit their weights only on the validation
tracks the default fit holds out, from predictions of those tracks that never saw them (the
network of the validation phase, the regressor and the average without them), then apply them to
the hidden tracks. The ``stacked_baseline`` rows are the package's
:func:`epitensor.evaluation.stacked_baseline`: on the same four validation tracks with pooled
weights (it must equal the in-script "stacked average + cross-assay"), and on every training track
predicted without itself (leave-one-out), pooled or per biosample (the package's default). The
pooled leave-one-out row applies the default run's ``attrs["pooled_weights"]`` to the same average
activity and regressor predictions (what ``weights="pooled"`` returns, without running its 25
regressors a second time).

Notes
-----
Measured 2026-12-02 on a 2-core AMD EPYC (AVX2), all 800,000 bins, ``n_train`` 150,000
(``python experiments/stacking_experiment.py``). MSE over the five hidden tracks, relative to the
average activity (0.1973), and the tracks with a better Pearson r than it:

===========================================================  ===========  ========
method                                                       x average    better r
===========================================================  ===========  ========
default ``et.Avocado(ds).fit()`` (auto)                      0.963        5 of 5
network alone                                                1.138        1
cross-assay alone                                            0.919        3
mean of average + cross-assay                                0.885        5
stacked network + average                                    0.973        3
stacked average + cross-assay (4 validation tracks)          0.880        5
stacked network + average + cross-assay                      0.883        5
``stacked_baseline``, 4 validation tracks, pooled            0.880        5
``stacked_baseline``, leave-one-out, pooled                  0.907        5
``stacked_baseline`` default (leave-one-out, per biosample)  **0.832**    **5**
===========================================================  ===========  ========

Which variant to keep was decided on the training tracks, never on the five hidden ones: with
each training track predicted without itself, a weight scheme was scored on each training track
with weights fitted on the *other* training tracks (all of them, those of its biosample, or those
of its assay). Per biosample won (0.828 of the average activity, pooled 0.866, per assay 0.899),
and the regressor on departures from the average won over the one on raw values (0.919 vs 0.932
of the average activity over the 20 training tracks; 0.828 vs 0.832 per biosample).

CPU: the validation-phase fit 80 s, the default fit 136 s, the default ``stacked_baseline`` 653 s
alone on the idle machine (25 regressors) and 1,122 s in this run, which shared the two cores
with another job. On 2026-12-03, after the regressor built its training rows only at the drawn
positions and read the store's chunk files, the default ``stacked_baseline`` alone on a lazy
store selection took 578 CPU s (308 s wall) and gave the same 0.832 and 5 of 5.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import bench_path  # noqa: F401
import numpy as np
import pandas as pd
import torch
from common import ROADMAP, machine

import epitensor as et
from epitensor.datasets.roadmap import LATIN_SQUARE
from epitensor.evaluation import cross_assay, stacked_baseline


def network_only(model, region, pairs) -> dict:
    """The network's imputation of ``pairs`` without the average-activity blend."""
    weight, model.config.baseline_weight = model.config.baseline_weight, 0.0
    try:
        imp = model.impute(region=region)
    finally:
        model.config.baseline_weight = weight
    return {p: imp.sel(biosample=p[0], assay=p[1]).values for p in pairs}


def scores(truth, pred) -> dict:
    return {"mse": float(np.mean((truth - pred) ** 2)), "r": float(np.corrcoef(truth, pred)[0, 1])}


def least_squares(parts: dict, truth: dict, pairs) -> np.ndarray:
    X = np.concatenate([np.stack([parts[k][p] for k in parts] + [np.ones_like(truth[p])], 1) for p in pairs])
    y = np.concatenate([truth[p] for p in pairs])
    return np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0]


def blend(weights, parts, p):
    return sum(w * parts[k][p] for w, k in zip(weights, parts)) + weights[-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROADMAP) if ROADMAP else None)
    ap.add_argument("--n-bins", type=int, default=800_000)
    ap.add_argument("--minutes", type=float, default=None, help="optional wall-clock budget per Avocado fit")
    ap.add_argument("--n-train", type=int, default=150_000, help="positions per donor biosample of the regressor")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    store = Path(tempfile.mkdtemp(prefix="stacking-")) / "roadmap.zarr"
    ds = et.datasets.roadmap_pilot(store, path=args.data, mask="latin-square", n_bins=args.n_bins)
    region = f"pilot:0-{args.n_bins * 25}"
    print(f"Roadmap Latin square, {args.n_bins:,} bins; torch {torch.__version__}, {args.threads} threads; {machine()}",
          flush=True)
    test = list(LATIN_SQUARE)
    truth = {p: ds.held_out.sel(biosample=p[0], assay=p[1]).epi.region(region).values for p in test}
    limit = None if args.minutes is None else args.minutes * 60
    cpu = {}

    t = time.process_time()
    val_model = et.Avocado(ds)  # the validation phase of the default fit: its held-out tracks unseen
    val_model.fit(region=region, refit=False, progress=False, time_limit=limit)
    val = list(val_model.validation_tracks)
    cpu["Avocado validation phase"] = time.process_time() - t
    t = time.process_time()
    model = et.Avocado(ds)
    model.fit(region=region, progress=False, time_limit=limit)
    cpu["default fit (auto)"] = time.process_time() - t
    print(f"validation tracks {val}; {model.config.auto_choice}", flush=True)
    default_imp = model.impute(region=region)

    signal = ds.signal.epi.region(region).load()
    for p in val:
        truth[p] = signal.sel(biosample=p[0], assay=p[1]).values
    without_val = signal.observed.copy()
    for b, a in val:
        without_val.loc[{"biosample": b, "assay": a}] = False
    parts = {"network": {}, "average": {}, "cross-assay": {}}
    parts["network"].update(network_only(model, region, test))
    parts["network"].update(network_only(val_model, region, val))
    for pairs, train in ((test, None), (val, without_val)):
        average = et.baselines.average_activity(signal, train)
        t = time.process_time()
        regressed = cross_assay(signal, pairs, train, n_train=args.n_train)
        cpu[f"cross_assay, {len(pairs)} tracks"] = time.process_time() - t
        for b, a in pairs:
            parts["average"][(b, a)] = average.sel(biosample=b, assay=a).values
            parts["cross-assay"][(b, a)] = regressed.sel(biosample=b, assay=a).values
    package = {}
    for name, options in (("stacked_baseline, 4 validation tracks, pooled", {"validation_tracks": val, "weights": "pooled"}),
                          ("stacked_baseline (default: leave-one-out, per biosample)", {})):
        t = time.process_time()
        package[name] = stacked_baseline(signal, test, n_train=args.n_train, **options)
        cpu[name] = time.process_time() - t
    pooled = package["stacked_baseline (default: leave-one-out, per biosample)"].attrs["pooled_weights"]
    loo_pooled = {p: pooled["average_activity"] * parts["average"][p] + pooled["cross_assay"] * parts["cross-assay"][p]
                  + pooled["intercept"] for p in test}  # the default's regressors, weighted as weights="pooled" would

    preds = {"average activity": parts["average"],
             "default fit (auto)": {p: default_imp.sel(biosample=p[0], assay=p[1]).values for p in test},
             "network alone": parts["network"], "cross-assay alone": parts["cross-assay"],
             "mean of average + cross-assay": {p: 0.5 * (parts["average"][p] + parts["cross-assay"][p]) for p in test},
             "mean of all three": {p: sum(parts[k][p] for k in parts) / 3 for p in test}}
    for names in (("network", "average"), ("average", "cross-assay"), ("network", "average", "cross-assay")):
        sub = {k: parts[k] for k in names}
        w = least_squares(sub, truth, val)
        label = " + ".join(names)
        preds[f"stacked {label}"] = {p: blend(w, sub, p) for p in test}
        print(f"weights of stacked {label} (last: intercept): {np.round(w, 3).tolist()}")
    preds["stacked_baseline, leave-one-out, pooled"] = loo_pooled
    for name, out in package.items():
        preds[name] = {p: out.sel(biosample=p[0], assay=p[1]).values for p in test}
        print(f"{name} weights: " + "; ".join(f"{b} {np.round(list(w.values()), 3).tolist()}"
                                                for b, w in out.attrs["stack_weights"].items()))

    rows = [{"method": m, "track": f"{b}.{a}", **scores(truth[(b, a)], pr[(b, a)])} for m, pr in preds.items()
            for b, a in test]
    table = pd.DataFrame(rows)
    base = table[table.method == "average activity"].set_index("track")
    summary = table.groupby("method", sort=False).agg(mse=("mse", "mean"), r=("r", "mean"))
    summary["x average"] = summary.mse / summary.loc["average activity", "mse"]
    summary["better r"] = [int((table[table.method == m].set_index("track").r > base.r).sum()) for m in summary.index]
    pd.set_option("display.width", 200)
    print("\nPer track MSE:")
    print(table.pivot(index="method", columns="track", values="mse").loc[list(preds)].round(4).to_string())
    print("\nOver the five hidden tracks:")
    print(summary.round(4).to_string())
    print("\nCPU seconds:", ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()), f"(load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
