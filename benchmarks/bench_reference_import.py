"""Import a paper-size reference Avocado model and compare its predictions with the reference's.

    nice -n 10 python benchmarks/bench_reference_import.py --reference-python /work/ref-avocado/bin/python
                                                           [--n-positions 120000] [--epoch-size 3]

The reference (its own environment, ../shared/docs/REFERENCE_AVOCADO.md) builds the paper's
network (2 x 2048, factors 32/256/25/40/45) over the first ``--n-positions`` bins of the Roadmap
sample (24 training tracks, random values when ../shared is absent), trains it for one short epoch
(``--epoch-size`` batches of 40,000), saves it with its own ``model.save`` and predicts every one
of the 25 (celltype, assay) pairs over all positions. epitensor then imports NAME.json + NAME.h5
into a store of the same tracks (labels in another order than the model's) and imputes the same
pairs. Prints the import time, the max abs difference over all pairs and positions, and both
prediction times. Not run in CI; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import common  # noqa: E402, F401  (the source tree and benchmarks/ on sys.path)
import numpy as np
import torch
from bench_training import load_tracks  # noqa: E402

import epitensor as et  # noqa: E402


def run_reference(python, data_file: Path, name: Path, n_layers: int, n_nodes: int, epoch_size: int, threads: int) -> dict:
    script = Path(__file__).with_name("_reference_avocado_save.py")
    env = {**os.environ, "BENCH_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([python, str(script), str(data_file), str(name), str(n_layers), str(n_nodes), str(epoch_size)],
                         capture_output=True, text=True, env=env, timeout=3600, cwd=script.parent)
    if out.returncode != 0:
        raise RuntimeError(f"reference Avocado failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_store(path: Path, values, celltypes, assays, pairs) -> Path:
    """A store of the training tracks over one contig ``pilot``, labels in reverse order."""
    genome = et.Genome.single_contig("pilot", values.shape[1], assembly="hg19-pilot")
    et.create_store(path, celltypes[::-1], assays[::-1], genome)
    writer = et.TrackWriter(path)
    for (b, a), track in zip(pairs, values):
        writer.write(b, a, track, "pilot")
    writer.mark_observed(pairs)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-python", default=os.environ.get("EPITENSOR_REFERENCE_PYTHON", "/work/ref-avocado/bin/python"))
    ap.add_argument("--n-positions", type=int, default=120_000)
    ap.add_argument("--epoch-size", type=int, default=3, help="training batches of 40,000 (one epoch)")
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--n-nodes", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    values, celltypes, assays, pairs, source = load_tracks(args.n_positions)
    print(f"data: {source}; {len(pairs)} training tracks; reference network {args.n_layers} x {args.n_nodes}, "
          f"factors 32/256/25/40/45; {args.epoch_size} batches of 40,000; {args.threads} threads")
    with tempfile.TemporaryDirectory(prefix="bench-reference-import-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "data.npz", values=values, celltypes=np.array(celltypes), assays=np.array(assays),
                 pairs=np.array(pairs))
        ref = run_reference(args.reference_python, tmp / "data.npz", tmp / "paper", args.n_layers, args.n_nodes,
                            args.epoch_size, args.threads)
        store = make_store(tmp / "store.zarr", values, celltypes, assays, pairs)
        sizes = {p.name: p.stat().st_size for p in tmp.glob("paper.*")}
        t = time.perf_counter()
        model = et.Avocado.from_reference(tmp / "paper.json", tmp / "paper.h5", store, region="pilot", device="cpu")
        import_s = time.perf_counter() - t
        t = time.perf_counter()
        imputed = model.impute(region="pilot")
        impute_s = time.perf_counter() - t
        with np.load(tmp / "paper_predictions.npz") as npz:
            expected, ref_pairs = npz["predictions"], [tuple(map(str, p)) for p in npz["pairs"]]
        got = np.stack([imputed.sel(biosample=c, assay=a).values for c, a in ref_pairs])
        diff = np.abs(got - expected)
    print(f"reference: trained {ref['train_s']:.1f} s, predicted {ref['n_predictions']:,} values in {ref['predict_s']:.1f} s; "
          f"files {', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in sorted(sizes.items()))}")
    print(f"import (json + h5 with h5py, into the store): {import_s:.2f} s; {model}")
    print(f"epitensor impute of the same {got.size:,} values: {impute_s:.1f} s")
    print(f"max abs difference over all {len(ref_pairs)} pairs x {got.shape[1]:,} positions: {diff.max():.3g} "
          f"(mean {diff.mean():.3g}; predictions range [{expected.min():.3f}, {expected.max():.3f}])")


if __name__ == "__main__":
    main()
