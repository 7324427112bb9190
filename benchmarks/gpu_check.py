"""The CUDA path, checked and measured in one run on a lent GPU machine (issue 14).

    python benchmarks/gpu_check.py [--device cuda|cpu] [--quick] [--out DIR] [--steps a,b,...]
    python benchmarks/gpu_check.py --prepare-data .gpu_data/roadmap_pilot [--bins 200000]

Steps, each guarded (a failing step is recorded with its traceback and the others still run; the
exit status is 1 if any failed):

1. ``install``: the wheels carried in ``.whl/`` (``benchmarks/gpu_wheels.sh`` downloads them) are
   installed into ``/tmp/site`` when this Python can take them (3.12; the GPU machine's image lacks
   zarr, dask, distributed, ...); then every package epitensor needs must import.
2. ``environment``: ``nvidia-smi`` (saved as ``nvidia-smi.txt``), torch, the GPU and package versions.
3. ``cuda_tests``: ``pytest -m cuda`` over tests/ (the CUDA tests and every test parametrised on the
   ``device`` fixture's cuda value), output saved as ``cuda_tests.txt``.
4. ``throughput``: training samples/s and predictions/s of epitensor's training loop
   (``bench_training.bench_ours``) at paper size (2 x 2048) and 2 x 256, batch 40,000, with the
   ``auto`` settings and with fp16 data / bf16 autocast / first-layer projection switched off one at
   a time, and the measured bf16 matmul peak (fp32 on CPU) in the same run.
5. ``profile``: torch.profiler over one more paper-size run (auto settings): the top operators by
   self device time, and the table in ``profile_paper.txt``.
6. ``stage2``: ``fit_genome`` and ``impute_genome`` over 1 Mb blocks of a synthetic 16 x 10 store on
   a ``distributed.LocalCluster`` of one worker process holding ``resources={"GPU": 1}``: tasks that
   claim it run on the device (at two epoch counts, imputing every unobserved pair), then the same
   worker runs the CPU baseline (device cpu, one torch thread, a few pairs): blocks/s, training
   samples/s, predictions/s and their ratios.
7. ``roadmap``: the Roadmap sample (prepared bins, Latin square held out) trained with the default
   configuration (``et.Avocado(ds)``, preset auto) on the device and on CPU from the same seed; the
   held-out MSE of both and of the average activity.

Results go to ``$OUT`` (``--out``; default ``./gpu_check_out``): ``gpu_check.json`` and
``gpu_check.md`` (rewritten after every step, so a run stopped by its time limit still reports the
finished steps), ``nvidia-smi.txt``, ``cuda_tests.txt`` and ``profile_paper.txt``. docs/gpu_check.md
gives the one-call launch on the GPU machine. ``--quick`` shrinks every size (the CPU dry run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
EXPERIMENTS = REPO / "experiments"
WHEELS = REPO / ".whl"
SITE = Path("/tmp/site")
DATA = REPO / ".gpu_data" / "roadmap_pilot"
STEPS = ("install", "environment", "cuda_tests", "throughput", "profile", "stage2", "roadmap")
#: Packages epitensor imports that the GPU machine's image lacks (the wheels of gpu_wheels.sh).
NEEDED = ("zarr", "numcodecs", "google_crc32c", "dask", "distributed", "pooch", "pyBigWig", "pybigtools")
VERSIONS = ("torch", "numpy", "pandas", "xarray", "zarr", "numcodecs", "dask", "distributed", "scipy",
            "scikit-learn", "pytest", "hypothesis", "triton")

#: Sizes of the full run and of ``--quick``. Throughput: ``steps`` x ``batch`` positions, ``repeats``
#: measurements (median); stage 2: the device worker over ``stage2_blocks`` blocks at ``stage2_epochs``
#: and ``stage2_long_epochs``, the CPU worker over ``stage2_cpu_blocks`` imputing ``stage2_cpu_pairs``;
#: Roadmap: each validation phase at most ``roadmap_minutes``; ``budget``: seconds for the whole run.
SIZES = {
    "full": dict(steps=50, repeats=2, pred_positions=2_000_000, peak_n=None, nets={"paper": 2048, "2x256": 256},
                 batch=40_000, profile_steps=10, stage2_blocks=4, stage2_cpu_blocks=1, stage2_epochs=2, stage2_long_epochs=50,
                 stage2_cpu_pairs=2, stage2_nodes=2048, stage2_block="1Mb", stage2_warm_up=True,
                 roadmap_minutes=1.5, roadmap_epochs=None, test_timeout=240, budget=450),
    "quick": dict(steps=2, repeats=1, pred_positions=4_000, peak_n=256, nets={"paper": 64, "2x256": 16},
                  batch=1_000, profile_steps=2, stage2_blocks=1, stage2_cpu_blocks=1, stage2_epochs=1, stage2_long_epochs=2,
                  stage2_cpu_pairs=2, stage2_nodes=16, stage2_block="25kb", stage2_warm_up=False,
                  roadmap_minutes=0.5, roadmap_epochs=2, test_timeout=120, budget=120),
}


# ---------------------------------------------------------------------- running the steps
class Report:
    """The JSON and Markdown results under ``out``, rewritten after every step."""

    def __init__(self, out: Path, args):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data = {"started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                     "device": args.device, "quick": args.quick, "argv": sys.argv[1:], "steps": {}}

    def run(self, name: str, fn, *args):
        print(f"== {name}", flush=True)
        t, cpu = time.perf_counter(), _cpu_seconds()
        stop = None
        try:
            rec = {"status": "ok", "result": fn(*args)}
        except Exception:  # every step is guarded: record it and go on
            rec = {"status": "failed", "error": traceback.format_exc()}
            print(rec["error"], file=sys.stderr, flush=True)
        except KeyboardInterrupt as err:  # SIGINT from the wrapper's time limit: record, then stop
            rec, stop = {"status": "interrupted", "error": "stopped by SIGINT (the time limit) during this step\n"
                                                           + traceback.format_exc()}, err
        rec["seconds"] = round(time.perf_counter() - t, 2)
        rec["cpu_seconds"] = round(_cpu_seconds() - cpu, 2)  # this process and its finished children
        self.data["steps"][name] = rec
        print(f"== {name}: {rec['status']} in {rec['seconds']} s", flush=True)
        self.write()
        if stop is not None:
            raise stop
        return rec

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.data["steps"].items() if v["status"] != "ok"]

    def write(self):
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "gpu_check.md").write_text(markdown(self.data))


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _env_with_paths() -> dict:
    """os.environ with /tmp/site (when used) and the repository first on PYTHONPATH (subprocesses)."""
    paths = [str(p) for p in (SITE, REPO) if p == REPO or str(p) in sys.path]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


# ---------------------------------------------------------------------- 1. install
def step_install(wheels: Path = WHEELS) -> dict:
    """Install the carried wheels into /tmp/site where this Python takes them; check the imports."""
    import importlib

    found = sorted(p.name for p in wheels.glob("*.whl")) if wheels.is_dir() else []
    res = {"wheels": found, "python": platform.python_version(), "installed": False}
    if found and sys.version_info[:2] == (3, 12):
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, sorted(wheels.glob("*.whl")))]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"pip install of {len(found)} wheels failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        sys.path.insert(0, str(SITE))
        importlib.invalidate_caches()
        res["installed"] = True
    elif found:
        res["note"] = f"wheels are for Python 3.12, this is {res['python']}: not installed, the packages here are used"
    else:
        res["note"] = f"no wheels in {wheels}: the packages already importable are used"
    os.environ.update(_env_with_paths())  # dask worker processes and pytest see the same packages
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except ImportError as err:
            missing.append(f"{name} ({err})")
    if missing:
        raise RuntimeError(f"packages epitensor needs do not import: {missing}")
    res["versions"] = _versions()
    return res


def _versions() -> dict:
    """Installed versions of :data:`VERSIONS` (None where absent), read without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------------- 2. environment
