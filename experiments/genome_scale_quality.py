"""Does stage 2 extend a model to positions it never saw? Held-out tracks vs the average-activity baseline.

    python experiments/genome_scale_quality.py [--epochs 30] [--synthetic-epochs 60] [--workers 2] [--roadmap-bins 200000]

For each dataset, stage 1 trains an Avocado model (preset "small"; on the synthetic data with
``residual=True, baseline_weight=0``, which suits its planted structure) on the FIRST half of the positions;
stage 2 (``model.fit_genome`` on a LocalCluster, network and biosample/assay factors frozen) fits
genome factors on the SECOND half, which stage 1 never saw. The held-out tracks (never observed; their
truth is in the store's ``held_out``) are then imputed block by block (``model.impute_genome``) and
scored on the second half against the average-activity baseline (per-bin mean of the assay's observed
tracks), the reference the papers measure against. The first half (stage 1's own region) is scored too.

Datasets: synthetic (12 biosamples x 8 assays x 80,000 bins, 60% of tracks missing) and the Roadmap
sample (../shared/data/roadmap_pilot, 5 x 5, Latin-square held out, the first ``--roadmap-bins`` bins;
skipped when absent). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bench_path  # noqa: F401  (benchmarks/ on sys.path)
import numpy as np
import pandas as pd
import torch
from common import ROADMAP, machine  # (and the source tree on sys.path)

import epitensor as et  # noqa: E402


def scores(ds, model, lo: int, hi: int) -> dict:
    """Mean over held-out tracks of the MSE of the imputation (read from the store) and of the baseline."""
    obs = ds["observed"].values
    held = np.argwhere(~obs)
    imputed = ds["imputed"].values if "imputed" in ds else None
    model_mse, base_mse, pearson = [], [], []
    for bi, ai in held:
        truth = ds["held_out"].isel(biosample=bi, assay=ai, position=slice(lo, hi)).values
        if imputed is not None and np.isfinite(imputed[bi, ai, lo:hi]).all():
            pred = imputed[bi, ai, lo:hi]
        else:
            b, a = str(ds.biosample.values[bi]), str(ds.assay.values[ai])
            pred = model.predict(*model.indices([(b, a)]), np.arange(lo, hi))[0]
        others = np.flatnonzero(obs[:, ai])
        base = ds["signal"].isel(assay=ai, position=slice(lo, hi)).values[others].mean(axis=0)
        model_mse.append(np.mean((pred - truth) ** 2))
        base_mse.append(np.mean((base - truth) ** 2))
        pearson.append(np.corrcoef(pred, truth)[0, 1])
    return {"held_out_tracks": len(held), "avocado_mse": float(np.mean(model_mse)), "baseline_mse": float(np.mean(base_mse)),
            "avocado_pearson": float(np.mean(pearson)), "tracks_beating_baseline": int(np.sum(np.array(model_mse) < base_mse))}


def run(name, ds, first_half, second_half, block_size, epochs, client, **options) -> list[dict]:
    genome = ds.epi.genome
    model = et.Avocado(ds, preset="small", seed=0, device="cpu", **options)
    t = time.perf_counter()
    model.fit(region=first_half, epochs=epochs, progress=False)
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    report = model.fit_genome(region=second_half, block_size=block_size, epochs=epochs, client=client, progress=False)
    t2 = time.perf_counter() - t
    t = time.perf_counter()
    model.impute_genome(pairs="unobserved", region=[first_half, second_half], block_size=block_size, client=client,
                        progress=False)
    t3 = time.perf_counter() - t
    ds = et.open_dataset(ds.attrs["source"])
    rows = []
    for label, region, seconds in (("stage 1 region (trained)", first_half, t1), ("stage 2 region (never seen in stage 1)", second_half, t2)):
        lo, hi = et.regions.region_bins(et.parse_region(region, genome), genome)
        s = scores(ds, model, lo, hi)
        rows.append({"dataset": name, "positions": label, "n_bins": hi - lo, **s,
                     "vs_baseline": s["avocado_mse"] / s["baseline_mse"], "fit_seconds": seconds})
    rows[-1]["blocks"] = len(report)
    rows[-1]["impute_seconds"] = t3
    print(f"{name}: stage 1 {len(model.history)} epochs in {t1:.0f} s; stage 2 {len(report)} blocks in {t2:.0f} s; "
          f"imputation by blocks {t3:.0f} s", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--roadmap-bins", type=int, default=200_000)
    parser.add_argument("--synthetic-epochs", type=int, default=60)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-roadmap", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="genome-scale-quality-"))
    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        if not args.skip_synthetic:
            genome = et.Genome.single_contig("synthetic", 80_000, assembly="synthetic", chunk_bins=10_000)
            # seed 0: every assay keeps >= 3 observed biosamples (with a single observed track, residual
            # training sees a target without its average activity but imputation adds it: see the report)
            ds = et.datasets.synthetic(tmp / "synthetic.zarr", n_biosamples=12, n_assays=8, genome=genome, missing=0.6, seed=0)
            rows += run("synthetic", ds, "synthetic:0-1Mb", "synthetic:1Mb-2Mb", "250kb", args.synthetic_epochs, client,
                        residual=True, baseline_weight=0.0)
        if ROADMAP is not None and not args.skip_roadmap:
            n = args.roadmap_bins
            ds = et.datasets.roadmap_pilot(tmp / "roadmap.zarr", path=ROADMAP, mask="latin-square", n_bins=n)
            half = n // 2 * 25
            rows += run("Roadmap (Latin square)", ds, f"pilot:0-{half}", f"pilot:{half}-{n * 25}", "1Mb", args.epochs, client)
        elif ROADMAP is None:
            print("Roadmap sample absent (../shared/data/roadmap_pilot): skipped")
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.drop(columns=[c for c in ("fit_seconds", "impute_seconds", "blocks") if c in table]).to_string(index=False))
    print(f"({machine()}; {args.workers} LocalCluster workers x 1 thread; epochs per stage: synthetic "
          f"{args.synthetic_epochs}, Roadmap {args.epochs})")


if __name__ == "__main__":
    main()
