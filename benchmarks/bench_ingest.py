"""Ingest throughput and peak memory: epitensor.ingest vs a plain per-track reference.

Writes a synthetic bigWig set (6 tracks x 3 chromosomes, ChIP-seq-like intervals of ~30 bp with
30% gaps), then measures, each in a fresh process and in the same run:

* reference: per track and chromosome, ``pyBigWig.values`` over the whole chromosome, reshape,
  mean, arcsinh, write into the same zarr layout (one process, one thread);
* ``epitensor.ingest`` with the threaded and the multiprocessing Dask schedulers and with a
  ``distributed.LocalCluster`` of worker processes (1 thread each), with 1 and 2 workers.

Reported: bins/s, bins/s per worker, the ratio of bins/s per worker to the reference, and peak
resident memory above the process's baseline after imports (for distributed: the largest worker).
A second table shows memory against chromosome length (flat for chunked ingestion).

Usage: ``python benchmarks/bench_ingest.py [--mb 24] [--tracks 6] [--repeats 2] [--glibc-malloc]``.
Timings are not asserted; each configuration reports its best of ``--repeats`` runs.

Notes
-----
Measured figures quoted by the package's docs (moved here from ``epitensor/io/ingestion.py``):

* threaded scheduler: on 2 cores, 2 threads ingested 432 Mb of tracks 1.55x faster than 1 (a
  chunk is read and written in the task's own thread, mostly outside the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, machine  # (and the source tree on sys.path)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """Peak resident memory since the last :func:`reset_peak` (VmHWM), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Reset the peak resident memory (VmHWM) to the current one (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------------- children
def reference_ingest(manifest, genome, store) -> None:
    """The plain way: per track and chromosome, values -> reshape -> mean -> arcsinh -> write."""
    import numpy as np
    import pyBigWig
    import zarr

    arr = zarr.open_array(str(store), path="signal", mode="r+")
    for i, row in enumerate(manifest.itertuples()):
        b, a = divmod(i, manifest.assay.nunique())
        bw = pyBigWig.open(row.path)
        for contig in genome.contigs:
            length = genome.length(contig)
            values = np.nan_to_num(bw.values(contig, 0, length, numpy=True))
            n = genome.n_bins(contig)
            padded = np.zeros(n * genome.bin_size, dtype=np.float32)
            padded[:length] = values
            counts = np.full(n, genome.bin_size, dtype=np.float32)
            counts[-1] = length - (n - 1) * genome.bin_size
            means = padded.reshape(n, genome.bin_size).sum(axis=1) / counts
            first, end = genome.contig_bins(contig)
            arr[b, a, first:end] = np.arcsinh(means).astype(np.float32)
        bw.close()


def child(method: str, workdir: Path, workers: int, chroms: list[str], manifest_name: str, repeats: int) -> dict:
    """Best time of ``repeats`` runs (each into a fresh, empty store created outside the timing)."""
    import pandas as pd

    import epitensor as et

    manifest = pd.read_csv(workdir / manifest_name, sep="\t")
    genome = et.Genome.from_attrs(json.loads((workdir / "genome.json").read_text())).subset(chroms)
    bins = len(manifest) * sum(genome.n_bins(c) for c in genome.contigs)
    # warm up lazy imports (xarray backends, dask, tqdm) so that no method pays for them in its timing
    import dask.callbacks  # noqa: F401
    import dask.delayed  # noqa: F401
    import dask.multiprocessing  # noqa: F401
    import dask.threaded  # noqa: F401
    import tqdm  # noqa: F401

    et.create_store(workdir / f"warm-{os.getpid()}.zarr", ["b"], ["a"], et.Genome("w", ["c"], [100]))

    def fresh_store(k):
        store = workdir / f"{method}-{workers}-{len(chroms)}-{os.getpid()}-{k}.zarr"
        et.create_store(store, list(pd.unique(manifest.biosample)), list(pd.unique(manifest.assay)), genome)
        return store

    times, peak = [], 0.0
    if method.startswith("distributed"):
        import dask
        from distributed import Client, LocalCluster

        # "distributed-malloc": workers keep glibc's default malloc tuning (dask sets
        # MALLOC_TRIM_THRESHOLD_=65536, which makes every large array allocation fault in fresh pages)
        environ = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None} if method == "distributed-malloc" else {}
        with dask.config.set(environ), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("epitensor"))  # warm the workers' imports
            for k in range(repeats):
                store = fresh_store(k)
                client.run(reset_peak)
                base = client.run(rss_mb)
                t0 = time.perf_counter()
                et.ingest(manifest, store, client=client, progress=False)
                times.append(time.perf_counter() - t0)
                worker_peak = client.run(peak_mb)
                peak = max(peak, max(worker_peak[w] - base[w] for w in worker_peak))
        return {"seconds": min(times), "bins": bins, "peak_mb": peak}
    for k in range(repeats):
        store = fresh_store(k)
        reset_peak()
        base = rss_mb()
        t0 = time.perf_counter()
        if method == "reference":
            reference_ingest(manifest, genome, store)
        else:
            et.ingest(manifest, store, workers=workers, scheduler=method, progress=False)
        times.append(time.perf_counter() - t0)
        peak = max(peak, peak_mb() - base)
    if method == "processes":  # the pool's worker processes (imports included) have ended
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 - base)
    return {"seconds": min(times), "bins": bins, "peak_mb": peak}


