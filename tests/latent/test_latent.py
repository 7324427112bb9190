"""The latent representation at work (issue 15): the downstream protocol, features at regions,
similarity, maps and diverse selection, checked against independent computations."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import shared_path
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import cosine_similarity
from threadpoolctl import threadpool_limits

import epitensor as et
from epitensor.datasets import avocado_downstream
from epitensor.datasets.downstream import registry
from epitensor.latent import (
    annotate_positions,
    compare_features,
    diverse_biosamples_for_assay,
    downstream_folds,
    embed_factors,
    factor_similarity,
    factors_at_regions,
    fold_average_precision,
    select_diverse,
    summarize_folds,
    tracks_at_regions,
)
from epitensor.latent.tasks import BOOSTING


# ---------------------------------------------------------------------------- the protocol
def reference_folds(X, y, k=20):
    """The reference demo's code, verbatim in effect: global seed, shuffle, i::k slices."""
    np.random.seed(0)  # noqa: NPY002  (the reference code)
    idx = np.arange(X.shape[0])
    np.random.shuffle(idx)  # noqa: NPY002
    X, y = X[idx], y[idx]
    for i in range(k):
        X_test, X_valid = X[i::k], X[(i + 1) % k::k]
        X_train = np.concatenate([X[j::k] for j in range(k) if j != i and j != (i + 1) % k])
        y_train = np.concatenate([y[j::k] for j in range(k) if j != i and j != (i + 1) % k])
        yield X_train, y_train, X_valid, y[(i + 1) % k::k], X_test, y[i::k]


@pytest.mark.parametrize("n_rows,k", [(103, 20), (60, 5), (41, 3)])
def test_folds_equal_the_reference_protocol(n_rows, k):
    X = np.arange(n_rows * 2).reshape(n_rows, 2)
    y = np.arange(n_rows) % 2
    ours = downstream_folds(n_rows, n_folds=k, seed=0)
    for (train, valid, test), ref in zip(ours, reference_folds(X, y, k), strict=True):
        for rows, want in zip((train, valid, test), ref[0::2], strict=True):
            np.testing.assert_array_equal(X[rows], want)  # same rows in the same order


def test_fold_scores_equal_an_independent_sklearn_computation():
    rng = np.random.default_rng(4)
    y = rng.random(240) < 0.25
    X = np.c_[y + rng.normal(0, 1.0, 240), rng.normal(size=(240, 2))]
    table = fold_average_precision(X, y, n_folds=6)
    want = []
    for X_tr, y_tr, X_va, y_va, X_te, y_te in reference_folds(X.astype(np.float32), y, 6):
        m = HistGradientBoostingClassifier(early_stopping=True, scoring="average_precision", random_state=0, **BOOSTING)
        with threadpool_limits(1):  # small fits; OpenMP threads only slow them down
            m.fit(X_tr, y_tr, X_val=X_va, y_val=y_va)
        want.append(average_precision_score(y_te, m.predict_proba(X_te)[:, 1]))
    np.testing.assert_allclose(table.average_precision, want, rtol=0, atol=1e-12)
    assert (table.n_iter >= 1).all() and table.n_test.sum() == 240


def test_compare_features_is_deterministic_and_tidy():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    sets = {"informative": y[:, None] + rng.normal(0, 0.7, (300, 4)), "noise": rng.normal(size=(300, 4))}
    a = compare_features(sets, y, n_folds=5, n_jobs=2)
    b = compare_features(sets, y, n_folds=5, n_jobs=1)
    pd.testing.assert_frame_equal(a, b)
    s = summarize_folds(a)
    assert list(s.index) == ["informative", "noise", "majority baseline"]
    # the baseline is a constant score: its AP is the test fold's fraction of positives
    base = a[a.feature_set == "majority baseline"]
    np.testing.assert_allclose(base.average_precision, base.n_positive / base.n_test)
    assert s.loc["informative", "mean_average_precision"] > s.loc["noise", "mean_average_precision"] + 0.2
    sem = a[a.feature_set == "noise"].average_precision.std(ddof=1) / np.sqrt(5)
    assert s.loc["noise", "standard_error"] == pytest.approx(sem)


