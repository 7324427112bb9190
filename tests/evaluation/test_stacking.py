"""The cross-assay regressor and its stacking with the average activity (epitensor.evaluation.stacking)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import epitensor as et
from epitensor.evaluation import cross_assay, stacked_baseline

FAST = {"n_train": 3_000, "max_iter": 60, "threads": 1}


def planted(n_biosamples=6, n=5_000, seed=0, hidden=(("S0", "C"),)):
    """Marks A and B differ between biosamples; C is the same nonlinear function of them everywhere."""
    rng = np.random.default_rng(seed)
    kernel = np.hanning(41) / np.hanning(41).sum()
    values = np.zeros((n_biosamples, 3, n), dtype=np.float32)
    for b in range(n_biosamples):
        a = np.convolve(rng.gamma(0.5, 2.0, n), kernel, mode="same")
        bb = np.convolve(rng.gamma(0.5, 2.0, n), kernel, mode="same")
        values[b, 0], values[b, 1] = a, bb
        values[b, 2] = np.tanh(a) * 2 + 0.5 * bb**2 + rng.normal(0, 0.05, n)
    biosamples = [f"S{b}" for b in range(n_biosamples)]
    observed = np.ones((n_biosamples, 3), dtype=bool)
    for b, a in hidden:
        observed[biosamples.index(b), "ABC".index(a)] = False
    return xr.DataArray(values, dims=("biosample", "assay", "position"),
                        coords={"biosample": biosamples, "assay": list("ABC"), "position": np.arange(n),
                                "observed": (("biosample", "assay"), observed)}, name="signal")


def mse(x, y):
    return float(np.mean((np.asarray(x) - np.asarray(y)) ** 2))


def test_the_regressor_learns_what_the_average_cannot():
    signal = planted()
    truth = signal.sel(biosample="S0", assay="C").values
    pred = cross_assay(signal, [("S0", "C")], **FAST)
    average = et.baselines.average_activity(signal).sel(biosample="S0", assay="C").values
    assert pred.dims == ("biosample", "assay", "position") and pred.name == "cross_assay"
    assert mse(pred.sel(biosample="S0", assay="C"), truth) < 0.3 * mse(average, truth)
    assert bool(pred.sel(biosample="S1").isnull().all())  # only the asked track is predicted


def test_a_hidden_track_never_enters_its_prediction():
    signal = planted()
    pred = cross_assay(signal, [("S0", "C")], **FAST)
    changed = signal.copy(data=signal.values.copy())
    changed.loc[{"biosample": "S0", "assay": "C"}] = 100.0  # the hidden truth
    again = cross_assay(changed, [("S0", "C")], **FAST)
    np.testing.assert_array_equal(pred.values, again.values)


def test_an_observed_track_is_left_out_of_its_own_prediction():
    signal = planted(hidden=())
    pred = cross_assay(signal, [("S0", "C")], **FAST)
    without = signal.copy(data=signal.values.copy())
    without.loc[{"biosample": "S0", "assay": "C"}] = 100.0
    np.testing.assert_array_equal(pred.values, cross_assay(without, [("S0", "C")], **FAST).values)


def test_the_thread_count_does_not_change_the_predictions():
    signal = planted()
    one = cross_assay(signal, [("S0", "C")], **FAST)
    np.testing.assert_array_equal(one.values, cross_assay(signal, [("S0", "C")], **{**FAST, "threads": 2}).values)
    np.testing.assert_array_equal(one.values, cross_assay(signal, [("S0", "C")], **{**FAST, "threads": None}).values)


def test_labels_not_positions_choose_the_tracks():
    signal = planted()
    pred = cross_assay(signal, [("S0", "C")], **FAST)
    shuffled = signal.isel(biosample=[3, 0, 5, 1, 4, 2], assay=[2, 0, 1])
    again = cross_assay(shuffled, [("S0", "C")], **FAST)
    xr.testing.assert_equal(again.sel(biosample="S0", assay="C"), pred.sel(biosample="S0", assay="C"))


def test_stacking_weights_come_from_validation_tracks_only():
    signal = planted()
    out = stacked_baseline(signal, [("S0", "C")], validation_tracks=3, **FAST)
    held = [tuple(p) for p in out.attrs["validation_tracks"]]
    assert len(held) == 3 and ("S0", "C") not in held
    assert all(signal.observed.sel(biosample=b, assay=a) for b, a in held)
    w = out.attrs["stack_weights"]
    assert list(w) == ["S0"] and w["S0"]["cross_assay"] > w["S0"]["average_activity"]  # C is a function of A, B
    truth = signal.sel(biosample="S0", assay="C").values
    average = et.baselines.average_activity(signal).sel(biosample="S0", assay="C").values
    assert mse(out.sel(biosample="S0", assay="C"), truth) < 0.5 * mse(average, truth)
    changed = signal.copy(data=signal.values.copy())
    changed.loc[{"biosample": "S0", "assay": "C"}] = -50.0
    again = stacked_baseline(changed, [("S0", "C")], validation_tracks=3, **FAST)
    assert again.attrs["stack_weights"] == w
    np.testing.assert_array_equal(again.values, out.values)


def test_explicit_validation_tracks_and_their_blend():
    signal = planted()
    out = stacked_baseline(signal, [("S0", "C")], validation_tracks=[("S1", "C"), ("S2", "A")], **FAST)
    assert out.attrs["validation_tracks"] == [["S1", "C"], ["S2", "A"]]
    w = out.attrs["stack_weights"]["S0"]  # S0 has no validation track of its own: the pooled weights
    regressed = cross_assay(signal, [("S0", "C")], **FAST).sel(biosample="S0", assay="C").values
    average = et.baselines.average_activity(signal).sel(biosample="S0", assay="C").values
    expected = w["average_activity"] * average + w["cross_assay"] * regressed + w["intercept"]
    np.testing.assert_allclose(out.sel(biosample="S0", assay="C").values, expected, rtol=1e-5, atol=1e-5)


def test_leave_one_out_weights_per_biosample_equal_their_least_squares():
    signal = planted(n_biosamples=5, hidden=(("S0", "C"), ("S3", "B")))
    out = stacked_baseline(signal, [("S0", "C"), ("S3", "B")], **FAST)
    held = [tuple(p) for p in out.attrs["validation_tracks"]]
    observed = [(b, a) for b in signal.biosample.values for a in "ABC" if signal.observed.sel(biosample=b, assay=a)]
    assert sorted(held) == sorted(observed)  # every training track: each keeps its biosample and assay others
    average = et.baselines.average_activity(signal)  # an observed track's own value is never in its average
    for biosample in ("S0", "S3"):
        own = [p for p in held if p[0] == biosample]
        regressed = cross_assay(signal, own, **FAST)  # each leaves itself out, as leave-one-out does
        X = np.concatenate([np.stack([average.sel(biosample=b, assay=a).values,
                                      regressed.sel(biosample=b, assay=a).values, np.ones(signal.sizes["position"])], 1)
                            for b, a in own])
        y = np.concatenate([signal.sel(biosample=b, assay=a).values for b, a in own])
        expected = np.linalg.lstsq(X.astype(np.float64), y.astype(np.float64), rcond=None)[0]
        got = out.attrs["stack_weights"][biosample]
        np.testing.assert_allclose([got["average_activity"], got["cross_assay"], got["intercept"]], expected,
                                   rtol=1e-4, atol=1e-4)
    assert out.attrs["stack_weights"]["S0"] != out.attrs["stack_weights"]["S3"]
    pooled = stacked_baseline(signal, [("S0", "C"), ("S3", "B")], weights="pooled", **FAST)
    assert pooled.attrs["stack_weights"]["S0"] == pooled.attrs["stack_weights"]["S3"] == out.attrs["pooled_weights"]
    np.testing.assert_array_equal(pooled.sel(biosample="S0", assay="A").values, np.nan * np.ones(5_000))


def test_stacking_follows_labels_not_the_objects_order():
    signal = planted(n_biosamples=5, hidden=(("S0", "C"), ("S3", "B")))
    pairs = [("S0", "C"), ("S3", "B")]
    for options in ({}, {"validation_tracks": 3}):
        out = stacked_baseline(signal, pairs, **options, **FAST)
        again = stacked_baseline(signal.isel(biosample=[3, 0, 4, 1, 2], assay=[2, 0, 1]), pairs, **options, **FAST)
        assert again.attrs["stack_weights"] == out.attrs["stack_weights"]
        assert again.attrs["validation_tracks"] == out.attrs["validation_tracks"]
        xr.testing.assert_equal(again.sel(biosample="S0", assay="C"), out.sel(biosample="S0", assay="C"))


def test_leave_one_out_never_sees_the_imputed_tracks():
    observed = planted(hidden=())  # an observed track being imputed is not a validation track
    assert ["S0", "C"] not in stacked_baseline(observed, [("S0", "C")], **FAST).attrs["validation_tracks"]
    hidden = planted()  # a hidden one is read by nothing
    moved = hidden.copy(data=hidden.values.copy())
    moved.loc[{"biosample": "S0", "assay": "C"}] = 100.0
    np.testing.assert_array_equal(stacked_baseline(moved, [("S0", "C")], **FAST).values,
                                  stacked_baseline(hidden, [("S0", "C")], **FAST).values)


def test_on_a_store_signal_region():
    ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=8_000, missing=0.0, seed=2)
    region = ds.signal.epi.region("synthetic:0-100kb")
    pred = cross_assay(region, [("B01", "H3K27ac")], **FAST)
    assert pred.sizes["position"] == region.sizes["position"]
    np.testing.assert_array_equal(pred.position.values, region.position.values)
    assert np.isfinite(pred.sel(biosample="B01", assay="H3K27ac").values).all()


def test_bad_tracks_are_named():
    signal = planted()
    with pytest.raises(et.LabelError, match="'S9'"):
        cross_assay(signal, [("S9", "C")], **FAST)
    lonely = planted(hidden=[(f"S{b}", "C") for b in range(1, 6)])
    with pytest.raises(et.LabelError, match="nothing to learn it from"):
        cross_assay(lonely, [("S0", "C")], **FAST)
    with pytest.raises(et.ArgumentError, match="'biosample' or 'pooled'"):
        stacked_baseline(signal, [("S0", "C")], weights="assay", **FAST)
    with pytest.raises(et.ArgumentError, match="'leave-one-out'"):
        stacked_baseline(signal, [("S0", "C")], validation_tracks="all", **FAST)
    with pytest.raises(et.ModelError, match="threads must be an integer >= 1"):
        cross_assay(signal, [("S0", "C")], **{**FAST, "threads": 0})


def test_windows_step_over_a_gap_of_nan_bins():
    """A store's bins between two contigs are NaN: the windowed features after them are the same as
    those of the stretch after the gap on its own (a running mean would make every later one NaN)."""
    from epitensor.evaluation.stacking import WINDOWS, TrackTable

    signal = planted()
    gapped = signal.copy(data=signal.values.copy())
    gapped[:, :, 2_000:2_050] = np.nan
    mask = np.ones((6, 3), dtype=bool)
    whole = TrackTable.from_values(gapped.values, mask, gapped.biosample.values, gapped.assay.values)
    after = TrackTable.from_values(np.ascontiguousarray(gapped.values[:, :, 2_050:]), mask, gapped.biosample.values,
                                   gapped.assay.values)
    edge = max(WINDOWS)  # the first bins after the gap see fewer values than the stretch's own edge mode
    for kind in ("signal", "peaks"):
        got, _ = whole.features(0, 2, leave_out=(0,), kind=kind)
        alone, _ = after.features(0, 2, leave_out=(0,), kind=kind)
        assert np.isfinite(got[2_050:]).all() and np.isfinite(got[:2_000]).all()
        np.testing.assert_allclose(got[2_050 + edge:], alone[edge:], rtol=1e-5, atol=1e-5)
        assert np.isnan(got[2_000:2_050, 0]).all()  # the gap's own values stay missing
