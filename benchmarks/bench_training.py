"""Training and imputation speed of epitensor's Avocado against a straightforward torch version
and (optionally) the reference Avocado (Keras/TensorFlow), measured interleaved in one run.

    python benchmarks/bench_training.py [--reference-python /work/ref-avocado/bin/python]
                                        [--configs paper,small] [--steps 3] [--repeats 3]
                                        [--cpu-kernels auto,fp32,onednn,bf16]
                                        [--project-first-layer auto,on,off]

Data: the first 200,000 bins of 24 Roadmap tracks from ../shared/data/roadmap_pilot (random
values when absent). Batch 40,000. Prints, per configuration and implementation, the median over
repeats of training samples/s and predictions/s, the fraction of the machine's measured
matrix-multiply peak (FLOPs per training sample = 6 x MACs of the network, per prediction = 2 x),
and the ratio to the straightforward torch version. On CPU the peak is the best fp32 kernel of
torch's own (MKL) and oneDNN, with the bf16 peak printed beside it; epitensor runs once per CPU
kernel path of ``--cpu-kernels`` ("auto" prints what the probe chose and why). Timings are not
asserted.

Notes (measurements moved here from the docstrings of ``epitensor/model/config.py``)
------------------------------------------------------------------------------------
- ``project_first_layer`` on CPU. Its first version (two gathers added to the layer's output,
  backward through advanced indexing, i.e. ``index_put_(accumulate=True)``) measured 1.7x slower
  than the plain first layer at 2 x 2048, so "auto" kept it off on CPU. The current one (one
  table row per distinct pair, gathered as ``addmm``'s accumulator, backward by ``index_add_``)
  is faster at both sizes (2 cores, AMD EPYC, AVX2, fp32, ``--project-first-layer on,off``,
  2 repeats): training 4,315 vs 3,523 samples/s at 2 x 2048 (1.22x) and 86,456 vs 44,203 at
  2 x 256 (1.96x); the reference Avocado in the same run 1,949 and 40,511. "auto" is now on.
- The ``small`` preset (benchmarks/roadmap_experiment.py, Roadmap sample, 20 training tracks, first
  100,000 bins, the held-out Latin square, MSE averaged over the five tracks; average-activity
  baseline 0.1874):

  - 2 x 256 network, 8/16/16 genome factors, 30 epochs: network alone 0.1767 (-5.7%); averaged with
    the baseline (``baseline_weight=0.5``) 0.1711 (-8.7%, Pearson r better on 4 of 5 tracks);
    60 epochs: alone 0.1907 (+1.7%, overfits), averaged 0.1702 (-9.2%, r better on 4 of 5).
  - same with the paper's 25/40/45 genome factors, 30 epochs: alone 0.1831, averaged 0.1746 (-6.8%).
  - modelling the residual from the average activity overfitted (0.303 alone); L2 on the genome
    factors gave no gain within the budget.
  - early stopping on 5% of the observed entries keeps improving while held-out tracks get worse
    (an optimistic proxy), which is why ``preset="auto"`` validates on whole held-out tracks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import ROADMAP  # noqa: E402  (and the source tree on sys.path)
from torch import nn

from epitensor.model import AvocadoConfig, AvocadoModule, GenomeRows  # noqa: E402
from epitensor.model.kernels import cpu_description  # noqa: E402
from epitensor.model.training import (  # noqa: E402
    build_training_data,
    kernel_choice,
    predict_pairs,
    resolve_options,
    train,
    tune_cpu_allocator,
)

CONFIGS = {"paper": dict(n_layers=2, n_nodes=2048), "small": dict(n_layers=2, n_nodes=256)}
BATCH = 40_000
PROJECTION = {"auto": "auto", "on": True, "off": False}


def load_tracks(n_positions: int):
    """(values (24, n), celltypes, assays, pairs): Roadmap tracks, or random ones when absent."""
    from epitensor.datasets.roadmap import ASSAYS, BIOSAMPLES

    pairs = [(b, a) for b in BIOSAMPLES for a in ASSAYS][:-1]  # 24 training tracks
    if ROADMAP is not None:
        values = np.stack([np.load(ROADMAP / f"{b}.{a}.pilot.arcsinh.npz")["arr_0"][:n_positions] for b, a in pairs])
        source = f"Roadmap pilot, first {n_positions:,} bins"
    else:
        values = np.random.default_rng(0).gamma(1.0, 0.5, (len(pairs), n_positions)).astype(np.float32)
        source = "random values (../shared absent)"
    return values.astype(np.float32), list(BIOSAMPLES), list(ASSAYS), pairs, source


def macs_per_sample(cfg: AvocadoConfig) -> int:
    width, macs = cfg.n_input, 0
    for _ in range(cfg.n_layers):
        macs += width * cfg.n_nodes
        width = cfg.n_nodes
    return macs + width


def _best_rate(fn, flops: float, device, repeats: int = 5) -> float:
    fn()
    best = 0.0
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        for _ in range(3):
            fn()
        _sync(device)
        best = max(best, 3 * flops / (time.perf_counter() - t))
    return best


def matmul_peaks(device="cpu", n: int | None = None) -> dict:
    """Measured matrix-multiply FLOP/s of each kernel family, best of a few n x n products (n default
    2048 on CPU, 8192 on CUDA).

    CPU: torch's fp32 matmul (MKL), fp32 through oneDNN (the kernel of the "onednn" path) and bf16;
    "fp32" is the best fp32 kernel, the machine's fp32 peak. CUDA: bf16.
    """
    from epitensor.model.kernels import onednn_available

    if torch.device(device).type == "cuda":
        n = n or 8192
        a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
        return {"bf16": _best_rate(lambda: a @ b, 2 * n**3, device)}
    n = n or 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    peaks = {"fp32 torch (MKL)": _best_rate(lambda: a @ b, 2 * n**3, device)}
    if onednn_available():
        peaks["fp32 oneDNN"] = _best_rate(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""),
                                          2 * n**3, device)
    a16, b16 = a.bfloat16(), b.bfloat16()  # in nn.Linear's layout: x @ W^T (the fast bf16 layout on CPU)
    peaks["bf16"] = _best_rate(lambda: a16 @ b16.t(), 2 * n**3, device, repeats=2)
    peaks["fp32"] = max(v for k, v in peaks.items() if k.startswith("fp32 "))
    return peaks


def _path_label(cfg: AvocadoConfig) -> str:
    """'auto: fp32' or 'onednn' for a CPU config; prints the probe's reason for auto."""
    choice = kernel_choice(cfg, "cpu")
    if cfg.cpu_kernels == "auto":
        print(f"  {cfg.n_layers}x{cfg.n_nodes}: {choice.describe()}")
        return f"auto: {choice.path}"
    return choice.path


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------- epitensor
def bench_ours(values, cb, ca, n_cells, n_assays, cfg: AvocadoConfig, steps: int, device="cpu", n_pred=None,
               dtype=None):
    """(training samples/s, predictions/s) of epitensor's training loop and ``predict_pairs``;
    ``dtype``: of the training tensor (default: the device's, float16 on CUDA)."""
    n = values.shape[1]
    rows = GenomeRows(np.arange(n))
    torch.manual_seed(0)
    module = AvocadoModule(n_cells, n_assays, rows.n_rows, cfg).to(device)
    cols = np.random.default_rng(0).permutation(n)[: steps * cfg.batch_size]  # `steps` steps per epoch, full-size tables
    data = build_training_data(values[:, cols], cb, ca, rows.rows(cols), device=device, dtype=dtype)
    hist, _ = train(module, data, 2, cfg, progress=False, device=device)  # epoch 1 warms up
    train_rate = steps * cfg.batch_size / (hist.seconds.iloc[1] - hist.seconds.iloc[0])
    n = n_pred or n
    r = [torch.as_tensor(x, device=device) for x in rows.rows(np.arange(n))]
    one = torch.zeros(1, dtype=torch.long, device=device)
    _, kernel = resolve_options(cfg, device)
    predict_pairs(module, one, one, [x[:BATCH] for x in r], 2**16, kernel)
    _sync(device)
    t = time.perf_counter()
    predict_pairs(module, one, one, r, 2**16, kernel)
    _sync(device)
    return train_rate, n / (time.perf_counter() - t)