def test_bad_labels_and_features_are_refused_with_the_fix():
    X = np.zeros((50, 2))
    with pytest.raises(et.DataError, match="threshold"):
        fold_average_precision(X, np.linspace(0, 1, 50), n_folds=5)
    with pytest.raises(et.DataError, match="single class"):
        fold_average_precision(X, np.zeros(50), n_folds=5)
    with pytest.raises(et.DataError, match="49 labels for 50"):
        fold_average_precision(X, np.arange(49) % 2, n_folds=5)
    with pytest.raises(et.ArgumentError, match="n_folds"):
        fold_average_precision(X, np.arange(50) % 2, n_folds=2)
    with pytest.raises(et.DataError, match="'b' has 10 rows"):
        compare_features({"a": X, "b": X[:10]}, np.arange(50) % 2, n_folds=5)


# ---------------------------------------------------------------------------- the reference demo
@pytest.fixture(scope="module")
def fires():
    folder = shared_path("avocado_downstream")
    return avocado_downstream("FIREs", path=folder)


def test_shared_files_match_the_loader_hashes():
    folder = shared_path("avocado_downstream")
    for name, digest in registry().items():
        assert "sha256:" + hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_demo_loader_shapes(fires):
    features, labels = fires
    assert sorted(features) == ["AvocadoFac", "AvocadoImp", "ChromImpute", "PREDICTD", "Roadmap"]
    assert labels.dtype == bool and labels.shape == (3000,)
    assert {x.shape for n, x in features.items() if n != "AvocadoFac"} == {(3000, 24)}
    assert features["AvocadoFac"].shape == (3000, 142)


def test_fires_factors_beat_the_measurements_as_the_paper_reports(fires):
    """On the demo's FIREs rows, Avocado's genome factors predict better than the 24 Roadmap
    measurements, by more than the standard error of the fold-wise difference."""
    features, labels = fires
    table = compare_features({k: features[k] for k in ("AvocadoFac", "Roadmap")}, labels, n_jobs=2)
    wide = table.pivot(index="fold", columns="feature_set", values="average_precision")
    diff = wide["AvocadoFac"] - wide["Roadmap"]
    assert diff.mean() > diff.std(ddof=1) / np.sqrt(len(diff))
    assert (wide["Roadmap"] > wide["majority baseline"]).all()


