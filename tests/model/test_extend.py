"""Adding biosamples and assays to a trained model (freeze / fine-tune), and growing a store in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

import epitensor as et
from epitensor.model.extend import only_new_rows
from epitensor.model.training import build_training_data, train
from epitensor.store import add_labels

torch.set_num_threads(1)
TINY = dict(n_nodes=32, batch_size=200, learning_rate=3e-3)
OLD = [f"B{i:02d}" for i in range(7)]
NEW = "B07"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A fully observed 8 x 4 x 2,000 synthetic store and a model trained on its first 7 biosamples."""
    root = tmp_path_factory.mktemp("extend")
    ds = et.datasets.synthetic(root / "store.zarr", n_biosamples=8, n_assays=4, n_positions=2_000, missing=0.0, seed=3)
    model = et.Avocado(ds, preset="paper", seed=1, biosamples=OLD, **TINY)
    model.fit(epochs=30, progress=False)
    model.save(root / "model")
    return root


def _copy_store(base, tmp_path):
    import shutil

    shutil.copytree(base / "store.zarr", tmp_path / "store.zarr")
    return et.open_dataset(tmp_path / "store.zarr")


@pytest.fixture
def ds(base, tmp_path):
    return _copy_store(base, tmp_path)


@pytest.fixture
def model(base, ds):
    return et.Avocado.load(base / "model", ds)


def _old_state(model):
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def _assert_old_rows_identical(before, model):
    after = model.module.state_dict()
    assert set(before) == set(after)
    for name, old in before.items():
        new = after[name][: old.shape[0]] if name in ("biosample.weight", "assay.weight") else after[name]
        assert new.shape == old.shape, name
        assert torch.equal(new, old), f"{name} changed"


# ---------------------------------------------------------------------- freeze
@pytest.mark.parametrize("options", [{}, {"residual": True, "validation_fraction": 0.05, "patience": 2},
                                     {"baseline_weight": 0.5}], ids=["plain", "residual", "baseline_weight"])
def test_freeze_keeps_every_old_parameter_and_imputation_bit_identical(base, ds, options, device):
    model = et.Avocado.load(base / "model", ds, device=device)
    if options:  # these add the average activity back: it must stay that of the old tracks
        model = et.Avocado(ds, preset="paper", seed=1, biosamples=OLD, device=device, **options, **TINY)
        model.fit(epochs=3, progress=False)
    before, imputed = _old_state(model), model.impute(region="synthetic:0-20000").values
    model.add_biosamples(ds, tracks=[(NEW, "H3K4me3")], mode="freeze", epochs=3, progress=False)
    _assert_old_rows_identical(before, model)
    assert model.module.biosample.weight.shape[0] == 8
    assert not torch.equal(model.module.biosample.weight[7].cpu(), torch.zeros(32))
    np.testing.assert_array_equal(model.impute(OLD, region="synthetic:0-20000").values, imputed)
    assert model.history["stage"].iloc[-1] == "add (freeze)"


def test_only_new_rows_leaves_old_rows_and_other_parameters_alone(model):
    module = model.module
    module.extend_table("biosample", 2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with only_new_rows(module, {"biosample": 7, "assay": 4}) as params:
        assert [p.shape for p in params] == [(2, 32)]
        assert not any(p.requires_grad for p in module.network_parameters())
        rows = model.fitted_positions.rows(model.fitted_positions.positions[:300])
        data = build_training_data(np.random.default_rng(0).random((2, 300), dtype=np.float32) * 3, [7, 8], [0, 1],
                                   rows, device="cpu")
        train(module, data, 3, model.config, parameters=params, progress=False)
    after = module.state_dict()
    assert all(p.requires_grad for p in module.parameters())
    assert torch.equal(after["biosample.weight"][:7], before["biosample.weight"][:7])
    assert not torch.equal(after["biosample.weight"][7:], before["biosample.weight"][7:])
    for name in before:
        if name != "biosample.weight":
            assert torch.equal(after[name], before[name]), name


def test_freeze_learns_the_new_biosample_from_one_track(base, ds):
    sig = ds.signal.sel(biosample=NEW).values
    others = [1, 2, 3]  # H3K4me3 (0) is the one track given
    mse, fit = {}, {}
    for epochs in (0, 40):
        model = et.Avocado.load(base / "model", ds)
        hist = model.add_biosamples(ds, tracks=[(NEW, "H3K4me3")], epochs=epochs, progress=False)
        err = (model.impute(NEW).values[0] - sig) ** 2
        mse[epochs], fit[epochs] = float(err[others].mean()), float(err[0].mean())
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0] and fit[40] < 0.8 * fit[0]  # the track it was given
    baseline = ds.signal.sel(biosample=OLD).mean("biosample").values
    mse_baseline = float(((baseline - sig)[others] ** 2).mean())
    assert mse[40] < 0.8 * mse[0]  # the untrained new row
    assert mse[40] < mse_baseline  # average activity of the assay over the old biosamples