def step_environment(device: str, out: Path) -> dict:
    import torch

    res = {"python": sys.version.split()[0], "executable": sys.executable, "cpus": os.cpu_count(),
           "platform": platform.platform(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "versions": _versions()}
    try:
        res["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        res["commit"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        res["gpu"] = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                      "multiprocessors": p.multi_processor_count, "capability": f"{p.major}.{p.minor}"}
    smi = shutil.which("nvidia-smi")
    if smi:
        text = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
        text += "\n" + subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                                       "--format=csv"], capture_output=True, text=True, timeout=30).stdout
        (out / "nvidia-smi.txt").write_text(text)
        res["nvidia_smi"] = "nvidia-smi.txt"
    else:
        (out / "nvidia-smi.txt").write_text("nvidia-smi not found on this machine\n")
        res["nvidia_smi"] = None
    if device.startswith("cuda") and not (torch.cuda.is_available() and smi):
        raise RuntimeError(f"--device {device} but torch.cuda.is_available()={torch.cuda.is_available()}, nvidia-smi={smi}")
    return res


# ---------------------------------------------------------------------- 3. CUDA tests
def step_cuda_tests(device: str, out: Path, quick: bool, timeout: float) -> dict:
    """``pytest -m cuda`` (quick: over model/test_model.py only); counts from pytest's summary line."""
    targets = ["model/test_model.py"] if quick else ["."]
    cmd = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO),
           "-p", "no:cacheprovider", "-q", "-m", "cuda", *targets]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO / "tests", env=_env_with_paths(), capture_output=True, text=True, timeout=timeout)
    (out / "cuda_tests.txt").write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    counts = {k: int(m.group(1)) if (m := re.search(rf"(\d+) {k}", tail)) else 0
              for k in ("passed", "skipped", "failed", "error", "deselected")}
    res = {"returncode": proc.returncode, "summary": tail, **counts, "seconds": round(time.perf_counter() - t, 1),
           "log": "cuda_tests.txt"}
    if proc.returncode not in (0, 5) or counts["failed"] or counts["error"]:
        raise RuntimeError(f"pytest -m cuda failed (rc {proc.returncode}): {tail}\n{proc.stdout[-4000:]}")
    if device.startswith("cuda") and counts["passed"] == 0:
        raise RuntimeError(f"no CUDA test passed on {device}: {tail}")
    return res


