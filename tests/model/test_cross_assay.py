"""The cross-assay stack inside Avocado (config.cross_assay, what preset='auto' adds on small compendia).

Oracles: scikit-learn's own ``predict`` for the saved trees, and
:func:`epitensor.evaluation.stacked_baseline` (the same stack computed outside the model) for the
model's stack. Imputations must not depend on how a region is sliced, must survive save/load, and
the stack's prediction of a validation track must not see that track's values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import epitensor as et
from epitensor.evaluation.trees import TreeEnsemble
from epitensor.model import cross_assay
from epitensor.model.cross_assay import CrossAssayStack

ITER = 15  # boosting iterations in these tests (the default's 100 cost seconds per regressor)


@pytest.fixture
def fast_stack(monkeypatch):
    monkeypatch.setattr(cross_assay, "MAX_ITER", ITER)
    monkeypatch.setattr(cross_assay, "N_TRAIN", 5_000)


def stacked_model(ds, **options):
    return et.Avocado(ds, preset="small", seed=0, device="cpu", n_nodes=16, batch_size=2_000, cross_assay=True,
                      **options)


def unobserved(ds):
    return [(str(b), str(a)) for b in ds.biosample.values for a in ds.assay.values
            if not bool(ds.observed.sel(biosample=b, assay=a))]


# ---------------------------------------------------------------------------- trees
def test_tree_ensemble_predicts_as_scikit_learn_and_round_trips_through_tensors():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3_000, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the learned side
    y = np.nan_to_num(X[:, 0]) ** 2 + np.nan_to_num(X[:, 1]) + rng.normal(scale=0.1, size=3_000)
    reg = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=15, random_state=0).fit(X, y)
    trees = TreeEnsemble.from_regressor(reg)
    np.testing.assert_allclose(trees.predict(X), reg.predict(X), rtol=1e-5, atol=1e-5)
    tensors = trees.to_tensors("t.")
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    again = TreeEnsemble.from_tensors(tensors, "t.")
    np.testing.assert_array_equal(again.predict(X), trees.predict(X))
    with pytest.raises(ValueError, match="5 feature columns"):
        trees.predict(X[:, :4])
    bad = dict(tensors)
    bad["t.node.left"] = bad["t.node.left"] + 10_000  # children outside the tree would crash the predictor
    with pytest.raises(et.ModelFileError, match="inconsistent"):
        TreeEnsemble.from_tensors(bad, "t.")
    del bad["t.baseline"]
    with pytest.raises(et.ModelFileError, match="incomplete"):
        TreeEnsemble.from_tensors(bad, "t.")


# ---------------------------------------------------------------------------- the model's stack
def test_model_stack_equals_stacked_baseline(small_ds, fast_stack):
    model = stacked_model(small_ds)
    model.fit(epochs=1, validation_tracks=0, progress=False)
    pairs = unobserved(small_ds)
    want = et.evaluation.stacked_baseline(small_ds.signal, pairs, n_train=5_000, max_iter=ITER, seed=0)
    positions = small_ds.position.values
    got = model.stack.predict(pairs, positions, model.read_tracks, model.genome)
    for i, (b, a) in enumerate(pairs):
        np.testing.assert_allclose(got[i], want.sel(biosample=b, assay=a).values, rtol=1e-4, atol=1e-4)
    weights = want.attrs["stack_weights"]
    for b in weights:
        np.testing.assert_allclose(model.stack.weights(b), list(weights[b].values()), rtol=1e-4, atol=1e-5)


def test_stacked_imputation_does_not_depend_on_the_slice_and_survives_save_and_load(small_ds, fast_stack, tmp_path):
    model = stacked_model(small_ds, baseline_weight=0.5)
    model.fit(epochs=1, validation_tracks=0, progress=False)
    assert model.config.baseline_weight == 0.5 and model.stack is not None
    whole = model.impute()
    stack, model.stack = model.stack, None
    assert not np.allclose(model.impute().values, whole.values)  # the stack, not the average activity, is blended
    model.stack = stack
    for region in ("synthetic:250,000-260,000", "synthetic:0-1,000", "synthetic:499,000-500,000"):
        part = model.impute(region=region)
        np.testing.assert_allclose(part.values, whole.sel(position=part.position).values, rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = et.Avocado.load(tmp_path / "m", small_ds)
    assert loaded.stack is not None and sorted(loaded.stack.regressors) == sorted(model.stack.regressors)
    np.testing.assert_array_equal(loaded.impute().values, whole.values)


def test_a_tracks_own_regressor_never_sees_its_values(small_ds, fast_stack):
    model = stacked_model(small_ds)
    tracks = model.observed_tracks()
    values = model.read_tracks(tracks, small_ds.position.values)
    held = tracks[0]
    changed = values.copy()
    changed[0] = np.random.default_rng(1).permutation(changed[0]) * 2 + 1
    one, two = (CrossAssayStack.fit(model.biosamples, model.assays, tracks, v, seed=0) for v in (values, changed))
    for field in one.regressors[held].nodes.dtype.names:  # the same trees: its values trained nothing of them
        np.testing.assert_array_equal(one.regressors[held].nodes[field], two.regressors[held].nodes[field])
    assert not np.allclose(*(s.normal[held][1] for s in (one, two)))  # its own normal equations do use them
    other = next(p for p in one.regressors if p[1] == held[1] and p != held)  # it is a donor of its assay's others
    assert one.regressors[other].nodes.shape != two.regressors[other].nodes.shape or \
        not np.array_equal(one.regressors[other].nodes["value"], two.regressors[other].nodes["value"])


def test_fit_with_the_stack_chooses_its_share_on_validation_tracks(small_ds, fast_stack):
    model = stacked_model(small_ds, tune_baseline_weight=True, patience=2)
    hist = model.fit(epochs=3, validation_tracks=2, progress=False)
    assert "val_mse" in hist and 0.0 <= model.config.baseline_weight <= 1.0
    assert set(model.stack.tracks) == set(model.observed_tracks())  # the validation tracks train the stack too
    stack = model.stack
    model.fit(epochs=1, validation_tracks=0, progress=False)
    assert model.stack is stack  # same tracks and region: not fitted again


def test_stage_two_and_extension_refuse_a_stacked_model(small_ds, fast_stack):
    model = stacked_model(small_ds)
    model.fit(epochs=1, validation_tracks=0, progress=False)
    with pytest.raises(et.ModelError, match="cross-assay stack"):
        model.impute_genome(dry_run=True)
    with pytest.raises(et.ModelError, match="cross-assay stack"):
        model.add_biosamples(small_ds, biosamples=[])
    with pytest.raises(et.ModelError, match="residual"):
        stacked_model(small_ds, residual=True)


def test_auto_stacks_small_compendia_only():
    from epitensor.model.config import CROSS_ASSAY_MAX_PAIRS, auto_preset

    assert auto_preset(5, 5, 20)[1]["cross_assay"] is True
    assert auto_preset(6, 200, 382)[1]["cross_assay"] is False  # the ENCODE peaks compendium: 1,200 pairs
    assert "cross-assay stack" in auto_preset(5, 5, 20)[2]
    n = CROSS_ASSAY_MAX_PAIRS // 4
    assert auto_preset(4, n, 4 * n // 2)[1]["cross_assay"] and not auto_preset(4, n + 1, 4 * n // 2)[1]["cross_assay"]


def test_the_stack_predicts_a_long_region_in_pieces_as_in_one(small_ds, fast_stack, monkeypatch):
    model = stacked_model(small_ds)
    model.fit(epochs=1, validation_tracks=0, progress=False)
    pairs = unobserved(small_ds)[:3]
    positions = small_ds.position.values
    whole = model.stack.predict(pairs, positions, model.read_tracks, model.genome)
    reads = []

    def read(tracks, where):
        reads.append(len(where))
        return model.read_tracks(tracks, where)

    monkeypatch.setattr(cross_assay, "SPAN_BINS", 777)
    pieces = model.stack.predict(pairs, positions, read, model.genome)
    assert len(reads) >= len(positions) // 777 and max(reads) <= 777 + 2 * cross_assay._pad()
    np.testing.assert_array_equal(pieces, whole)