def test_truncated_demo_file_is_a_clear_error(tmp_path, fires):
    folder = shared_path("avocado_downstream")
    for name in registry():
        if name.startswith("FIREs"):
            (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "FIREs.E116.Roadmap.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(et.DataError, match="FIREs.E116.Roadmap.npy"):
        avocado_downstream("FIREs", path=tmp_path)
    (tmp_path / "FIREs.E116.Roadmap.npy").write_bytes((folder / "FIREs.E116.Roadmap.npy").read_bytes())
    (tmp_path / "FIREs.E116.PREDICTD.npy").unlink()
    with pytest.raises(et.DataError, match="missing"):
        avocado_downstream("FIREs", path=tmp_path)
    with pytest.raises(et.ArgumentError, match="task"):
        avocado_downstream("HiC", path=tmp_path)


# ---------------------------------------------------------------------------- features at regions
def test_tracks_at_regions_select_by_label_on_user_made_objects(tiny_store, tmp_path):
    regions = pd.DataFrame({"chrom": ["synthetic"] * 3, "start": [1_000, 51_000, 100_010], "end": [1_200, 51_025, 100_300],
                            "name": ["r1", "r2", "r3"]})
    plain = xr.open_zarr(tiny_store.attrs["source"]).signal.values  # the store's values, by offset = label here
    # a user's object: biosamples reversed, a slice of positions, saved and reopened with xarray
    sub = tiny_store.sortby("biosample", ascending=False).isel(position=slice(30, 6_000))
    sub.to_zarr(tmp_path / "sub.zarr")
    reopened = xr.open_zarr(tmp_path / "sub.zarr").signal
    for obj in (sub.signal, reopened):
        t = tracks_at_regions(obj, regions, reduce="mean")
        assert list(t.index) == ["r1", "r2", "r3"]
        assert list(t.columns.get_level_values("biosample").unique()) == list(sub.biosample.values)
        for name, lo, hi in (("r1", 40, 48), ("r2", 2040, 2041), ("r3", 4000, 4012)):
            for b in ("B03", "B00"):
                bi = list(tiny_store.biosample.values).index(b)
                want = np.nanmean(plain[bi, 1, lo:hi]) if np.isfinite(plain[bi, 1, lo:hi]).any() else np.nan
                got = t.loc[name, (b, str(tiny_store.assay.values[1]))]
                assert got == pytest.approx(want, nan_ok=True, rel=1e-6)
    center = tracks_at_regions(sub.signal.sel(biosample="B01", assay=tiny_store.assay.values[0]), regions, reduce="center")
    assert center.loc["r3"].item() == pytest.approx(plain[1, 0, (100_010 + 100_300 - 1) // 2 // 25], nan_ok=True)
    with pytest.raises(et.RegionError, match="r1"):
        tracks_at_regions(tiny_store.signal.isel(position=slice(100, 200)), regions)


def test_factors_at_regions_equal_the_models_genome_factors(tiny_model, tmp_path):
    model = tiny_model
    gf = model.genome_factors("synthetic:0-200,000")
    bed = tmp_path / "tss.bed"
    bed.write_text("synthetic\t5000\t5001\tgeneA\t0\t+\nsynthetic\t125000\t125001\tgeneB\t0\t-\n")
    t = factors_at_regions(model, bed)
    assert list(t.index) == ["geneA", "geneB"] and t.shape[1] == gf.sizes["factor"]
    np.testing.assert_allclose(t.loc["geneB"].to_numpy(), gf.sel(position=5000).values, rtol=1e-6)
    windowed = factors_at_regions(model, bed, flank=100, reduce="mean", resolutions=("25bp",))
    want = gf.sel(position=slice(196, 204)).values[:, gf.resolution.values == "25bp"].mean(0)
    np.testing.assert_allclose(windowed.loc["geneA"].to_numpy(), want, rtol=1e-5)
    with pytest.raises(et.ArgumentError, match="reduce"):
        factors_at_regions(model, bed, reduce="median")


def test_annotate_positions_on_real_annotations():
    folder = shared_path("annotations", "hg38")
    ann = et.evaluation.Annotations.from_folder(folder, "hg38")
    genome = et.Genome.from_assembly("hg38")
    tss = ann.tss[ann.tss.chrom == "chr21"].iloc[:50]
    first = genome.contig_bins("chr21")[0]
    positions = first + tss.start.to_numpy() // 25
    labels = annotate_positions(positions, genome, ann)
    assert (labels == "promoter").all()
    far = first + np.array([5_000_000]) // 25  # chr21 p-arm gap: no genes there
    assert annotate_positions(far, genome, ann).tolist() == ["other"]


# ---------------------------------------------------------------------------- similarity and maps
def test_similarity_matches_sklearn_and_numpy():
    rng = np.random.default_rng(1)
    f = pd.DataFrame(rng.normal(size=(7, 5)), index=pd.Index([f"E{i:03d}" for i in range(7)], name="biosample"))
    cos = factor_similarity(f, "cosine")
    np.testing.assert_allclose(cos.to_numpy(), cosine_similarity(f.to_numpy()), atol=1e-12)
    assert list(cos.index) == list(f.index) == list(cos.columns)
    np.testing.assert_allclose(factor_similarity(f, "correlation").to_numpy(), np.corrcoef(f.to_numpy()), atol=1e-12)
    with pytest.raises(et.ArgumentError, match="metric"):
        factor_similarity(f, "jaccard")
    with pytest.raises(et.DataError, match="NaN"):
        factor_similarity(f.where(f > -5).assign(**{"0": np.nan}))


def test_pca_map_matches_sklearn_up_to_sign():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 6)) * [5, 3, 1, 1, 1, 1]
    m = embed_factors(x, method="pca")
    ref = PCA(2).fit_transform(x)
    for col, j in (("x", 0), ("y", 1)):
        assert abs(np.corrcoef(m[col], ref[:, j])[0, 1]) == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------- diverse selection
def planted(n_per=6, seed=0):
    centres = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]], dtype=float)
    rng = np.random.default_rng(seed)
    x = np.repeat(centres, n_per, axis=0) + rng.normal(0, 0.5, (4 * n_per, 3))
    labels = [f"c{c}_{i}" for c in range(4) for i in range(n_per)]
    return pd.DataFrame(x, index=labels)


