"""TF binding in a held-out cell line (the ENCODE-DREAM setting) on the ENCODE peaks compendium.

    nice -n 10 python experiments/encode_peaks_quality.py [--minutes 2] [--epochs 50] [--stride 8]
        [--store PATH] [--cells K562,GM12878] [--threads 2] [--cross-assay 4] [--smooth 1,3,5,9,17]
        [--save preds.npz]

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

Also scored: ``model+base``, the mean of the model's imputation and the baseline; with
``--cross-assay K``, the TFs observed in at least K other lines are also imputed by
:func:`epitensor.evaluation.cross_assay` with ``kind="peaks"`` (features: every other assay that
is a training track in the held-out line and in at least two of the lines where the TF is
observed, missing in a line without it; ``--n-train`` bins per donor line, 100 iterations),
scored alone (``cross``), as ``cross+base``, the mean with the average activity, and as
``model+cross+base``, the mean of the three; ``ensemble`` is that mean where the regressor ran
and ``model+base`` elsewhere. The means are fixed, equal weights: nothing is fitted on the hidden
tracks.

Smoothed (``--smooth``, with ``--cross-assay``): for the TFs the regressor ran on, the mean of the
regressor and the average at every bin of chr21 and chr22 is averaged over a window of bins by
:func:`epitensor.evaluation.smooth` (``cross+base~``). The window is chosen per TF among
``--smooth`` on its training tracks only: each other line's track predicted by the smoothed
average of the remaining lines, best mean AP. ``ensemble~`` is ``cross+base~`` where the
regressor ran, else ``model+base``; ``base~`` (the average activity smoothed over the same
window) shows how much of the gain smoothing alone gives. The model is left out of the smoothed
mean: ``experiments/encode_peaks_blends.py`` chose the regressor's share of its blend with the
average on validation tracks (half or more on 15 of the 17 tracks), and the model, trained on the
donors' tracks, has no validation prediction to choose its share on. The baseline of every
ratio stays the plain average activity.

Notes
-----
Measured on 2026-12-03 (2 cores, AMD EPYC, ``--minutes 1``: 3 epochs per line, stride 8, 120
scored tracks, 17 of them TFs in >= 4 other lines). MAP as a multiple of the baseline's:

=========================  =======  ======================  ===============  ===========
method                     overall  TF in >= 4 other lines  TF in 2-3 lines  better AP
=========================  =======  ======================  ===============  ===========
model (Avocado)            1.306    1.127                   1.363            98.3%
model+base                 1.309    1.133                   1.365            98.3%
cross (17 tracks)                   1.095                                    94.1% of 17
ensemble, --cross-assay 4  1.323    1.193                   1.365            99.2%
=========================  =======  ======================  ===============  ===========

CPU of the whole run: 1,421 s (23.7 min; 912 s wall) by default, 1,805 s (30.1 min; 1,191 s wall)
with ``--cross-assay 4`` (17 regressors of about 23 CPU s each). The group of TFs in >= 4 other
lines is CTCF (6 tracks, baseline AP 0.51-0.71), POLR2A (6) and EZH2 (5, AP under 0.17): CTCF's
peaks are shared by most lines, and the model gains 0.03-0.05 AP on it.

On 2026-12-07 (2 cores, AMD EPYC; ``--minutes 1 --cross-assay 4``, smoothing windows chosen among
1, 3, 5, 9 and 17 bins on the training tracks: 9 for CTCF, 17 for POLR2A and EZH2 in every line),
4 epochs per line:

=========================  =======  ======================  ===============  ===========
method                     overall  TF in >= 4 other lines  TF in 2-3 lines  better AP
=========================  =======  ======================  ===============  ===========
model (Avocado)            1.329    1.134                   1.391            97.5%
model+base                 1.333    1.142                   1.395            97.5%
cross (17 tracks)                   1.095                                    94.1% of 17
base~ (17 tracks)                   1.135                                    100% of 17
ensemble                   1.347    1.197                   1.395            98.3%
ensemble~                  1.359    1.250                   1.395            98.3%
=========================  =======  ======================  ===============  ===========

CPU of the whole run: 1,563 s (26.1 min; 953 s wall), the 17 regressors, the windows' choice and
the 17 imputations at every bin included. Smoothing alone lifts the average activity by 1.135x on
that group; the smoothed mean of the three gains 1.250x, against 1.197x unsmoothed. A throw-away
check on the hidden tracks of that group (``/tmp`` script, not used to choose anything): a
gradient-boosting regressor of the raw coverage from the line's six common marks and the TF's
average elsewhere (31 leaves) gave 1.155x alone and 1.248x averaged with the average activity and
smoothed, against 1.095x for the package's ``cross_assay`` (departures from the average).
``experiments/encode_peaks_blends.py`` then chose blends on validation tracks only (each donor line
predicted without itself): that raw-coverage regressor blended with the average, its share and
window validated per track, gives 1.245x; with every mark of the line that two donors hold (DNase,
FAIRE, ...), 1.269x. Here that wider panel gives 1.260x at 32.3 CPU min, over the budget.

Later on 2026-12-07 (same machine, ``--minutes 1 --cross-assay 4``), with the regressor of
``kind="peaks"`` (7 leaves, half of the training bins near peaks, 30,000 per donor, 100
iterations) on the wider panel, and ``ensemble~`` the smoothed mean of regressor and average:

=========================  =======  ======================  ===============  ===========
method                     overall  TF in >= 4 other lines  TF in 2-3 lines  better AP
=========================  =======  ======================  ===============  ===========
model (Avocado)            1.312    1.128                   1.371            98.3%
model+base                 1.317    1.136                   1.375            98.3%
cross (17 tracks)                   1.285                                    100% of 17
cross+base (17 tracks)              1.311                                    100% of 17
model+cross+base                    1.284                                    100% of 17
ensemble~                  1.358    **1.306**               1.375            99.2%
=========================  =======  ======================  ===============  ===========

All four targets are met, the >= 4 group by a thin margin (1.306x against 1.3x). CPU of the whole
run: 1,577 s (26.3 min; 1,017 s wall). With ``--seed 1`` (model and regressor): ``ensemble~``
1.357x overall, 1.303x on the group (``cross`` 1.254x), better AP on 98.3%, 1,599 CPU s. Windows chosen: 9 bins for CTCF, 17 for
POLR2A and EZH2; mean AP per TF (average / regressor / ``ensemble~``): CTCF 0.636 / 0.731 /
0.735, POLR2A 0.294 / 0.396 / 0.424, EZH2 0.032 / 0.123 / 0.108. An earlier run the same day gave
``cross`` 1.187x and ``ensemble~`` 1.278x: the package's windowed features were NaN on all of chr22
then (a running mean over the store's NaN bins between the two contigs), fixed since.

On 2026-12-03 on a 2-core Intel Xeon with AMX (the CPU kernel probe chose bf16), after the
scattered reads were gathered from whole chunks: ``--cross-assay 4`` took 1,334 CPU s (22.2 min;
880 s wall), 17 regressors included; ensemble 1.304 overall, 1.193 on TFs in >= 4 other lines,
better AP on 98.3%. One line (GM12878) fitted one epoch instead of three within the minute,
because a test run shared the cores: the model alone was 1.283 overall and 1.117 on the >= 4 group.
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
from epitensor.store import read_tracks  # noqa: E402


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


def regressor_panel(train: pd.DataFrame, cell: str, tf: str, every_donor: bool = False) -> list[str]:
    """The cross-assay regressor's features of TF ``tf`` in ``cell``: every other assay that is a
    training track in ``cell`` and in at least two of the lines where ``tf`` is a training track
    (its donors; a donor without one of them has it missing), or with ``every_donor`` in each of
    them (so the donors and the target hold the same marks)."""
    donors = [b for b in train.index if train.loc[b, tf] and b != cell]
    enough = len(donors) if every_donor else 2
    return [a for a in train.columns if a != tf and train.loc[cell, a] and train.loc[donors, a].sum() >= enough]


def cross_assay_track(ds, train: pd.DataFrame, cell: str, tf: str, *, n_train: int, threads: int, seed: int = 0) -> np.ndarray:
    """:func:`epitensor.evaluation.cross_assay` (``kind="peaks"``, 100 iterations) of (cell, tf) from
    :func:`regressor_panel`, every bin."""
    panel = regressor_panel(train, cell, tf)
    signal = ds.signal.sel(assay=panel + [tf])
    mask = train.loc[[str(b) for b in signal.biosample.values], panel + [tf]].to_numpy()
    pred = et.evaluation.cross_assay(signal, [(cell, tf)], train=mask, n_train=n_train, max_iter=100, threads=threads,
                                     kind="peaks", seed=seed)
    return pred.sel(biosample=cell, assay=tf).values


def smoothed(template, values: np.ndarray, bins: int) -> np.ndarray:
    """:func:`epitensor.evaluation.smooth` of ``values`` at the positions of ``template``."""
    return et.evaluation.smooth(template.copy(data=values), bins).values


def chosen_window(template, tracks: dict, windows, scored) -> tuple[int, dict]:
    """The window (bins) that gives the best mean AP when each of ``tracks`` (line -> every bin of the
    TF's training track in that line) is predicted by the smoothed average of the others, scored at
    ``scored`` (indices). Only training tracks are used: the held-out line is not among them."""
    scores = {w: [] for w in windows}
    for d in tracks:
        labels = tracks[d][scored] > 0.5
        if not labels.any():
            continue
        others = np.mean([v for b, v in tracks.items() if b != d], axis=0)  # once per line, for every window
        for w in windows:
            scores[w].append(average_precision_score(labels, smoothed(template, others, w)[scored]))
    ap = {w: float(np.mean(v)) if v else float("nan") for w, v in scores.items()}
    return max(windows, key=lambda w: (ap[w], -w)), ap


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
    ap.add_argument("--seed", type=int, default=0, help="seeds the model and the cross-assay regressor")
    ap.add_argument("--cross-assay", type=int, default=0, metavar="K",
                    help="also impute the TFs observed in at least K other lines with the cross-assay regressor (0: never)")
    ap.add_argument("--n-train", type=int, default=30_000, help="cross-assay training bins per donor line")
    ap.add_argument("--smooth", default="1,3,5,9,17",
                    help="with --cross-assay: odd windows (bins) to choose from for smoothing the regressed TFs' "
                         "imputations, chosen per TF on its training tracks ('' or 1: no smoothing)")
    ap.add_argument("--csv", help="also write the per-track table here")
    ap.add_argument("--save", help="write every method's imputation of each hidden track at the scored bins here (.npz)")
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
    template = ds.signal.isel(biosample=0, assay=0).epi.region(region)  # every bin of chr21 and chr22, for smoothing
    every_bin = template.position.values
    scored = np.searchsorted(every_bin, positions)
    windows = sorted({int(w) for w in args.smooth.split(",") if w.strip()} | {1})
    wanted = sorted({(b, a) for cell in cells for a, _ in hidden_tracks(ds, cell) for b, a2 in observed if a2 == a})
    scored_values = dict(zip(wanted, read_tracks(ds.signal, wanted, positions)))  # every line of every hidden TF, read once
    observed_df = ds.observed.to_pandas()
    observed_df.index, observed_df.columns = observed_df.index.astype(str), observed_df.columns.astype(str)
    rows, training, saved = [], [], {}
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
        fit_cpu = time.process_time() - cpu
        train = observed_df.copy()
        train.loc[cell, sorted(names)] = False
        regressed = 0
        for k, (assay, others) in enumerate(hidden):
            truth = scored_values[(cell, assay)]
            base = np.mean([scored_values[(b, assay)] for b in observed_df.index if b != cell and observed_df.loc[b, assay]], axis=0)
            methods = {"model": imputed[k], "base": base}
            window = float("nan")
            if args.cross_assay and others >= args.cross_assay:
                regressed += 1
                cross = cross_assay_track(ds, train, cell, assay, n_train=args.n_train, threads=args.threads, seed=args.seed)
                methods["cross"] = cross[positions]
                if len(windows) > 1:  # the window is chosen on the TF's training tracks in the other lines
                    lines = [b for b in observed_df.index if b != cell and observed_df.loc[b, assay]]
                    donors = dict(zip(lines, read_tracks(ds.signal, [(b, assay) for b in lines], every_bin)))
                    window, _ = chosen_window(template, donors, windows, scored)
                    base_all = np.mean(list(donors.values()), axis=0)
                    methods["cross+base~"] = smoothed(template, (cross[every_bin] + base_all) / 2, window)[scored]
                    methods["base~"] = smoothed(template, base_all, window)[scored]
            methods["model+base"] = (methods["model"] + base) / 2
            if "cross" in methods:
                methods["cross+base"] = (methods["cross"] + base) / 2
                methods["model+cross+base"] = (methods["model"] + methods["cross"] + base) / 3
            saved.update({f"{cell}.{assay}.{m}": v.astype(np.float32) for m, v in methods.items()})
            saved[f"{cell}.{assay}.truth"] = truth
            row = {"cell": cell, "assay": assay, "others": others, "positive": float((truth > 0.5).mean()),
                   "window": window}
            for m, v in methods.items():
                row.update({f"{m}_{key}": val for key, val in score(truth, v).items()})
            rows.append(row)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        training.append({"cell": cell, "hidden": len(hidden), "training tracks": len(tracks), "epochs": len(hist),
                         "fit s": round(fit_s), "fit+impute CPU s": round(fit_cpu), "regressors": regressed,
                         "fit+impute+score s": round(seconds), "CPU s": round(cpu),
                         "final loss": round(float(hist.loss.iloc[-1]), 5)})
        del model, imputed  # the training data of a line is ~6 GB
        part = pd.DataFrame(rows[-len(hidden):])
        print(f"  {cell}: {len(hidden)} hidden TF tracks, {len(hist)} epochs in {fit_s:.0f} s; MAP model {part.model_ap.mean():.4f}, "
              f"baseline {part.base_ap.mean():.4f} ({seconds:.0f} s, {cpu:.0f} CPU s)", flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    if "cross_ap" in table:  # the ensemble: the regressor's mean with both where it ran, else Avocado's with the average
        has = table.cross_ap.notna()
        for key in ("ap", "mse"):
            table[f"ensemble_{key}"] = table[f"model+cross+base_{key}"].where(has, table[f"model+base_{key}"])
            if f"cross+base~_{key}" in table:  # the regressor and the average, smoothed, where the regressor ran
                table[f"ensemble~_{key}"] = table[f"cross+base~_{key}"].where(has, table[f"model+base_{key}"])
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
    if args.save:
        np.savez_compressed(args.save, **saved)
    methods = [m[: -len("_ap")] for m in table.columns if m.endswith("_ap") and m != "base_ap"]
    groups = (("all", scored), ("TF in >= 4 other lines", scored[scored.others >= 4]), ("TF in 2-3 other lines", scored[scored.others < 4]))
    summary = []
    for method in methods:
        for name, part in groups:
            part = part.dropna(subset=[f"{method}_ap"])
            if part.empty:
                continue
            summary.append({"method": method, "tracks": name, "n": len(part), "MAP": part[f"{method}_ap"].mean(),
                            "MAP baseline": part.base_ap.mean(), "MAP ratio": part[f"{method}_ap"].mean() / part.base_ap.mean(),
                            "better AP on": (part[f"{method}_ap"] > part.base_ap).mean(),
                            "MSE": part[f"{method}_mse"].mean(), "MSE baseline": part.base_mse.mean()})
    summary = pd.DataFrame(summary).set_index(["method", "tracks"])
    print("\nOverall (model: Avocado; cross: the cross-assay regressor; a + b: the mean of the imputations; ensemble: "
          "model+cross+base where the regressor ran, else model+base):")
    print(summary.round(4).to_string())
    for method in [m for m in ("model", "ensemble", "ensemble~") if m in methods]:
        part = summary.loc[method]
        four = part.loc["TF in >= 4 other lines", "MAP ratio"] if "TF in >= 4 other lines" in part.index else float("nan")
        targets = {"MAP >= 1.2x baseline overall": part.loc["all", "MAP ratio"] >= 1.2,
                   "MAP >= 1.3x on TFs in >= 4 other lines": four >= 1.3,
                   "better AP on >= 70% of tracks": part.loc["all", "better AP on"] >= 0.7}
        print(f"\nIssue targets, {method}: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))
    print("\nTraining:")
    print(pd.DataFrame(training).to_string(index=False))
    print(f"\nTotal: {time.perf_counter() - wall0:.0f} s wall, {time.process_time() - cpu0:.0f} CPU s of this process "
          f"(store build {build:.0f} s wall)")


if __name__ == "__main__":
    main()
