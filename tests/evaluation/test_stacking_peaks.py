"""The cross-assay regressor on peak calls (``kind="peaks"`` of epitensor.evaluation.cross_assay)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import average_precision_score

import epitensor as et
from epitensor.evaluation import cross_assay, stacked_baseline
from epitensor.evaluation.stacking import NEAR_PEAK_BINS, training_bins

FAST = {"n_train": 4_000, "max_iter": 60, "threads": 1}


def planted_peaks(n_lines=6, n=30_000, sites=400, seed=0):
    """Peak coverage (0/1) of DNase and a TF in ``n_lines`` lines. The TF binds its motif sites (the same
    in every line) where the line's chromatin is open there; each line opens its own half of them, so
    the TF's average over the other lines cannot tell which sites are bound in a line, and the line's
    DNase can. Line L0's TF is hidden."""
    rng = np.random.default_rng(seed)
    centres = np.sort(rng.choice(np.arange(50, n - 50, 60), sites, replace=False))
    motif = rng.random(sites) < 0.6
    values = np.zeros((n_lines, 2, n), dtype=np.float32)
    for line in range(n_lines):
        open_ = rng.random(sites) < 0.5
        for c, is_open, has_motif in zip(centres, open_, motif):
            if is_open:
                values[line, 0, c - 8: c + 8] = 1  # a DNase peak of 16 bins
                if has_motif:
                    values[line, 1, c - 4: c + 4] = 1  # the TF's narrower peak inside it
    lines = [f"L{i}" for i in range(n_lines)]
    observed = np.ones((n_lines, 2), dtype=bool)
    observed[0, 1] = False
    return xr.DataArray(values, dims=("biosample", "assay", "position"),
                        coords={"biosample": lines, "assay": ["DNase-seq", "TF"], "position": np.arange(n),
                                "observed": (("biosample", "assay"), observed)}, name="signal")


def ap(truth, values):
    return float(average_precision_score(np.asarray(truth) > 0.5, np.asarray(values)))


def test_peaks_kind_finds_the_bound_sites_the_average_cannot():
    signal = planted_peaks()
    truth = signal.sel(biosample="L0", assay="TF").values
    average = et.baselines.average_activity(signal).sel(biosample="L0", assay="TF").values
    pred = cross_assay(signal, [("L0", "TF")], kind="peaks", **FAST).sel(biosample="L0", assay="TF").values
    assert ap(truth, pred) > ap(truth, average) + 0.3
    assert ap(truth, pred) > 0.9
    assert np.all(np.isfinite(pred)) and -0.02 < pred.min() and pred.max() < 1.02  # the coverage itself, not a departure


def test_peaks_kind_never_reads_the_hidden_track():
    signal = planted_peaks()
    pred = cross_assay(signal, [("L0", "TF")], kind="peaks", **FAST)
    moved = signal.copy(data=signal.values.copy())
    moved.loc[{"biosample": "L0", "assay": "TF"}] = 1.0  # the hidden truth, everywhere a peak
    np.testing.assert_array_equal(pred.values, cross_assay(moved, [("L0", "TF")], kind="peaks", **FAST).values)


def test_peaks_kind_follows_labels_and_stacks():
    signal = planted_peaks()
    pred = cross_assay(signal, [("L0", "TF")], kind="peaks", **FAST)
    shuffled = signal.isel(biosample=[3, 0, 5, 1, 4, 2], assay=[1, 0])
    xr.testing.assert_equal(cross_assay(shuffled, [("L0", "TF")], kind="peaks", **FAST).sel(biosample="L0", assay="TF"),
                            pred.sel(biosample="L0", assay="TF"))
    default = cross_assay(signal, [("L0", "TF")], **FAST)
    np.testing.assert_array_equal(default.values, cross_assay(signal, [("L0", "TF")], kind="signal", **FAST).values)
    assert not np.array_equal(default.values, pred.values, equal_nan=True)
    stacked = stacked_baseline(signal, [("L0", "TF")], validation_tracks=[("L1", "TF"), ("L2", "TF")], kind="peaks", **FAST)
    w = stacked.attrs["stack_weights"]["L0"]
    assert w["cross_assay"] > w["average_activity"]  # the regressor knows which sites are open


def test_training_bins_draw_half_near_peaks_and_weigh_back_to_the_genome():
    rng = np.random.default_rng(1)
    values = np.zeros(100_000, dtype=np.float32)
    values[rng.choice(100_000, 50, replace=False)] = 1.0  # isolated one-bin peaks
    average = np.zeros_like(values)
    average[:200] = 0.5
    values[-10:] = np.nan  # not measured: never drawn
    rows, weights = training_bins(values, average, 5_000, "peaks", np.random.default_rng(0))
    assert len(rows) == len(np.unique(rows)) == 5_000 and np.isfinite(values[rows]).all()
    peak = np.flatnonzero((np.nan_to_num(values) > 0) | (average > 0))
    distance = np.min(np.abs(rows[:, None] - peak[None, :]), axis=1)
    near = distance <= NEAR_PEAK_BINS
    assert near.sum() == 2_500  # half of the draw, against about 5% of the genome
    n_near = int(sum(np.any(np.abs(i - peak) <= NEAR_PEAK_BINS) for i in np.flatnonzero(np.isfinite(values))))
    assert weights[near].sum() == pytest.approx(n_near)  # each half stands for its share of the positions
    assert weights.sum() == pytest.approx(np.isfinite(values).sum())
    uniform, ones = training_bins(values, average, 5_000, "signal", np.random.default_rng(0))
    assert (ones == 1).all() and np.mean(np.min(np.abs(uniform[:, None] - peak[None, :]), axis=1) <= NEAR_PEAK_BINS) < 0.2
    few, w = training_bins(values[:3_000], average[:3_000], 5_000, "peaks", np.random.default_rng(0))
    assert sorted(few) == list(range(3_000)) and (w == 1).all()  # fewer positions than asked: every one, weight 1


def test_a_bad_kind_is_named():
    signal = planted_peaks()
    with pytest.raises(et.ArgumentError, match="'signal'.*'peaks'.*'narrowPeak'"):
        cross_assay(signal, [("L0", "TF")], kind="narrowPeak", **FAST)
    with pytest.raises(et.ArgumentError, match="stacked_baseline: kind"):
        stacked_baseline(signal, [("L0", "TF")], kind="bed", **FAST)
