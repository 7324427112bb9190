"""The prepared GPU check (benchmarks/gpu_check.py), dry-run end to end on CPU with --quick."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA

import epitensor as et
from epitensor.datasets.roadmap import ASSAYS, BIOSAMPLES

SCRIPT = REPO / "benchmarks" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)
STEPS = ["install", "environment", "cuda_tests", "throughput", "profile", "stage2", "roadmap"]


def _run(*args, timeout=300) -> subprocess.CompletedProcess:
    source_tree = str(Path(et.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": source_tree + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OUT", None)
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def roadmap_bins(tmp_path, monkeypatch) -> Path:
    """The 25 Roadmap tracks cut to 8,000 bins by ``--prepare-data`` (random tracks of the same names
    when ../shared is absent)."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # prepare_data puts the repository on it
    folder, source = tmp_path / "bins", SHARED_DATA / "roadmap_pilot"
    if not source.is_dir():
        source = tmp_path / "random"
        source.mkdir()
        rng = np.random.default_rng(0)
        for b in BIOSAMPLES:
            for a in ASSAYS:
                np.savez_compressed(source / f"{b}.{a}.pilot.arcsinh.npz", arr_0=rng.gamma(1.0, 0.5, 9_000).astype(np.float32))
    gpu_check.prepare_data(folder, 8_000, source)
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 25 and all(np.load(f)["arr_0"].shape == (8_000,) for f in files)
    return folder


@pytest.mark.slow
def test_the_cpu_dry_run_passes_every_step_with_plausible_numbers(tmp_path, roadmap_bins):
    out = tmp_path / "out"
    proc = _run("--device", "cpu", "--quick", "--out", out, "--data", roadmap_bins, "--wheels", tmp_path / "no-wheels")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["steps"]) == STEPS
    assert {k: v["status"] for k, v in report["steps"].items()} == dict.fromkeys(STEPS, "ok")
    res = {k: v["result"] for k, v in report["steps"].items()}
    assert res["install"]["versions"]["zarr"] and res["environment"]["cuda_available"] in (True, False)
    tests = res["cuda_tests"]  # on CPU the CUDA tests are collected and skipped, none fails
    assert tests["failed"] == tests["error"] == 0 and tests["passed"] + tests["skipped"] >= 2
    thr = res["throughput"]
    assert thr["peak_flops"] > 1e8 and len(thr["rows"]) == 8
    assert {r["setting"] for r in thr["rows"]} == {"auto", "fp16 data off", "bf16 autocast off", "projection off"}
    for r in thr["rows"]:
        assert r["train_samples_per_s"] > 0 and r["predictions_per_s"] > 0 and 0 < r["train_fraction_of_peak"] < 10
        assert r["fp16_data"] is False and r["autocast"] is False  # CPU's auto
        assert r["projection"] is (r["setting"] != "projection off")  # auto projects on CPU too
    prof = res["profile"]
    assert len(prof["top"]) > 3 and all(e["self_ms"] >= 0 for e in prof["top"]) and 0 < sum(e["share"] for e in prof["top"]) <= 1 + 1e-9
    assert "Self CPU" in (out / "profile_paper.txt").read_text()
    s2 = res["stage2"]
    sizes = report["sizes"]
    # the device worker at two epoch counts (imputing every unobserved pair, then the CPU's few), the CPU worker
    assert [(r["blocks"], r["epochs"], r["pairs_imputed"]) for r in s2["rows"]] == [
        (sizes["stage2_blocks"], sizes["stage2_epochs"], 80),
        (sizes["stage2_blocks"], sizes["stage2_long_epochs"], sizes["stage2_cpu_pairs"]),
        (sizes["stage2_cpu_blocks"], sizes["stage2_epochs"], sizes["stage2_cpu_pairs"])]  # 16 x 10, half unobserved
    for r in s2["rows"]:
        assert r["fit_blocks_per_s"] > 0 and r["train_samples_per_s"] > 0 and math.isfinite(r["first_block_loss"])
        assert r["predictions"] == (r["pairs_imputed"] or 0) * r["blocks"] * r["block_bins"]
    assert s2["fit_blocks_per_s_ratio"] > 0 and s2["impute_predictions_per_s_ratio"] > 0
    rm = res["roadmap"]
    assert rm["bins"] == 8_000 and len(rm["held_out"]) == 5 and [r["device"] for r in rm["rows"]] == ["cpu"]
    assert 0 < rm["rows"][0]["held_out_mse"] < 10 * rm["average_activity_mse"]
    md = (out / "gpu_check.md").read_text()
    assert "| throughput | ok | " in md and "train samples/s" in md and "held-out MSE" in md
    assert (out / "nvidia-smi.txt").exists() and (out / "cuda_tests.txt").exists()


def test_a_failing_step_is_recorded_with_its_traceback_and_the_exit_status_is_nonzero(tmp_path):
    out = tmp_path / "out"
    proc = _run("--device", "cpu", "--quick", "--out", out, "--steps", "install,roadmap", "--data", tmp_path / "absent",
                "--wheels", tmp_path / "no-wheels", timeout=120)
    assert proc.returncode == 1
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert steps["install"]["status"] == "ok" and steps["roadmap"]["status"] == "failed"
    assert "Traceback" in steps["roadmap"]["error"] and "--prepare-data" in steps["roadmap"]["error"]
    assert "## roadmap failed" in (out / "gpu_check.md").read_text()
