"""Validation on held-out whole tracks (issue 13): which tracks are held out, the best epoch kept,
refit on everything, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import epitensor as et
from epitensor.model.validation import choose_validation_tracks, validation_positions

torch.set_num_threads(2)


def test_a_full_square_gives_a_latin_square():
    pairs = [(b, a) for b in ("E003", "E017", "E065", "E116", "E117") for a in ("K4me3", "K27me3", "K36me3", "K9me3", "K4me1")]
    held = choose_validation_tracks(pairs, 5, seed=0)
    assert len(held) == 5
    assert len({b for b, _ in held}) == 5 and len({a for _, a in held}) == 5
    assert held == choose_validation_tracks(pairs, 5, seed=0)
    assert held != choose_validation_tracks(pairs, 5, seed=1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5)), min_size=1, max_size=40, unique=True),
       st.integers(0, 12), st.integers(0, 3))
def test_held_out_tracks_always_leave_their_biosample_and_assay_training_tracks(cells, n, seed):
    pairs = [(f"b{i}", f"a{j}") for i, j in cells]
    held = choose_validation_tracks(pairs, n, seed=seed)
    rest = [p for p in pairs if p not in held]
    assert len(held) <= n and len(set(held)) == len(held) and set(held) <= set(pairs)
    assert {b for b, _ in pairs} == {b for b, _ in rest}
    assert {a for _, a in pairs} == {a for _, a in rest}
    if len(held) < n:  # no further track could be held out under the rule
        left_b = {b: sum(1 for x, _ in rest if x == b) for b, _ in rest}
        left_a = {a: sum(1 for _, x in rest if x == a) for _, a in rest}
        assert all(left_b[b] == 1 or left_a[a] == 1 for b, a in rest)


@pytest.fixture
def ds(tmp_path):
    return et.datasets.synthetic(tmp_path / "v.zarr", n_biosamples=6, n_assays=4, n_positions=4_000, missing=0.3, seed=3)


def small_model(ds, **options):
    return et.Avocado(ds, preset="paper", seed=0, n_nodes=32, n_layers=1, batch_size=1_000,
                      n_25bp_factors=16, n_250bp_factors=8, n_5kbp_factors=4, **options)


def held_out_mse(model, positions):
    pred = model.predict(*model.indices(model.validation_tracks), positions)
    return float(((pred - model.read_tracks(model.validation_tracks, positions)) ** 2).mean())


def test_fit_keeps_the_epoch_that_predicts_the_held_out_tracks_best(ds, device):
    model = small_model(ds, patience=2, device=device)
    hist = model.fit(epochs=60, validation_tracks=3, progress=False)
    held = model.validation_tracks
    assert len(held) == 3 and not set(held) & set(model.training_tracks)
    assert set(held) | set(model.training_tracks) == set(model.observed_tracks())
    best = int(hist.val_mse.to_numpy().argmin())
    assert len(hist) == best + 1 + 2  # stopped after `patience` epochs without improvement
    # the weights kept are those of the best epoch: their held-out MSE is its val_mse
    assert held_out_mse(model, validation_positions(np.arange(4_000))) == pytest.approx(hist.val_mse.min(), rel=1e-5)


def test_validation_scores_the_imputation_with_the_baseline_blend(ds):
    model = small_model(ds, patience=50, baseline_weight=0.5)
    hist = model.fit(epochs=3, validation_tracks=2, progress=False)
    assert held_out_mse(model, np.arange(4_000)) == pytest.approx(hist.val_mse.iloc[-1], rel=1e-5)


def test_refit_trains_a_fresh_model_on_every_track_for_the_chosen_epochs(ds, tmp_path):
    model = small_model(ds, patience=2, refit=True)
    hist = model.fit(epochs=40, validation_tracks=2, progress=False)
    val = hist[hist.phase == "validation"]
    again = hist[hist.phase == "refit"]
    assert len(again) == int(val.val_mse.to_numpy().argmin()) + 1
    assert model.validation_tracks == [] and set(model.training_tracks) == set(model.observed_tracks())
    assert "val_mse" not in again or again.val_mse.isna().all()
    assert len(model.history) == len(hist)
    model.save(tmp_path / "m")
    loaded = et.Avocado.load(tmp_path / "m", ds)
    assert loaded.training_tracks == model.training_tracks and loaded.validation_tracks == []


def test_validation_tracks_survive_save_and_load(ds, tmp_path):
    model = small_model(ds, validation_tracks=2)
    model.fit(epochs=1, progress=False)
    model.save(tmp_path / "m")
    assert et.Avocado.load(tmp_path / "m", ds).validation_tracks == model.validation_tracks


def test_explicit_validation_tracks_are_checked(ds):
    model = small_model(ds)
    observed = model.observed_tracks()
    biosample = observed[0][0]
    all_of_it = [p for p in observed if p[0] == biosample]
    with pytest.raises(et.ModelError, match=f"biosample\\(s\\) \\['{biosample}'\\]"):
        model.fit(epochs=1, validation_tracks=all_of_it, progress=False)
    missing = next((b, a) for b in ds.biosample.values for a in ds.assay.values if (str(b), str(a)) not in observed)
    with pytest.raises(et.ModelError, match="not training tracks"):
        model.fit(epochs=1, validation_tracks=[missing], progress=False)
    with pytest.raises(et.ModelError, match="validation_tracks"):
        small_model(ds, validation_tracks=-1)
    with pytest.raises(et.ModelError, match="patience"):
        small_model(ds, patience=0)
    hist = model.fit(epochs=2, validation_tracks=[observed[1]], progress=False)
    assert model.validation_tracks == [tuple(map(str, observed[1]))] and "val_mse" in hist


# ---------------------------------------------------------------------------- preset="auto"
def test_auto_preset_choice_is_deterministic_and_stated(ds, capsys, tmp_path):
    model = et.Avocado(ds, seed=0, n_nodes=16, batch_size=1_000)
    line = capsys.readouterr().out.strip()
    n_tracks = int(ds.observed.sum())
    assert line.startswith("Avocado preset 'auto' -> small:") and f"{n_tracks} observed tracks" in line
    assert model.config.preset == "auto" and model.config.auto_choice in line
    assert et.Avocado(ds, seed=0, n_nodes=16, batch_size=1_000).config == model.config
    c = model.config
    assert (c.validation_tracks, c.patience, c.refit, c.validation_fraction, c.n_nodes, c.tune_baseline_weight) == (
        min(6, n_tracks // 5), 3, not c.cross_assay, 0.0, 16, True)
    assert c.cross_assay == (ds.sizes["biosample"] * ds.sizes["assay"] <= 100)
    model.fit(epochs=2, progress=False)
    model.save(tmp_path / "m")
    capsys.readouterr()
    loaded = et.Avocado.load(tmp_path / "m", ds)
    assert loaded.config == model.config and capsys.readouterr().out == ""


def test_auto_chooses_paper_for_a_well_covered_compendium_and_paper_stays_exact():
    from epitensor.model.config import AvocadoConfig, auto_preset

    base, overrides, reason = auto_preset(400, 84, 3_814)  # ENCODE2018-Core's shape
    assert base == "paper" and overrides == {"validation_tracks": 20, "patience": 5} and "published" in reason
    assert auto_preset(5, 5, 20) == auto_preset(5, 5, 20)
    paper = AvocadoConfig.from_preset("paper")
    assert paper == AvocadoConfig() and paper.validation_tracks == 0 and paper.patience is None and not paper.refit
    with pytest.raises(et.ModelError, match="auto"):
        AvocadoConfig.from_preset("fast")


def test_tuned_baseline_weight_minimises_the_held_out_mse(ds):
    model = small_model(ds, patience=50, baseline_weight=0.5, tune_baseline_weight=True)
    model.fit(epochs=4, validation_tracks=3, progress=False)
    w = model.config.baseline_weight
    assert 0.0 <= w <= 1.0 and w != 0.5
    positions = validation_positions(np.arange(4_000))
    at = {}
    for value in (w, min(1.0, w + 0.1), max(0.0, w - 0.1)):
        model.config.baseline_weight = value
        at[value] = held_out_mse(model, positions)
    assert at[w] <= min(at.values()) + 1e-9
    with pytest.raises(et.ModelError, match="average activity"):
        small_model(ds, tune_baseline_weight=True).fit(epochs=1, validation_tracks=1, progress=False)
