"""Baselines, folds, cross-validation, QC, next-experiment ranking, reports and figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import epitensor as et
from epitensor.evaluation import fold_coverage, improvement_table, qc, training_view
from epitensor.evaluation.annotations import Annotations
from epitensor.evaluation.report import per_assay


@pytest.fixture
def ds(tmp_path):
    return et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=8, n_assays=4, n_positions=12_000, missing=0.4, seed=11)


# ---------------------------------------------------------------------------- baselines
def test_average_activity_excludes_the_track_itself(ds):
    base = et.baselines.average_activity(ds.signal).compute()
    sig = ds.signal.values
    obs = ds.observed.values
    for b in range(obs.shape[0]):
        for a in range(obs.shape[1]):
            others = [o for o in range(obs.shape[0]) if obs[o, a] and o != b]
            expected = sig[others, a].mean(axis=0) if others else np.full(sig.shape[2], np.nan)
            np.testing.assert_allclose(base.values[b, a], expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert base.dims == ("biosample", "assay", "position")


def test_average_activity_is_lazy_and_honours_train_mask(ds, no_compute):
    train = ds.observed.copy()
    train[0, :] = False
    base = et.baselines.average_activity(ds.signal, train=train)  # builds a graph, computes nothing
    assert base.chunks is not None


def test_average_activity_train_mask_changes_result(ds):
    train = ds.observed.copy(data=ds.observed.values.copy())
    b, a = map(int, np.argwhere(ds.observed.values)[0])
    train[b, a] = False
    base = et.baselines.average_activity(ds.signal, train=train)
    full = et.baselines.average_activity(ds.signal)
    other = next(o for o in range(8) if o != b)
    # for another biosample, dropping (b, a) from training changes its baseline of assay a
    assert not np.allclose(base.values[other, a], full.values[other, a])


def test_most_similar_biosample_copies_the_closest_training_track(ds):
    base = et.baselines.most_similar_biosample(ds.signal).compute()
    dist = et.baselines.biosample_distances(ds.signal).values
    obs = ds.observed.values
    b, a = map(int, np.argwhere(~obs)[0])
    cand = [o for o in range(8) if obs[o, a] and o != b and np.isfinite(dist[b, o])]
    best = cand[int(np.argmin(dist[b, cand]))]
    np.testing.assert_array_equal(base.values[b, a], ds.signal.values[best, a])
    assert base.source_biosample.values[b, a] == ds.biosample.values[best]


# ---------------------------------------------------------------------------- evaluate on a store
def test_evaluate_scores_held_out_tracks_of_a_store(ds):
    base = et.baselines.average_activity(ds.signal)
    scores = et.evaluate(base, ds.held_out, metrics="paper")
    assert len(scores) == int((~ds.observed).sum())  # every hidden track, nothing else
    row = scores.iloc[0]
    t = ds.held_out.sel(biosample=row.biosample, assay=row.assay).values.astype(np.float64)
    p = base.sel(biosample=row.biosample, assay=row.assay).values.astype(np.float64)
    assert row["mseGlobal"] == pytest.approx(((t - p) ** 2).mean(), rel=1e-6)
    # against the observed signal: the observed tracks only; an explicit track list is honoured
    assert len(et.evaluate(base, ds.signal, metrics=["mse"])) == int(ds.observed.sum())
    one = et.evaluate(base, ds.held_out, metrics=["mse"], tracks=[(row.biosample, row.assay)])
    assert one[["biosample", "assay"]].values.tolist() == [[row.biosample, row.assay]]
    # region selection works and scores only the region's bins
    sub = et.evaluate(base.epi.region("synthetic:0-100kb"), ds.held_out.epi.region("synthetic:0-100kb"), metrics=["mse"])
    assert (sub.n_bins == 4000).all()


def test_msevar_on_a_region_with_variance_from_the_observed_signal(ds):
    base = et.baselines.average_activity(ds.signal)
    region = "synthetic:50kb-150kb"
    scores = et.evaluate(base.epi.region(region), ds.held_out.epi.region(region), metrics=["msevar"],
                         variance_from=ds.signal)
    row = scores.iloc[0]
    sig = ds.signal.epi.region(region).sel(assay=row.assay).values.astype(np.float64)
    var = np.nanvar(sig[ds.observed.sel(assay=row.assay).values], axis=0)
    t = ds.held_out.epi.region(region).sel(biosample=row.biosample, assay=row.assay).values.astype(np.float64)
    p = base.epi.region(region).sel(biosample=row.biosample, assay=row.assay).values.astype(np.float64)
    assert row["msevar"] == pytest.approx(((t - p) ** 2) @ var / var.sum(), rel=1e-5)


def test_evaluate_with_peaks(ds):
    base = et.baselines.average_activity(ds.signal)
    b, a = map(str, ds.held_out.epi.tracks("all").query("~observed")[["biosample", "assay"]].iloc[0])
    truth = ds.held_out.sel(biosample=b, assay=a).values
    top = np.flatnonzero(truth > np.quantile(truth, 0.98))
    peaks = pd.DataFrame({"chrom": "synthetic", "start": top * 25, "end": top * 25 + 25})
    scores = et.evaluate(base, ds.held_out, metrics=["mse", "ap", "epr"], peaks={(b, a): peaks}, peak_window=25)
    row = scores.set_index(["biosample", "assay"]).loc[(b, a)]
    from sklearn.metrics import average_precision_score

    labels = np.zeros(truth.size, bool)
    labels[top] = True
    assert row["ap"] == pytest.approx(average_precision_score(labels, base.sel(biosample=b, assay=a).values))
    assert 0 < row["epr"] <= 1


# ---------------------------------------------------------------------------- folds
def test_cv_folds_follow_the_greedy_running_counter():
    obs = xr.DataArray(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], bool), dims=("biosample", "assay"),
                       coords={"biosample": ["A", "B", "C"], "assay": ["x", "y", "z"]})
    folds = et.cv_folds(obs, n_folds=3, seed=0).values
    assert (folds[~obs.values] == -1).all()
    # dealt in biosample order with one counter: A gets 0,1; B gets 2,0; C gets 1,2,0
    assert sorted(folds[0][obs.values[0]]) == [0, 1]
    assert sorted(folds[1][obs.values[1]]) == [0, 2]
    assert sorted(folds[2][obs.values[2]]) == [0, 1, 2]


def test_folds_on_real_encode_core_cover_every_label_where_possible(encode_core):
    table = et.datasets.read_encode_experiments(encode_core)
    mask = et.datasets.experiment_mask(table)
    folds = et.cv_folds(mask, n_folds=5, seed=0)
    assert int((folds >= 0).sum()) == int(mask.sum()) == 3814  # SCIENCE.md: 3,814 tracks
    sizes = np.bincount(folds.values[folds.values >= 0])
    assert sizes.max() - sizes.min() <= 1  # the running counter balances the folds
    gaps = fold_coverage(folds)
    # every biosample with >= 2 experiments trains in every fold (impossible only for singletons)
    assert (gaps.query("kind == 'biosample'").n_experiments == 1).all()
    n_single_b = int((mask.sum("assay") == 1).sum())
    assert (gaps.kind == "biosample").sum() == n_single_b
    # every assay keeps training tracks in every fold
    assert (gaps.kind == "assay").sum() == 0
    # and the greedy rule does no worse than random fold assignment on assays and biosamples
    rng = np.random.default_rng(0)
    rand = folds.copy(data=np.where(mask.values, rng.integers(0, 5, mask.shape), -1))
    assert len(fold_coverage(rand)) >= len(gaps)


def test_fold_coverage_reports_uncovered_labels():
    obs = xr.DataArray(np.array([[1, 1], [1, 0]], bool), dims=("biosample", "assay"),
                       coords={"biosample": ["A", "B"], "assay": ["x", "y"]})
    gaps = fold_coverage(et.cv_folds(obs, n_folds=2, seed=0))
    assert set(gaps.label) >= {"B", "y"}


# ---------------------------------------------------------------------------- cross-validation
class LowRankImputer:
    """A real, tiny imputer: rank-k SVD of the (biosample x assay) matrix of binned track means,
    plus per-assay mean profiles. Records what it was trained on."""

    seen: list = []

    def __init__(self, train_ds, rank=2):
        self.ds = train_ds
        self.rank = rank

    def fit(self, region=None):
        sig = self.ds.signal if region is None else self.ds.signal.epi.region(region)
        obs = self.ds.observed.values
        values = sig.values  # (biosample, assay, position); NaN where not training
        LowRankImputer.seen.append((obs.copy(), np.isfinite(values).any(axis=2)))
        self.profile = np.nanmean(np.where(obs[:, :, None], values, np.nan), axis=0)  # per-assay mean
        level = np.full(obs.shape, np.nan)
        level[obs] = values[obs].mean(axis=1)
        filled = np.where(obs, level, np.nanmean(level, axis=0, keepdims=True))
        u, s, vt = np.linalg.svd(filled - filled.mean(), full_matrices=False)
        self.level = (u[:, : self.rank] * s[: self.rank]) @ vt[: self.rank] + filled.mean()
        self.assay_level = np.nanmean(level, axis=0)
        self.fitted = True
        return self

    def impute(self, biosample, assay, region=None):
        b = list(self.ds.biosample.values).index(biosample)
        a = list(self.ds.assay.values).index(assay)
        scale = self.level[b, a] / self.assay_level[a]
        values = self.profile[a] * scale
        sig = self.ds.signal if region is None else self.ds.signal.epi.region(region)
        return xr.DataArray(values[None, None].astype(np.float32), dims=("biosample", "assay", "position"),
                            coords={"biosample": [biosample], "assay": [assay], "position": sig.position.values
                                    if "position" in sig.indexes else np.arange(values.size)})


def test_cross_validate_trains_per_fold_on_training_tracks_only(ds):
    LowRankImputer.seen = []
    folds = et.cv_folds(ds.observed, n_folds=3, seed=1)
    region = "synthetic:0-200kb"
    cv = et.cross_validate(ds, LowRankImputer, folds=folds, region=region, fit_kwargs={"region": region})
    assert len(LowRankImputer.seen) == 3
    for k, (obs_seen, has_values) in enumerate(LowRankImputer.seen):
        held = folds.values == k
        assert not obs_seen[held].any() and not has_values[held].any()  # never saw its test tracks
        assert obs_seen[(folds.values >= 0) & ~held].all()
    n_obs = int(ds.observed.sum())
    assert set(cv.method) == {"model", "average_activity"}
    assert (cv.groupby("method").size() == n_obs).all()  # every observed track scored once per method
    model = cv[cv.method == "model"].set_index(["biosample", "assay"])
    base = cv[cv.method == "average_activity"].set_index(["biosample", "assay"])
    assert not np.allclose(model.mse.sort_index(), base.mse.sort_index())
    table = improvement_table(cv)
    assert {"mse", "gwcorr"} <= set(table.index) and (table.n_tracks == n_obs).all()


def test_training_view_hides_tracks(ds):
    train = ds.observed & False
    train[0, 0] = bool(ds.observed[0, 0])
    view = training_view(ds, train)
    assert int(view.observed.sum()) == int(train.sum())
    assert bool(view.signal.isel(biosample=1).isnull().all())


# ---------------------------------------------------------------------------- QC and ranking
def test_qc_flags_a_corrupted_track(tmp_path):
    ds = et.datasets.synthetic(tmp_path / "q.zarr", n_biosamples=10, n_assays=2, n_positions=8_000, missing=0.0, seed=2)
    b, a = "B03", ds.assay.values[0]
    before = qc.qc_table(ds.signal)
    flagged_before = set(zip(before[before.flagged].biosample, before[before.flagged].assay))
    assert (b, a) not in flagged_before
    rng = np.random.default_rng(0)  # a failed experiment: right values, scrambled positions
    et.write_track(ds.attrs["source"], b, a, rng.permutation(ds.signal.sel(biosample=b, assay=a).values), "synthetic")
    ds = et.open_dataset(ds.attrs["source"])
    table = qc.qc_table(ds.signal)
    flagged = table[table.flagged]
    # exactly the corrupted track joins the flagged set (an outlier among its assay's tracks)
    assert set(zip(flagged.biosample, flagged.assay)) == flagged_before | {(b, a)}


def test_rank_next_experiments_prefers_unsupported_pairs(ds):
    ranking = qc.rank_next_experiments(ds.signal)
    assert len(ranking) == int((~ds.observed).sum())
    assert ranking["rank"].tolist() == list(range(1, len(ranking) + 1))
    assert ranking.nearest_distance.is_monotonic_decreasing
    factors = xr.DataArray(np.eye(8)[:, :3], dims=("biosample", "factor"), coords={"biosample": ds.biosample.values})
    by_factors = qc.rank_next_experiments(ds.signal, biosample_factors=factors)
    assert set(by_factors.nearest_distance.round(6)) <= {0.0, 1.0, round(np.sqrt(2), 6)}


# ---------------------------------------------------------------------------- figures
def test_figures_render_to_png(ds, tmp_path):
    base = et.baselines.average_activity(ds.signal)
    b, a = map(str, ds.epi.tracks("missing")[["biosample", "assay"]].iloc[0])
    genes = pd.DataFrame({"chrom": ["synthetic"] * 2, "start": [2000, 9000], "end": [6000, 9500],
                          "name": ["g1", "g2"], "strand": ["+", "-"]})
    fig = et.plot.tracks(ds.held_out, base, base * 0.5, biosample=b, assay=a, region="synthetic:0-20kb",
                         annotations=Annotations(genes=genes), path=tmp_path / "tracks.png")
    assert len(fig.axes) == 4 and (tmp_path / "tracks.png").stat().st_size > 5000
    scores_b = et.evaluate(base, ds.held_out, metrics=["mse"])
    scores_m = scores_b.assign(mse=scores_b.mse * np.linspace(0.5, 1.5, len(scores_b)))
    fig = et.plot.metric_scatter(scores_m, scores_b, metric="mse", path=tmp_path / "scatter.png")
    wins = int((per_assay(scores_m, scores_b, "mse").model_wins).sum())
    assert f"better on {wins} of" in fig.axes[0].get_title()
    assert (tmp_path / "scatter.png").stat().st_size > 5000