@pytest.mark.parametrize("method", ["facility", "farthest"])
def test_selection_covers_planted_clusters_and_is_deterministic(method):
    f = planted()
    picks = select_diverse(f, 4, method=method)
    assert sorted(lab[:2] for lab in picks.label) == ["c0", "c1", "c2", "c3"]
    pd.testing.assert_frame_equal(picks, select_diverse(f, 4, method=method))
    assert picks.coverage.is_monotonic_increasing and (picks.gain > 0).all()
    # rows already measured count as picked: the picks go to the other clusters
    again = select_diverse(f, 2, method=method, already=["c0_0", "c1_0"])
    assert sorted(lab[:2] for lab in again.label) == ["c2", "c3"]


def test_diverse_biosamples_for_an_assay_fill_the_gaps():
    f = planted(n_per=3)
    f.index.name = "biosample"
    assays = ["H3K27ac", "CTCF"]
    observed = xr.DataArray(np.zeros((len(f), 2), bool), dims=("biosample", "assay"),
                            coords={"biosample": f.index.to_numpy(), "assay": assays})
    observed.loc[{"biosample": ["c0_0", "c0_1", "c1_2"], "assay": "H3K27ac"}] = True
    picks = diverse_biosamples_for_assay(f, observed, "H3K27ac", 2)
    assert sorted(lab[:2] for lab in picks.label) == ["c2", "c3"]
    assert (picks.measured_before == 3).all() and (picks.assay == "H3K27ac").all()
    with pytest.raises(et.LabelError, match="H3K9me9"):
        diverse_biosamples_for_assay(f, observed, "H3K9me9", 2)
    with pytest.raises(et.ArgumentError, match="k must be"):
        diverse_biosamples_for_assay(f, observed, "H3K27ac", 50)
    with pytest.raises(et.LabelError, match="nope"):
        select_diverse(f, 1, already=["nope"])


def test_rank_next_experiments_takes_model_factors_as_a_dataframe_in_any_row_order(tiny_store):
    rng = np.random.default_rng(3)
    f = pd.DataFrame(rng.normal(size=(tiny_store.sizes["biosample"], 3)), index=pd.Index(tiny_store.biosample.values, name="biosample"))
    as_array = xr.DataArray(f.to_numpy(), dims=("biosample", "factor"), coords={"biosample": f.index.to_numpy()})
    want = et.evaluation.rank_next_experiments(tiny_store.signal, biosample_factors=as_array)
    got = et.evaluation.rank_next_experiments(tiny_store.signal, biosample_factors=f.iloc[::-1])
    pd.testing.assert_frame_equal(got, want)
    with pytest.raises(et.LabelError, match="lack the biosamples"):
        et.evaluation.rank_next_experiments(tiny_store.signal, biosample_factors=f.iloc[1:])


def test_selection_refuses_more_rows_than_it_can_compare_pairwise():
    with pytest.raises(et.ArgumentError, match="subsample"):
        select_diverse(np.zeros((10_001, 2)), 3)


@pytest.mark.slow
def test_umap_map_separates_planted_clusters_and_repeats_with_its_seed():
    pytest.importorskip("umap", reason="umap-learn (the viz extra) is not installed")
    f = planted(n_per=40)
    a = embed_factors(f, method="umap", seed=0)
    assert a.attrs["method"] == "umap" and list(a.index) == list(f.index)
    pd.testing.assert_frame_equal(a, embed_factors(f, method="umap", seed=0))
    centres = a.groupby([lab[:2] for lab in a.index]).mean()
    spread = a.groupby([lab[:2] for lab in a.index]).std().to_numpy().max()
    gaps = np.sqrt(((centres.to_numpy()[:, None] - centres.to_numpy()[None]) ** 2).sum(-1))
    assert gaps[~np.eye(4, dtype=bool)].min() > 2 * spread


def test_umap_requested_without_the_extra_names_the_fix(monkeypatch):
    import epitensor.latent.embedding as embedding

    monkeypatch.setattr(embedding, "umap_available", lambda: False)
    with pytest.raises(et.ArgumentError, match=r"epitensor\[viz\]"):
        embed_factors(planted(), method="umap")
    assert embed_factors(planted(), method="auto").attrs["method"] == "pca"