# ---------------------------------------------------------------------- 4. throughput
def _variants(device):
    """Name -> (config options, training-tensor dtype): the auto settings and each CUDA option off."""
    import torch

    return {"auto": ({}, None), "fp16 data off": ({}, torch.float32),
            "bf16 autocast off": ({"autocast": False}, None), "projection off": ({"project_first_layer": False}, None)}


def step_throughput(device: str, size: dict) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(BENCH))
    from bench_training import bench_ours, load_tracks, macs_per_sample, matmul_peaks

    from epitensor.model import AvocadoConfig
    from epitensor.model.training import resolve_options

    batch, steps = size["batch"], size["steps"]
    values, cells, assays, pairs, source = load_tracks(steps * batch)  # fewer where the Roadmap files are shorter
    n_pred = min(size["pred_positions"], values.shape[1])
    cb = np.array([cells.index(b) for b, _ in pairs])
    ca = np.array([assays.index(a) for _, a in pairs])
    peak = matmul_peaks(device, size["peak_n"])["bf16"]
    rows = []
    for name, nodes in size["nets"].items():
        for variant, (options, dtype) in _variants(device).items():
            cfg = AvocadoConfig(n_layers=2, n_nodes=nodes, batch_size=batch, **options)
            runs = [bench_ours(values, cb, ca, len(cells), len(assays), cfg, steps, device, n_pred, dtype=dtype)
                    for _ in range(size["repeats"])]
            train_rate, pred_rate = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            project, kernel = resolve_options(cfg, device)
            data_dtype = dtype or (torch.float16 if torch.device(device).type == "cuda" else torch.float32)
            macs = macs_per_sample(cfg)
            rows.append({"network": f"{name} (2 x {nodes})", "setting": variant, "fp16_data": data_dtype == torch.float16,
                         "autocast": kernel == "bf16", "kernel": kernel, "projection": project, "train_samples_per_s": train_rate,
                         "predictions_per_s": pred_rate, "train_fraction_of_peak": train_rate * 6 * macs / peak,
                         "predict_fraction_of_peak": pred_rate * 2 * macs / peak, "repeats": [list(r) for r in runs]})
            print(f"  {rows[-1]['network']:<18} {variant:<18} train {train_rate:>12,.0f}/s  predict {pred_rate:>12,.0f}/s", flush=True)
            _free(device)
    return {"data": source, "tracks": len(pairs), "batch": batch, "steps": steps, "positions": values.shape[1],
            "predicted_positions": n_pred,
            "peak_flops": peak, "peak_kind": "fp32" if device == "cpu" else "bf16",
            "flops_convention": "6 x MACs per training sample, 2 x MACs per prediction (bench_training)", "rows": rows}