def run_child(method: str, workdir: Path, workers: int, chroms: list[str], manifest_name: str = "manifest.tsv", repeats: int = 1) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, str(workdir), str(workers), ",".join(chroms), manifest_name, str(repeats)],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- driver
def make_data(workdir: Path, mb: float, tracks: int, long_mb: float) -> None:
    import epitensor as et
    from epitensor.datasets import synthetic_bigwigs

    chroms = {"chrA": int(mb * 1e6) + 7, "chrB": int(mb * 1e6 * 0.75) + 13, "chrC": int(mb * 1e6 * 0.5) + 1}
    biosamples = [f"B{i}" for i in range(max(tracks // 2, 1))]
    assays = ["H3K4me3", "H3K27ac"][: max(tracks // len(biosamples), 1)]
    manifest = synthetic_bigwigs(workdir / "bw", chroms, biosamples, assays, seed=0)
    manifest.to_csv(workdir / "manifest.tsv", sep="\t", index=False)
    sizes = {"chrS": int(long_mb * 1e6 / 8) + 11, "chrLong": int(long_mb * 1e6) + 3}
    synthetic_bigwigs(workdir / "long", sizes, ["L"], ["H3K4me3"], seed=1).to_csv(workdir / "long.tsv", sep="\t", index=False)
    genome = et.Genome("bench", list(chroms) + list(sizes), list(chroms.values()) + list(sizes.values()))
    (workdir / "genome.json").write_text(json.dumps(genome.to_attrs()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=24.0, help="length of the largest chromosome, Mb (fixed costs such as starting a process pool weigh less on more data)")
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--long-mb", type=float, default=32.0, help="chromosome length for the memory table, Mb")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the best time is reported")
    parser.add_argument("--glibc-malloc", action="store_true", help="also run distributed workers without dask's MALLOC_TRIM_THRESHOLD_")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        make_data(workdir, args.mb, args.tracks, args.long_mb)
        print(f"synthetic bigWigs written in {time.perf_counter() - t0:.1f} s ({args.tracks} tracks; chromosomes of {args.mb:g}, {0.75 * args.mb:g}, {0.5 * args.mb:g} Mb)")
        three = ["chrA", "chrB", "chrC"]
        r = args.repeats
        rows = [("reference (values+reshape+mean)", 1, run_child("reference", workdir, 1, three, repeats=r))]
        labels = {
            "threads": "ingest, threads",
            "processes": "ingest, processes (+pool start)",
            "distributed": "ingest, distributed",
        }
        if args.glibc_malloc:
            labels["distributed-malloc"] = "ingest, distributed, glibc malloc"
        for method, label in labels.items():
            for workers in (1, 2):
                rows.append((label, workers, run_child(method, workdir, workers, three, repeats=r)))
        ref_rate = rows[0][2]["bins"] / rows[0][2]["seconds"]
        print(f"\nbest of {r} runs; peak MB = peak resident memory above the baseline after imports (distributed: the largest worker)")
        print(f"{'method':34s} {'workers':>7s} {'seconds':>8s} {'bins/s':>11s} {'bins/s/worker':>14s} {'x ref/worker':>13s} {'peak MB':>8s}")
        for name, workers, res in rows:
            rate = res["bins"] / res["seconds"]
            print(f"{name:34s} {workers:7d} {res['seconds']:8.2f} {rate:11,.0f} {rate / workers:14,.0f} {rate / workers / ref_rate:13.2f} {res['peak_mb']:8.1f}")
        print("\npeak memory above baseline (MB) vs chromosome length, 1 track, 1 worker:")
        print(f"{'chromosome':12s} {'Mb':>6s} {'reference':>10s} {'ingest threads':>15s}")
        for contig, size in (("chrS", args.long_mb / 8), ("chrLong", args.long_mb)):
            ref = run_child("reference", workdir, 1, [contig], "long.tsv")
            ours = run_child("threads", workdir, 1, [contig], "long.tsv")
            print(f"{contig:12s} {size:6.1f} {ref['peak_mb']:10.1f} {ours['peak_mb']:15.1f}")
        print(f"\ntotal {time.perf_counter() - t0:.0f} s; machine: {machine()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, method, workdir, workers, chroms, manifest_name, repeats = sys.argv
        print(json.dumps(child(method, Path(workdir), int(workers), chroms.split(","), manifest_name, int(repeats))))
    else:
        main()
