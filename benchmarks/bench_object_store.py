"""The same work on a local store and on an S3 store served by moto on 127.0.0.1: time and requests.

Starts ``moto.server`` in a subprocess (dummy credentials), then in one run, for a local folder and
for ``s3://bench/...``: ingest synthetic bigWig tracks, read 1 Mb regions of one track (median of
``--reads``), and fit stage-2 genome factors of a small model over a few blocks (with imputations).
Reports seconds and the number of S3 requests by kind (counted in s3fs). moto answers from
memory on this machine, so the times show the client-side cost per request, not S3's latency
(tens of ms per request from a cloud VM).

Usage: ``python benchmarks/bench_object_store.py [--mb 4] [--tracks 4] [--reads 20]``.
Needs ``pip install 'epitensor[s3]' 'moto[server]'``.
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **CREDENTIALS}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=4, help="Mb per chromosome (2 chromosomes)")
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--reads", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    server, endpoint = start_moto()
    try:
        run(args, endpoint)
    finally:
        server.kill()


def run(args, endpoint: str) -> None:
    import numpy as np
    import s3fs
    import torch

    import epitensor as et
    from epitensor.datasets import synthetic_bigwigs

    torch.set_num_threads(1)
    counts: collections.Counter = collections.Counter()
    call = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *a, **k):
        counts[method] += 1
        return await call(self, method, *a, **k)

    s3fs.S3FileSystem._call_s3 = counted
    options = {"endpoint_url": endpoint}
    s3fs.S3FileSystem(**options).mkdir("bench")
    tmp = Path(tempfile.mkdtemp())
    length = int(args.mb * 1e6)
    chroms = {"chr1": length, "chr2": length}
    genome = et.Genome("bench", list(chroms), list(chroms.values()))
    n_b = max(1, args.tracks // 2)
    manifest = synthetic_bigwigs(tmp / "bw", chroms, [f"B{i}" for i in range(n_b)], ["H3K4me3", "H3K27ac"], seed=1)
    rows = []

    def measure(what, where, fn, *fn_args, **fn_kwargs):
        counts.clear()
        start = time.perf_counter()
        out = fn(*fn_args, **fn_kwargs)
        rows.append((what, where, time.perf_counter() - start, dict(counts)))
        return out

    def reads(track) -> float:
        times = []
        for i in range(args.reads):
            lo = (i * 997_000) % (length - 1_000_000)
            t = time.perf_counter()
            assert track.epi.region(f"chr1:{lo}-{lo + 1_000_000}").values.size
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    stores = {"local": tmp / "local.zarr", "s3": "s3://bench/store.zarr"}
    for where, store in stores.items():
        opts = options if where == "s3" else None
        measure("ingest", where, et.ingest, manifest, store, assembly=genome, workers=2, progress=False,
                storage_options=opts)
        track = et.open_dataset(store, storage_options=opts).signal.sel(biosample="B0", assay="H3K27ac")
        median = measure(f"{args.reads} x 1 Mb region read", where, reads, track)
        rows.append(("  median per read", where, median, {}))
    model = et.Avocado(et.open_dataset(stores["local"]), preset="paper", seed=1, n_nodes=16, n_layers=2,
                       batch_size=1000)
    model.fit(region="chr1:0-1Mb", epochs=2, progress=False)
    for where, store in stores.items():
        measure("fit_genome 4 x 250 kb blocks + imputations", where, model.fit_genome, store, region="chr2:0-1Mb",
                block_size="250kb", epochs=2, write_imputed=True, scheduler="synchronous", progress=False)
    print(f"{'operation':45s} {'store':6s} {'seconds':>8s}  S3 requests")
    for what, where, seconds, reqs in rows:
        total = sum(reqs.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(reqs.items()))
        print(f"{what:45s} {where:6s} {seconds:8.3f}  {total or '':>5} {detail}")


if __name__ == "__main__":
    main()