def _free(device):
    import gc

    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def step_profile(device: str, size: dict, out: Path) -> dict:
    """torch.profiler over one paper-size ``bench_ours`` run (auto settings): where the step time goes,
    as a table in ``profile_paper.txt`` and the top operators in the JSON."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(BENCH))
    from bench_training import bench_ours, load_tracks

    from epitensor.model import AvocadoConfig

    cuda = torch.device(device).type == "cuda"
    batch, steps = size["batch"], size["profile_steps"]
    values, cells, assays, pairs, _ = load_tracks(steps * batch)
    cb = np.array([cells.index(b) for b, _ in pairs])
    ca = np.array([assays.index(a) for _, a in pairs])
    cfg = AvocadoConfig(n_layers=2, n_nodes=size["nets"]["paper"], batch_size=batch)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        rates = bench_ours(values, cb, ca, len(cells), len(assays), cfg, steps, device, min(4 * batch, values.shape[1]))
    averages = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    table = averages.table(sort_by=key, row_limit=30)
    (out / "profile_paper.txt").write_text(f"bench_ours, 2 x {cfg.n_nodes}, batch {batch:,}, {steps} steps per epoch, "
                                           f"2 epochs + prediction, {device}; sorted by {key}\n{table}")
    total = sum(getattr(e, key) for e in averages) or 1.0
    top = sorted(averages, key=lambda e: getattr(e, key), reverse=True)[:15]
    _free(device)
    return {"network": f"2 x {cfg.n_nodes}", "steps": steps, "sorted_by": key, "under_profiler_rates": list(rates),
            "top": [{"name": e.key, "calls": e.count, "self_ms": getattr(e, key) / 1e3, "share": getattr(e, key) / total}
                    for e in top], "table": "profile_paper.txt"}


# ---------------------------------------------------------------------- 5. stage 2
def _warm_worker(device: str) -> str:
    """Run on each dask worker before timing: imports, and the CUDA context and cuBLAS when on a GPU."""
    import torch

    import epitensor.scale.worker  # noqa: F401

    x = torch.ones(64, 64, device=device)
    (x @ x).sum().item()
    return str(torch.device(device))


def _stage2_run(client, tmp, name, dev, resources, n_blocks, epochs, pairs, block_bins, size) -> dict:
    """On a copy of the store: ``fit_genome`` over ``n_blocks`` blocks after the first (the stage-1
    region), then ``impute_genome`` of ``pairs`` there (none when None)."""
    import epitensor as et

    store = tmp / f"stage2-{dev}-{epochs}.zarr"
    shutil.copytree(tmp / "stage2.zarr", store)
    m = et.Avocado.load(tmp / "stage2-model", et.open_dataset(store), device="cpu")
    bp = block_bins * 25
    region = f"bench:{bp}-{(n_blocks + 1) * bp}"
    kw = dict(client=client, resources=resources, device=dev, torch_threads=1, progress=False, block_size=size["stage2_block"])
    t = time.perf_counter()
    fit = m.fit_genome(region=region, epochs=epochs, **kw)
    fit_s = time.perf_counter() - t
    row = {"worker": name, "blocks": len(fit), "block_bins": block_bins, "epochs": epochs, "fit_s": fit_s,
           "fit_blocks_per_s": len(fit) / fit_s, "train_samples_per_s": epochs * int(fit.n_positions.sum()) / fit_s,
           "first_block_loss": float(fit.loss.iloc[0]), "pairs_imputed": None, "predictions": 0,
           "impute_s": None, "impute_blocks_per_s": None, "predictions_per_s": None}
    if set(fit.status) != {"fitted"}:
        raise RuntimeError(f"{name}: blocks not all fitted:\n{fit.to_string()}")
    if pairs is not None:
        t = time.perf_counter()
        imp = m.impute_genome(pairs=pairs, region=region, **kw)
        imp_s = time.perf_counter() - t
        if set(imp.status) != {"imputed"}:
            raise RuntimeError(f"{name}: blocks not all imputed:\n{imp.to_string()}")
        preds = int(imp.n_predictions.sum())
        row.update(pairs_imputed=preds // int(fit.n_positions.sum()), predictions=preds, impute_s=imp_s,
                   impute_blocks_per_s=len(imp) / imp_s, predictions_per_s=preds / imp_s)
    shutil.rmtree(store, ignore_errors=True)
    print(f"  {name}, {epochs} epochs: fit {row['fit_blocks_per_s']:.3f} blocks/s"
          + (f", impute {row['predictions_per_s']:,.0f} predictions/s" if pairs is not None else ""), flush=True)
    return row


def step_stage2(device: str, size: dict, tmp: Path) -> dict:
    import torch
    from distributed import Client, LocalCluster

    import epitensor as et
    from epitensor.scale import plan_blocks

    blocks = plan_blocks(None, et.Genome.single_contig("probe", 10**6, assembly="probe"), size["stage2_block"])
    block_bins = blocks[0].n_positions
    n_blocks = max(size["stage2_blocks"], size["stage2_cpu_blocks"])
    genome = et.Genome.single_contig("bench", (n_blocks + 1) * block_bins, assembly="bench",
                                     chunk_bins=min(block_bins, 40_000))
    ds = et.datasets.synthetic(tmp / "stage2.zarr", n_biosamples=16, n_assays=10, genome=genome, missing=0.5, seed=0)
    net = dict(n_layers=2, n_nodes=size["stage2_nodes"], batch_size=size["batch"])
    model = et.Avocado(ds, preset="paper", seed=0, device=device, **net)
    model.fit(region=f"bench:0-{block_bins * 25}", epochs=1, progress=False)
    model.save(tmp / "stage2-model")
    del model
    _free(device)
    missing = ds.epi.tracks("missing")
    cpu_pairs = list(zip(missing.biosample, missing.assay))[: size["stage2_cpu_pairs"]]
    gpu = f"1 {device} worker (resources GPU=1)"
    # (name, device, resources, blocks, epochs, pairs imputed): the device worker at the short and the
    # long epoch count (their difference is the per-epoch cost, the rest the per-block overhead),
    # imputing every unobserved pair, then the CPU baseline's few pairs (a CPU thread takes minutes
    # for all; predictions/s grow with the pairs, which share the genome part of the first layer);
    # then the CPU baseline at the short epoch count
    runs = [(gpu, device, {"GPU": 1}, size["stage2_blocks"], size["stage2_epochs"], "unobserved"),
            (gpu, device, {"GPU": 1}, size["stage2_blocks"], size["stage2_long_epochs"], cpu_pairs),
            ("1 CPU worker (1 thread)", "cpu", None, size["stage2_cpu_blocks"], size["stage2_epochs"], cpu_pairs)]
    rows = []
    # one worker process holding the resource GPU=1, 1 thread: tasks claiming it run on the device; the
    # same process then runs the CPU baseline (no resource claimed, device cpu, 1 torch thread)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                           resources={"GPU": 1})
    try:
        with Client(cluster) as client:
            if size["stage2_warm_up"]:  # one untimed block first: the worker's first-task costs
                client.run(_warm_worker, device)
                _stage2_run(client, tmp, "warm-up", device, {"GPU": 1}, 1, 1, None, block_bins, size)
            for name, dev, resources, nb, epochs, pairs in runs:
                client.run(_warm_worker, dev)
                rows.append(_stage2_run(client, tmp, name, dev, resources, nb, epochs, pairs, block_bins, size))
                _free(device)
    finally:
        cluster.close()
    short, long, cpu = rows
    per_epoch = (long["fit_s"] / long["blocks"] - short["fit_s"] / short["blocks"]) / (long["epochs"] - short["epochs"])
    overhead = short["fit_s"] / short["blocks"] - short["epochs"] * per_epoch
    return {"store": "synthetic 16 biosamples x 10 assays, 50% observed", "network": f"2 x {size['stage2_nodes']}",
            "torch_threads_driver": torch.get_num_threads(), "rows": rows,
            "fit_blocks_per_s_ratio": short["fit_blocks_per_s"] / cpu["fit_blocks_per_s"],
            "impute_predictions_per_s_ratio": long["predictions_per_s"] / cpu["predictions_per_s"],
            "device_seconds_per_block_epoch": per_epoch, "device_seconds_per_block_overhead": overhead}


# ---------------------------------------------------------------------- 6. Roadmap
def step_roadmap(device: str, size: dict, tmp: Path, data: Path, deadline: float) -> dict:
    if not data.is_dir():
        raise FileNotFoundError(f"no prepared Roadmap bins at {data}: run `python benchmarks/gpu_check.py "
                                f"--prepare-data {data}` here and carry its folder")
    import numpy as np

    sys.path.insert(0, str(EXPERIMENTS))
    from roadmap_experiment import average_activity, scores

    import epitensor as et
    from epitensor.datasets.roadmap import LATIN_SQUARE

    ds = et.datasets.roadmap_pilot(tmp / "roadmap.zarr", path=data, mask="latin-square")
    region = "pilot"
    truth = {p: ds.held_out.sel(biosample=p[0], assay=p[1]).epi.region(region).values for p in LATIN_SQUARE}
    base = [scores(truth[p], average_activity(ds, *p, region))["mse"] for p in LATIN_SQUARE]
    rows = []
    devices = list(dict.fromkeys([device, "cpu"]))  # the device and CPU, same seed (once on a CPU dry run)
    for i, dev in enumerate(devices):
        # the validation phase's budget: --roadmap-minutes, less when the run's budget is short (the
        # refit that follows takes about as long again)
        limit = min(size["roadmap_minutes"] * 60, max(5.0, (deadline - time.perf_counter()) / (2 * (len(devices) - i))))
        # CPU after the device: at most the device's validation epochs, so that a slower CPU cut by the
        # time limit is not compared with a longer-trained device model
        epochs = size["roadmap_epochs"] if i == 0 else (size["roadmap_epochs"] or rows[0]["validation_epochs"])
        t = time.perf_counter()
        model = et.Avocado(ds, device=dev, seed=0)
        hist = model.fit(epochs=epochs, time_limit=limit, progress=False)
        fit_s = time.perf_counter() - t
        val = hist[hist.phase == "validation"] if "phase" in hist else hist
        patience = model.config.patience
        waited = len(val) - 1 - int(np.nanargmin(val.val_mse.to_numpy())) if "val_mse" in val else -1
        stopped = ("patience" if patience and waited >= patience else
                   "epochs" if epochs is not None and len(val) >= epochs else "time limit")
        imp = model.impute(region=region)
        per_track = {f"{b}.{a}": scores(truth[(b, a)], imp.sel(biosample=b, assay=a).values) for b, a in LATIN_SQUARE}
        rows.append({"device": dev, "preset": model.config.auto_choice.split(":")[0], "epochs": len(hist),
                     "validation_epochs": len(val), "validation_stopped_by": stopped, "time_limit_s": round(limit, 1),
                     "max_epochs": epochs,
                     "fit_s": fit_s, "baseline_weight": model.config.baseline_weight,
                     "held_out_mse": float(np.mean([v["mse"] for v in per_track.values()])),
                     "held_out_r": float(np.mean([v["r"] for v in per_track.values()])), "per_track": per_track})
        print(f"  {dev}: {len(hist)} epochs in {fit_s:.1f} s, held-out MSE {rows[-1]['held_out_mse']:.4f}", flush=True)
        del model
        _free(dev)
    return {"bins": int(ds.sizes["position"]), "held_out": [f"{b}.{a}" for b, a in LATIN_SQUARE],
            "average_activity_mse": float(np.mean(base)), "rows": rows,
            "mse_relative_difference": rows[0]["held_out_mse"] / rows[-1]["held_out_mse"] - 1 if len(rows) > 1 else None}


# ---------------------------------------------------------------------- data preparation (here)
def prepare_data(folder: Path, bins: int, source: Path | None) -> dict:
    """Write the first ``bins`` bins of the 25 Roadmap tracks as compressed .npz files named like the
    originals (so ``et.datasets.roadmap_pilot(path=folder)`` reads them) into ``folder``."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(EXPERIMENTS))
    from roadmap_experiment import ROADMAP

    from epitensor.datasets.roadmap import ASSAYS, BIOSAMPLES, _file_name

    source = Path(source) if source else ROADMAP
    if source is None or not source.is_dir():
        raise SystemExit(f"no Roadmap source folder ({source}); pass --source with the 25 *.pilot.arcsinh.npz files")
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for b in BIOSAMPLES:
        for a in ASSAYS:
            with np.load(source / _file_name(b, a)) as npz:
                values = np.asarray(npz["arr_0"][:bins], dtype=np.float32)
            np.savez_compressed(folder / _file_name(b, a), arr_0=values)
            total += (folder / _file_name(b, a)).stat().st_size
    print(f"wrote 25 tracks x {len(values):,} bins from {source} to {folder}: {total / 2**20:.2f} MiB")
    return {"bins": len(values), "bytes": total}


