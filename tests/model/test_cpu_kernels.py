"""The CPU kernel paths (fp32, oneDNN fp32, bf16 autocast): the probe's choice, agreement with
fp32 within each path's documented tolerance, and forcing each path through the public API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import epitensor as et
from epitensor.exceptions import ModelError
from epitensor.model import AvocadoConfig, AvocadoModule, kernels
from epitensor.model.kernels import (
    PATHS,
    TOLERANCE,
    choose_path,
    kernel_context,
    onednn_available,
    probe,
)
from epitensor.model.training import predict_pairs

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear kernel")


@pytest.fixture
def auto_kernels(monkeypatch, tmp_path):
    """The "auto" path as users get it: no override, a fresh cache folder, an empty memo."""
    monkeypatch.delenv(kernels.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("EPITENSOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_memo", {})
    return tmp_path / "cache" / "cpu_kernels.json"


# ---------------------------------------------------------------------- the choice
timings_strategy = st.dictionaries(st.sampled_from(PATHS[1:]), st.floats(1e-4, 10.0), max_size=2).flatmap(
    lambda others: st.floats(1e-4, 10.0).map(lambda fp32: {"fp32": fp32, **others}))


@settings(max_examples=200, deadline=None)
@given(timings_strategy)
def test_choice_is_a_pure_function_of_the_timings(timings):
    chosen = choose_path(timings)
    assert chosen == choose_path(dict(reversed(list(timings.items()))))  # order of measurement is irrelevant
    fast = {p: t for p, t in timings.items() if p != "fp32" and t <= kernels.MARGIN * timings["fp32"]}
    if not fast:
        assert chosen == "fp32"
    else:
        assert timings[chosen] == min(fast.values())


def test_choice_keeps_fp32_unless_another_path_is_clearly_faster():
    assert choose_path({"fp32": 1.0, "onednn": 0.91}) == "fp32"
    assert choose_path({"fp32": 1.0, "onednn": 0.5}) == "onednn"
    assert choose_path({"fp32": 1.0, "onednn": 0.5, "bf16": 0.2}) == "bf16"
    with pytest.raises(ModelError, match="must include fp32"):
        choose_path({"onednn": 1.0})


def test_probe_measures_once_then_reads_its_cache(auto_kernels, monkeypatch):
    calls = []

    def fake_measure(n_input, n_nodes, n_layers, paths=None, repeats=2):
        calls.append((n_input, n_nodes, n_layers))
        return {"fp32": 0.010, "onednn": 0.006}

    monkeypatch.setattr(kernels, "measure_paths", fake_measure)
    first = probe(398, 256, 2)
    assert first.path == "onednn" and "onednn 6.0 ms" in first.reason and len(calls) == 1
    assert probe(398, 256, 2) == first and len(calls) == 1  # memo
    monkeypatch.setattr(kernels, "_memo", {})
    again = probe(398, 256, 2)  # another process: the cache file
    assert again.path == "onednn" and again.reason.startswith("cached") and len(calls) == 1
    saved = json.loads(auto_kernels.read_text())
    (entry,) = saved.values()
    assert entry["chosen"] == "onednn" and entry["timings"] == {"fp32": 0.010, "onednn": 0.006}
    probe(398, 512, 2)  # another shape is measured on its own
    assert len(calls) == 2


def test_a_damaged_cache_is_measured_again(auto_kernels, monkeypatch):
    auto_kernels.parent.mkdir(parents=True)
    auto_kernels.write_text("{not json")
    monkeypatch.setattr(kernels, "measure_paths", lambda *a, **k: {"fp32": 0.01, "onednn": 0.02})
    assert probe(398, 256, 2).path == "fp32"
    assert len(json.loads(auto_kernels.read_text())) == 1


def test_the_real_probe_is_short_and_names_the_machine(auto_kernels):
    choice = probe(398, 256, 2)
    assert choice.path in PATHS and set(choice.timings) >= {"fp32"}
    assert all(0 < t < 1.0 for t in choice.timings.values())
    assert kernels.cpu_description()["model"] in choice.reason
    if not kernels.cpu_description()["bf16_supported"]:
        assert "bf16" not in choice.timings and "bf16 not measured" in choice.reason


# ---------------------------------------------------------------------- numerics of each path
def _module(n_nodes=128, seed=0):
    torch.manual_seed(seed)
    return AvocadoModule(4, 3, (5000, 500, 25), AvocadoConfig(n_nodes=n_nodes, init_scale=0.5)).eval()


def _rows(n=5000):
    p = torch.arange(n)
    return [p, p // 10, p // 200]


@pytest.mark.parametrize("path", [p for p in PATHS if p != "fp32"])
def test_each_path_predicts_as_fp32_within_its_tolerance(path):
    if path == "onednn" and not onednn_available():
        pytest.skip("this torch build has no oneDNN linear kernel")
    module = _module()
    b, a = torch.tensor([0, 1, 3]), torch.tensor([2, 0, 1])
    fp32 = predict_pairs(module, b, a, _rows(), 2**14, "fp32")
    other = predict_pairs(module, b, a, _rows(), 2**14, path)
    scale = float(fp32.abs().max())
    assert scale > 0.1  # a network whose outputs are not all zero
    err = float((other - fp32).abs().max()) / scale
    assert err <= TOLERANCE[path]
    assert path == "bf16" or err < 1e-5  # oneDNN's fp32 is the same arithmetic in another order
    p = torch.arange(300)
    args = (b.repeat(100), a.repeat(100), p, p // 10, p // 200)
    with torch.no_grad():  # the training forward agrees too
        with kernel_context("cpu", path):
            fwd = module(*args)
        assert float((fwd - module(*args)).abs().max()) / scale <= TOLERANCE[path]


@needs_onednn
def test_onednn_gradients_equal_fp32_gradients():
    grads = {}
    for path in ("fp32", "onednn"):
        module = _module().train()
        p = torch.arange(2000)
        b, a = torch.randint(4, (2000,), generator=torch.Generator().manual_seed(1)), torch.zeros(2000, dtype=torch.long)
        with kernel_context("cpu", path):
            loss = (module(b, a, p, p // 10, p // 200) - 1.0).square().mean()
        loss.backward()
        grads[path] = {n: q.grad.clone() for n, q in module.named_parameters() if q.grad is not None}
    assert grads["fp32"].keys() == grads["onednn"].keys() and len(grads["fp32"]) >= 9
    for name, g in grads["fp32"].items():
        np.testing.assert_allclose(grads["onednn"][name].numpy(), g.numpy(), rtol=1e-4,
                                   atol=1e-6 * float(g.abs().max()) + 1e-9, err_msg=name)


# ---------------------------------------------------------------------- forcing, through the public API
@pytest.fixture
def ds(tmp_path):
    return et.datasets.synthetic(tmp_path / "k.zarr", n_biosamples=4, n_assays=3, n_positions=4000, missing=0.3, seed=2)


@pytest.mark.parametrize("path", PATHS)
def test_forcing_each_path_trains_and_reports_it(ds, path, capsys):
    if path == "onednn" and not onednn_available():
        pytest.skip("this torch build has no oneDNN linear kernel")
    model = et.Avocado(ds, preset="paper", n_nodes=64, batch_size=2000, cpu_kernels=path)
    hist = model.fit(epochs=2, progress=True)
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"CPU kernels: {path} (forced by cpu_kernels)" == model.config.kernel_choice
    assert np.isfinite(hist["loss"]).all() and hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    imputed = model.impute(region=f"{model.genome.contigs[0]}:0-25000")
    assert np.isfinite(imputed.values).all()


def test_models_trained_on_onednn_and_on_fp32_agree(ds):
    """Same seed, same data: a model trained on oneDNN imputes as the fp32 one does (within the
    drift of a few steps of a different summation order)."""
    if not onednn_available():
        pytest.skip("this torch build has no oneDNN linear kernel")
    out = {}
    for path in ("fp32", "onednn"):
        model = et.Avocado(ds, preset="paper", n_nodes=64, batch_size=2000, cpu_kernels=path, seed=5)
        model.fit(epochs=2, progress=False)
        out[path] = model.impute(region=f"{model.genome.contigs[0]}:0-25000").values
    np.testing.assert_allclose(out["onednn"], out["fp32"], rtol=1e-3, atol=1e-3)


def test_environment_variable_forces_auto_and_config_beats_it(ds, auto_kernels, monkeypatch):
    monkeypatch.setenv(kernels.ENVIRONMENT_VARIABLE, "bf16")
    model = et.Avocado(ds, preset="paper", n_nodes=64, batch_size=2000)
    model.fit(epochs=1, progress=False)
    assert model.config.kernel_choice == "CPU kernels: bf16 (forced by $EPITENSOR_CPU_KERNELS)"
    model = et.Avocado(ds, preset="paper", n_nodes=64, batch_size=2000, cpu_kernels="fp32")
    model.fit(epochs=1, progress=False)
    assert model.config.kernel_choice == "CPU kernels: fp32 (forced by cpu_kernels)"
    monkeypatch.setenv(kernels.ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ModelError, match=r"\$EPITENSOR_CPU_KERNELS='fast' is not a CPU kernel path"):
        et.Avocado(ds, preset="paper", n_nodes=64).fit(epochs=1, progress=False)


def test_auto_probes_once_and_the_model_records_why(ds, auto_kernels, monkeypatch):
    monkeypatch.setattr(kernels, "measure_paths", lambda *a, **k: {"fp32": 0.02, "onednn": 0.03})
    model = et.Avocado(ds, preset="paper", n_nodes=256, batch_size=2000)
    model.fit(epochs=1, progress=False)
    assert model.config.kernel_choice.startswith("CPU kernels: fp32 (probe on ")
    assert "fp32 20.0 ms, onednn 30.0 ms" in model.config.kernel_choice
    small = et.Avocado(ds, preset="paper", n_nodes=16, batch_size=2000)
    small.fit(epochs=1, progress=False)
    assert "too small for the kernel to matter" in small.config.kernel_choice


def test_contradicting_options_are_refused_with_the_fix(ds):
    with pytest.raises(ModelError, match="cpu_kernels must be 'auto', 'fp32', 'onednn' or 'bf16'"):
        et.Avocado(ds, preset="paper", cpu_kernels="mkl")
    model = et.Avocado(ds, preset="paper", n_nodes=64, autocast=True, cpu_kernels="onednn")
    with pytest.raises(ModelError, match="autocast=True is the bf16 path"):
        model.fit(epochs=1, progress=False)
    model = et.Avocado(ds, preset="paper", n_nodes=64, autocast=False, cpu_kernels="bf16")
    with pytest.raises(ModelError, match="autocast=False was asked for"):
        model.fit(epochs=1, progress=False)