# ---------------------------------------------------------------------- fine-tune
def test_fine_tune_trains_everything_on_old_and_new_tracks(model, ds):
    before = _old_state(model)
    n_old_tracks = len(model.training_tracks)
    model.add_biosamples(ds, tracks=[(NEW, "H3K4me3"), (NEW, "H3K27ac")], mode="fine-tune", epochs=2, progress=False)
    after = model.module.state_dict()
    assert not torch.equal(after["output.weight"], before["output.weight"])
    assert not torch.equal(after["biosample.weight"][:7], before["biosample.weight"])
    assert len(model.training_tracks) == n_old_tracks + 2
    assert model.training_tracks[-1] == (NEW, "H3K27ac")


# ---------------------------------------------------------------------- labels, stores
def test_labels_are_appended_and_existing_labels_rejected(model, ds):
    model.add_biosamples(ds, epochs=1, progress=False)  # default: every biosample the model lacks
    assert model.biosamples == [*OLD, NEW] and list(model.factors("biosample").index) == [*OLD, NEW]
    assert model.factors("biosample").shape == (8, 32)
    with pytest.raises(et.LabelError, match="nothing to add"):
        model.add_biosamples(ds, epochs=1, progress=False)
    with pytest.raises(et.LabelError, match=r"already has biosample\(s\) \['B03'\]"):
        model.add_biosamples(ds, ["B03"], epochs=1, progress=False)
    with pytest.raises(et.LabelError, match="unknown biosample"):
        model.add_biosamples(ds, ["nope"], epochs=1, progress=False)


def test_add_labels_grows_every_variable_and_keeps_values(tmp_path):
    ds = et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=3, n_assays=2, n_positions=1_000, missing=0.3, seed=0)
    path = ds.attrs["source"]
    from epitensor.store import write_embedding

    write_embedding(path, "biosample", __import__("pandas").DataFrame(np.ones((3, 4)), index=["B00", "B01", "B02"]))
    before = ds.load()
    add_labels(path, biosamples={"E065": "Aorta"}, assays={"H3K27ac": "histone", "CTCF": "tf"})
    grown = et.open_dataset(path)
    assert grown.signal.shape == (4, 4, 1_000) and grown.held_out.shape == (4, 4, 1_000)
    assert list(grown.biosample.values) == ["B00", "B01", "B02", "E065"]
    assert list(grown.assay_category.values) == ["histone", "histone", "histone", "tf"]
    assert grown.biosample_summary.values[-1] == "Aorta"
    np.testing.assert_array_equal(grown.observed.values[:3, :2], before.observed.values)
    assert not grown.observed.values[3].any() and not grown.observed.values[:, 2:].any()
    np.testing.assert_array_equal(grown.signal.values[:3, :2], before.signal.values)
    assert np.isnan(grown.signal.values[3]).all() and np.isnan(grown.signal.values[:, 2:]).all()
    factors = zarr.open_group(path)["biosample_factors"]
    assert factors.shape == (4, 4) and np.isnan(factors[3]).all() and (factors[:3] == 1).all()
    et.write_track(path, "E065", "CTCF", np.ones(1_000), "synthetic")
    assert bool(et.open_dataset(path).observed.sel(biosample="E065", assay="CTCF"))
    with pytest.raises(et.LabelError, match=r"already has biosample\(s\) \['B01'\]"):
        add_labels(path, biosamples=["B01"])
    with pytest.raises(et.LabelError, match="unique"):
        add_labels(path, assays=["X", "X"])
    with pytest.raises(et.LabelError, match="nothing to add"):
        add_labels(path)