# ---------------------------------------------------------------------- Markdown
def _fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def markdown(data: dict) -> str:
    steps = data["steps"]
    lines = [f"# GPU check ({data['device']}{', quick' if data['quick'] else ''}), started {data['started']}", "",
             "| step | status | seconds | CPU seconds |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['status']} | {v['seconds']} | {v.get('cpu_seconds')} |" for k, v in steps.items()]
    env = steps.get("environment", {}).get("result")
    if env:
        gpu = env.get("gpu")
        gpu = f"{gpu['name']}, {gpu['memory_gib']} GiB, {gpu['multiprocessors']} SMs" if gpu else "none"
        lines += ["", f"torch {env['torch']} (CUDA {env['torch_cuda']}), Python {env['python']}, {env['cpus']} CPUs, "
                      f"GPU: {gpu}; commit {env.get('commit')}"]
    thr = steps.get("throughput", {}).get("result")
    if thr:
        lines += ["", f"## Training and prediction throughput ({thr['positions']:,} positions, batch {thr['batch']:,}, "
                      f"{thr['tracks']} tracks, {thr['data']})", "",
                  f"Measured {thr['peak_kind']} matmul peak: {thr['peak_flops'] / 1e12:.1f} TFLOP/s. "
                  f"FLOPs: {thr['flops_convention']}.", "",
                  "| network | setting | fp16 data | bf16 autocast | projection | train samples/s | % peak | predictions/s | % peak |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['network']} | {r['setting']} | {r['fp16_data']} | {r['autocast']} | {r['projection']} | "
                  f"{_fmt(r['train_samples_per_s'])} | {r['train_fraction_of_peak']:.1%} | {_fmt(r['predictions_per_s'])} | "
                  f"{r['predict_fraction_of_peak']:.1%} |" for r in thr["rows"]]
    prof = steps.get("profile", {}).get("result")
    if prof:
        lines += ["", f"## Profile of paper-size training ({prof['network']}, {prof['steps']} steps per epoch; "
                      f"{prof['table']} has the full table)", "", "| operator | calls | self ms | share |", "|---|---|---|---|"]
        lines += [f"| `{e['name']}` | {e['calls']} | {e['self_ms']:.1f} | {e['share']:.1%} |" for e in prof["top"]]
    s2 = steps.get("stage2", {}).get("result")
    if s2:
        lines += ["", f"## Stage 2 on a LocalCluster ({s2['store']}, network {s2['network']})", "",
                  "| worker | blocks | bins/block | epochs | fit blocks/s | training samples/s | pairs imputed | impute blocks/s | predictions/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['worker']} | {r['blocks']} | {r['block_bins']:,} | {r['epochs']} | {r['fit_blocks_per_s']:.3f} | "
                  f"{_fmt(r['train_samples_per_s'])} | {_fmt(r['pairs_imputed'], ',')} | {_fmt(r['impute_blocks_per_s'], '.3f')} | "
                  f"{_fmt(r['predictions_per_s'])} |" for r in s2["rows"]]
        lines += ["", f"Device worker / CPU worker: fit blocks/s at {s2['rows'][0]['epochs']} epochs "
                      f"{s2['fit_blocks_per_s_ratio']:.1f}x; predictions/s imputing the same "
                      f"{s2['rows'][2]['pairs_imputed']} pairs {s2['impute_predictions_per_s_ratio']:.1f}x. "
                      f"Device worker per block: {s2['device_seconds_per_block_overhead']:.2f} s overhead + "
                      f"{s2['device_seconds_per_block_epoch']:.4f} s per epoch (from the two epoch counts)."]
    rm = steps.get("roadmap", {}).get("result")
    if rm:
        lines += ["", f"## Roadmap sample, default configuration ({rm['bins']:,} bins, held out: {', '.join(rm['held_out'])})", "",
                  "| device | preset | epochs (validation) | validation stopped by | fit s | baseline weight | held-out MSE | vs average activity | mean r |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['device']} | {r['preset']} | {r['epochs']} ({r['validation_epochs']}) | {r['validation_stopped_by']} | {r['fit_s']:.1f} | "
                  f"{r['baseline_weight']} | {r['held_out_mse']:.4f} | {r['held_out_mse'] / rm['average_activity_mse'] - 1:+.1%} | "
                  f"{r['held_out_r']:.3f} |" for r in rm["rows"]]
        lines += ["", f"Average activity: {rm['average_activity_mse']:.4f}."]
        if rm["mse_relative_difference"] is not None:
            lines[-1] += f" Held-out MSE, {rm['rows'][0]['device']} vs cpu: {rm['mse_relative_difference']:+.2%}."
    failed = [k for k, v in steps.items() if v["status"] != "ok"]
    for k in failed:
        lines += ["", f"## {k} {steps[k]['status']}", "", "```", steps[k]["error"].strip()[-3000:], "```"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--device", default="cuda", help="cuda (the GPU machine) or cpu (the dry run)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few steps: the CPU dry run")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default $OUT, else ./gpu_check_out)")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--data", type=Path, default=DATA, help="prepared Roadmap bins (--prepare-data)")
    ap.add_argument("--wheels", type=Path, default=WHEELS, help="folder of carried wheels")
    ap.add_argument("--budget", type=float, help="seconds the whole run should take (default 450; quick 120): "
                    "the Roadmap fits shorten their time limits to end inside it")
    ap.add_argument("--prepare-data", type=Path, metavar="DIR", help="write the Roadmap bins the check needs to DIR and stop")
    ap.add_argument("--bins", type=int, default=200_000, help="bins --prepare-data keeps (default 200,000)")
    ap.add_argument("--source", type=Path, help="Roadmap folder --prepare-data reads (default ../shared/data/roadmap_pilot)")
    args = ap.parse_args(argv)
    if args.prepare_data:
        prepare_data(args.prepare_data, args.bins, args.source)
        return 0
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown steps {unknown}; choose from {list(STEPS)}")
    out = args.out or Path(os.environ.get("OUT") or "gpu_check_out")
    report = Report(out, args)
    size = SIZES["quick" if args.quick else "full"]
    report.data["sizes"] = size
    sys.path.insert(0, str(REPO))
    if args.quick:  # the dry run shares a small CPU: one thread avoids oversubscription stalls
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    t0 = time.perf_counter()
    deadline = t0 + (args.budget or size["budget"])
    try:
        _run_steps(report, steps, args, size, out, tmp, deadline)
    except KeyboardInterrupt:
        print("stopped by SIGINT: the steps not run are not in the report", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        report.data["total_seconds"] = round(time.perf_counter() - t0, 1)
        report.write()
    print(f"results in {out}: {'all steps ok' if not report.failed else 'FAILED: ' + ', '.join(report.failed)} "
          f"({report.data['total_seconds']} s)")
    return 1 if report.failed or set(steps) - set(report.data["steps"]) else 0


def _run_steps(report, steps, args, size, out, tmp, deadline):
    """The chosen steps in order; install first, since the others import what it provides."""
    calls = {"install": (step_install, args.wheels), "environment": (step_environment, args.device, out),
             "cuda_tests": (step_cuda_tests, args.device, out, args.quick, size["test_timeout"]),
             "throughput": (step_throughput, args.device, size), "profile": (step_profile, args.device, size, out),
             "stage2": (step_stage2, args.device, size, tmp),
             "roadmap": (step_roadmap, args.device, size, tmp, args.data, deadline)}
    if "install" not in steps:
        os.environ.update(_env_with_paths())
    for name in STEPS:
        if name in steps:
            report.run(name, *calls[name])


if __name__ == "__main__":
    sys.exit(main())