# ---------------------------------------------------------------------- straightforward torch
class Straightforward(nn.Module):
    """Embedding lookups -> concatenation -> nn.Sequential, as anyone would first write it."""

    def __init__(self, n_cells, n_assays, n, cfg: AvocadoConfig):
        super().__init__()
        self.tables = nn.ModuleList([nn.Embedding(n_cells, cfg.n_biosample_factors), nn.Embedding(n_assays, cfg.n_assay_factors),
                                     nn.Embedding(n, cfg.n_25bp_factors), nn.Embedding(n // 10 + 1, cfg.n_250bp_factors),
                                     nn.Embedding(n // 200 + 1, cfg.n_5kbp_factors)])
        layers, width = [], cfg.n_input
        for _ in range(cfg.n_layers):
            layers += [nn.Linear(width, cfg.n_nodes), nn.ReLU()]
            width = cfg.n_nodes
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, c, a, p):
        return self.net(torch.cat([t(i) for t, i in zip(self.tables, (c, a, p, p // 10, p // 200))], 1)).squeeze(1)


def bench_straightforward(values, cb, ca, n_cells, n_assays, cfg: AvocadoConfig, steps: int, device="cpu", n_pred=None):
    n = values.shape[1]
    torch.manual_seed(0)
    model = Straightforward(n_cells, n_assays, n, cfg).to(device)
    opt = torch.optim.Adam(model.parameters())
    y_all, cb, ca = (torch.as_tensor(x, device=device) for x in (values, cb, ca))

    def step():
        p = torch.randint(n, (BATCH,), device=device)
        t = torch.randint(len(cb), (BATCH,), device=device)
        loss = nn.functional.mse_loss(model(cb[t], ca[t], p), y_all[t, p])
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    train_rate = steps * BATCH / (time.perf_counter() - t0)
    n = n_pred or n
    p_all = torch.arange(n, device=device)
    zero = torch.zeros(BATCH, dtype=torch.long, device=device)
    with torch.inference_mode():
        model(zero, zero, p_all[:BATCH])
        _sync(device)
        t0 = time.perf_counter()
        for s in range(0, n, BATCH):
            p = p_all[s : s + BATCH]
            model(zero[: len(p)], zero[: len(p)], p)
        _sync(device)
    return train_rate, n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------- reference
def bench_reference(python, data_file, cfg: AvocadoConfig, steps: int, n_pred: int, threads: int):
    script = Path(__file__).with_name("_reference_avocado.py")
    env = {**os.environ, "BENCH_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([python, str(script), str(data_file), str(cfg.n_layers), str(cfg.n_nodes), str(steps), str(n_pred)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"reference Avocado failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["train_samples_per_s"], res["predictions_per_s"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-python", default=os.environ.get("EPITENSOR_REFERENCE_PYTHON"),
                    help="Python of a venv with the reference Avocado (see ../shared/docs/REFERENCE_AVOCADO.md)")
    ap.add_argument("--configs", default="paper,small")
    ap.add_argument("--n-positions", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pred-positions", type=int, default=80_000, help="positions imputed per prediction measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the reference always runs on CPU)")
    ap.add_argument("--cpu-kernels", default="auto",
                    help="comma-separated CPU kernel paths to run epitensor with (auto, fp32, onednn, bf16)")
    ap.add_argument("--project-first-layer", default="auto",
                    help="comma-separated project_first_layer settings to run epitensor with (auto, on, off)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # both torch implementations get the same allocator
    values, cells, assays, pairs, source = load_tracks(args.n_positions)
    cb = np.array([cells.index(b) for b, _ in pairs])
    ca = np.array([assays.index(a) for _, a in pairs])
    peaks = matmul_peaks(args.device)
    load = os.getloadavg()[0]
    print(f"data: {source}; {len(pairs)} training tracks; batch {BATCH:,}; torch {torch.__version__}, {args.threads} threads")
    if args.device == "cpu":
        cpu = cpu_description()
        print(f"CPU {cpu['model']}; instructions {', '.join(cpu['instructions']) or 'none of ' + 'avx2/avx512/amx'}; "
              f"oneDNN bf16 {'native' if cpu['bf16_supported'] else 'emulated'}")
    kind = "fp32" if args.device == "cpu" else "bf16"
    peak = peaks[kind]
    print(f"device {args.device}; measured matmul peaks (GFLOP/s): "
          + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in peaks.items())
          + f"; % of peak below is of the {kind} peak; load average at start {load:.2f} on {os.cpu_count()} cores")
    data_file = None
    if args.reference_python:
        data_file = Path(tempfile.mkdtemp()) / "tracks.npz"
        np.savez(data_file, values=values, celltypes=np.array(cells), assays=np.array(assays), pairs=np.array(pairs))
    rows = []
    for name in args.configs.split(","):
        cfg = AvocadoConfig(**CONFIGS[name], batch_size=BATCH)
        impls = {}
        projections = args.project_first_layer.split(",")
        for path in args.cpu_kernels.split(",") if args.device == "cpu" else ["auto"]:
            for projection in projections:
                run = dataclasses.replace(cfg, cpu_kernels=path, project_first_layer=PROJECTION[projection])
                label = "epitensor" if path == "auto" and args.device != "cpu" else f"epitensor [{_path_label(run)}]"
                if len(projections) > 1:
                    label = f"{label} proj {projection}"
                impls[label] = lambda run=run: bench_ours(values, cb, ca, len(cells), len(assays), run, args.steps, args.device, args.pred_positions)
        impls |= {"straightforward torch": lambda cfg=cfg: bench_straightforward(values, cb, ca, len(cells), len(assays), cfg, args.steps, args.device, args.pred_positions)}
        if data_file:
            impls["reference Avocado (TF)"] = lambda cfg=cfg: bench_reference(args.reference_python, data_file, cfg, args.steps,
                                                                             args.pred_positions, args.threads)
        results = {k: [] for k in impls}
        for _ in range(args.repeats):  # interleaved, so load changes hit every implementation alike
            for k, fn in impls.items():
                results[k].append(fn())
                print(f"  {name:<6} {k:<24} train {results[k][-1][0]:>10,.0f}/s  predict {results[k][-1][1]:>10,.0f}/s  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        macs = macs_per_sample(cfg)
        base = statistics.median(r[0] for r in results["straightforward torch"]), statistics.median(r[1] for r in results["straightforward torch"])
        ref = None
        if data_file:
            ref = [statistics.median(r[i] for r in results["reference Avocado (TF)"]) for i in (0, 1)]
        for k, res in results.items():
            tr, pr = statistics.median(r[0] for r in res), statistics.median(r[1] for r in res)
            rows.append((f"{name} ({cfg.n_layers}x{cfg.n_nodes})", k, tr, pr, tr * 6 * macs / peak, pr * 2 * macs / peak,
                         tr / base[0], pr / base[1], (tr / ref[0], pr / ref[1]) if ref else None))
    print(f"\n{'config':<16} {'implementation':<24} {'train/s':>10} {'pred/s':>10} {'train %pk':>9} {'pred %pk':>9} "
          f"{'train x st':>10} {'pred x st':>9} {'train x ref':>11} {'pred x ref':>10}")
    for r in rows:
        refs = f"{r[8][0]:>11.2f} {r[8][1]:>10.2f}" if r[8] else f"{'-':>11} {'-':>10}"
        print(f"{r[0]:<16} {r[1]:<24} {r[2]:>10,.0f} {r[3]:>10,.0f} {r[4]:>9.1%} {r[5]:>9.1%} {r[6]:>10.2f} {r[7]:>9.2f} {refs}")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; medians of {args.repeats} repeats, {args.steps} timed steps each")


if __name__ == "__main__":
    main()