def test_grown_store_biosample_and_assay_together_then_save_load(model, ds, tmp_path):
    path = ds.attrs["source"]
    add_labels(path, biosamples={"E065": "Aorta"}, assays=["H3K27ac-new"])
    for a in ("H3K4me3", "H3K27ac-new"):
        et.write_track(path, "E065", a, ds.signal.sel(biosample=NEW, assay="H3K4me3").values, "synthetic")
    et.write_track(path, "B00", "H3K27ac-new", ds.signal.sel(biosample="B00", assay="H3K27ac").values, "synthetic")
    grown = et.open_dataset(path)
    hist = model.add_biosamples(grown, ["E065"], assays=["H3K27ac-new"], epochs=2, progress=False)
    assert len(hist) == 2
    assert model.biosamples[-1] == "E065" and model.assays[-1] == "H3K27ac-new"
    assert model.module.assay.weight.shape[0] == 5
    assert ("B00", "H3K27ac-new") in model.training_tracks  # a new assay's average activity uses its tracks
    imputed = model.impute(["E065", "B03"], ["H3K27ac-new", "H3K36me3"]).values
    assert np.isfinite(imputed).all()
    model.write_factors()
    factors = et.open_dataset(path).biosample_factors
    assert factors.shape == (9, 32) and np.isnan(factors.sel(biosample=NEW)).all()  # B07 is not in the model
    np.testing.assert_array_equal(factors.sel(biosample="E065").values, model.factors("biosample").loc["E065"].values)
    model.save(tmp_path / "extended")
    loaded = et.Avocado.load(tmp_path / "extended", et.open_dataset(path))
    assert loaded.biosamples == model.biosamples and loaded.assays == model.assays
    np.testing.assert_array_equal(loaded.impute(["E065", "B03"], ["H3K27ac-new", "H3K36me3"]).values, imputed)
    assert loaded.training_tracks == model.training_tracks


def test_another_store_appends_labels_and_copies_tracks(model, ds, tmp_path):
    genome = ds.epi.genome
    other = tmp_path / "other.zarr"
    et.create_store(other, {"E065": "Aorta"}, ["H3K4me3", "H3K9me3"], genome)
    values = ds.signal.sel(biosample=NEW, assay="H3K4me3").values
    et.write_track(other, "E065", "H3K4me3", values, "synthetic")
    before = _old_state(model)
    model.add_biosamples(other, epochs=2, progress=False)  # H3K9me3 is unobserved there: not used
    _assert_old_rows_identical(before, model)
    grown = et.open_dataset(ds.attrs["source"])
    assert list(grown.biosample.values)[-1] == "E065" and grown.biosample_summary.values[-1] == "Aorta"
    assert bool(grown.observed.sel(biosample="E065", assay="H3K4me3"))
    np.testing.assert_array_equal(grown.signal.sel(biosample="E065", assay="H3K4me3").values, values)
    assert np.isfinite(model.impute("E065").values).all()
    with pytest.raises(et.LabelError, match="already has"):
        model.add_biosamples(other, ["E065"], epochs=1, progress=False)


# ---------------------------------------------------------------------- stage 2
def test_new_rows_are_used_with_genome_factors_fitted_beyond_the_training_region(ds):
    """Stage 2 keeps the network and label factors and fits genome factors block by block; a row added
    in freeze mode on the training region then predicts the new biosample in another block."""
    model = et.Avocado(ds, preset="paper", seed=1, biosamples=OLD, **TINY)
    model.fit(region="synthetic:0-25000", epochs=30, progress=False)
    model.add_biosamples(ds, tracks=[(NEW, "H3K4me3")], epochs=40, progress=False)
    np.testing.assert_array_equal(model.fitted_positions.positions, np.arange(1_000))  # fitted there only
    # stage 2 on a block outside the training region: a copy of the module with fresh genome tables,
    # only those trained, on the old biosamples' tracks of the block
    import copy

    block = np.arange(1_000, 2_000)
    stage2 = copy.deepcopy(model.module)
    stage2.set_genome_tables((1_000, 100, 5))
    pairs = [(b, a) for b in OLD for a in model.assays]
    rows = (np.arange(1_000), np.arange(1_000) // 10, np.arange(1_000) // 200)
    data = build_training_data(model.read_tracks(pairs, block), *model.indices(pairs), rows, device="cpu")
    train(stage2, data, 30, model.config, parameters=[t.weight for t in stage2.genome_tables()], progress=False)
    assert torch.equal(stage2.biosample.weight, model.module.biosample.weight)
    r = [torch.as_tensor(x) for x in rows]
    with torch.inference_mode():
        pred = stage2.predict_tracks(torch.full((4,), 7), torch.arange(4), *r).numpy()
    truth = model.read_tracks([(NEW, a) for a in model.assays], block)
    baseline = model.read_tracks([(b, a) for b in OLD for a in model.assays], block).reshape(7, 4, -1).mean(axis=0)
    others = [1, 2, 3]
    assert ((pred - truth)[others] ** 2).mean() < ((baseline - truth)[others] ** 2).mean()


# ---------------------------------------------------------------------- errors
def test_new_biosample_without_observed_track(model, ds):
    add_labels(ds.attrs["source"], biosamples=["E999"])
    with pytest.raises(et.ModelError, match=r"new biosample\(s\) \['E999'\] have no observed track"):
        model.add_biosamples(ds.attrs["source"], ["E999"], epochs=1, progress=False)
    assert model.biosamples == OLD and model.module.biosample.weight.shape[0] == 7


def test_other_genome_is_refused(model, tmp_path):
    other = tmp_path / "other.zarr"
    et.create_store(other, ["E065"], ["H3K4me3"], et.Genome.single_contig("synthetic", 3_000, assembly="synthetic"))
    et.write_track(other, "E065", "H3K4me3", np.ones(3_000), "synthetic")
    with pytest.raises(et.GenomeError, match="genome of the new tracks' store .* differ: synthetic is 75000 bp vs 50000 bp"):
        model.add_biosamples(other, epochs=1, progress=False)


def test_untrained_model_and_bad_mode_and_bad_tracks(ds, model):
    fresh = et.Avocado(ds, preset="paper", biosamples=OLD, **TINY)
    with pytest.raises(et.ModelError, match="never trained"):
        fresh.add_biosamples(ds, epochs=1, progress=False)
    with pytest.raises(et.ModelError, match="mode must be one of"):
        model.add_biosamples(ds, mode="retrain", epochs=1, progress=False)
    with pytest.raises(et.ModelError, match=r"tracks \[\('B00', 'H3K4me3'\)\] cannot be used"):
        model.add_biosamples(ds, tracks=[("B00", "H3K4me3")], epochs=1, progress=False)


def test_non_finite_new_track_leaves_the_model_as_it_was(model, ds):
    before = _old_state(model)
    path = ds.attrs["source"]
    add_labels(path, biosamples=["E998"])
    root = zarr.open_group(path, mode="r+")
    values = np.ones(2_000, dtype=np.float32)
    values[5] = np.nan  # written behind write_track's back, as a corrupt ingestion would
    root["signal"][8, 0, :2_000] = values
    et.store.set_observed(path, [("E998", "H3K4me3")])
    with pytest.raises(et.DataError, match="NaN or infinite"):
        model.add_biosamples(path, ["E998"], epochs=1, progress=False)
    assert model.biosamples == OLD
    _assert_old_rows_identical(before, model)
    assert model.module.biosample.weight.shape[0] == 7
