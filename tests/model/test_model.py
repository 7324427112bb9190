"""Tests of the Avocado model: shapes and labels, learning, I/O, determinism, errors, store outputs."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

import epitensor as et
from epitensor.exceptions import ModelFileError
from epitensor.model import AvocadoConfig, AvocadoModule, GenomeRows
from epitensor.model.data import training_data
from epitensor.model.training import build_training_data, train

torch.set_num_threads(2)
TINY = dict(n_nodes=16, n_layers=2, batch_size=500)


@pytest.fixture
def tiny_ds(tmp_path):
    """6 biosamples x 4 assays x 1,200 bins, 60% of tracks observed."""
    return et.datasets.synthetic(tmp_path / "tiny.zarr", n_biosamples=6, n_assays=4, n_positions=1_200, missing=0.4, seed=5)


@pytest.fixture
def fitted(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", seed=1, **TINY)
    model.fit(epochs=3, progress=False)
    return model


# ---------------------------------------------------------------------- shapes and labels
def test_impute_is_labelled(fitted, tiny_ds):
    imp = fitted.impute(["B02", "B00"], "H3K27me3", region="synthetic:1000-2000")
    assert imp.dims == ("biosample", "assay", "position")
    assert imp.shape == (2, 1, 40)
    assert list(imp.biosample.values) == ["B02", "B00"] and list(imp.assay.values) == ["H3K27me3"]
    ref = tiny_ds.signal.epi.region("synthetic:1000-2000")
    np.testing.assert_array_equal(imp.position.values, ref.position.values)
    np.testing.assert_array_equal(imp.start.values, ref.start.values)
    assert imp.epi.genome == tiny_ds.epi.genome
    assert np.isfinite(imp.values).all()


def test_factors_and_genome_factors(fitted):
    b = fitted.factors("biosample")
    assert b.shape == (6, 32) and list(b.index) == [f"B{i:02d}" for i in range(6)] and b.index.name == "biosample"
    assert fitted.factors("assay").shape == (4, 256)
    g = fitted.genome_factors("synthetic:0-10000")
    assert g.dims == ("position", "factor") and g.shape == (400, 25 + 40 + 45)
    assert (g.resolution.values == "25bp").sum() == 25
    five_kb = g.sel(factor=g.resolution == "5kbp").values
    np.testing.assert_array_equal(five_kb[0], five_kb[199])  # one 5 kbp row per 200 bins
    assert not np.array_equal(five_kb[0], five_kb[200])


def test_projected_first_layer_matches_concatenation(device):
    torch.manual_seed(0)
    m = AvocadoModule(5, 3, (50, 5, 1), AvocadoConfig(n_nodes=24)).to(device)
    idx = [torch.randint(n, (64,)).to(device) for n in (5, 3, 50, 5, 1)]
    tol = dict(rtol=1e-5, atol=1e-6) if device == "cpu" else dict(rtol=1e-4, atol=1e-5)  # other kernels' summation order
    torch.testing.assert_close(m(*idx, project_first_layer=True), m(*idx), **tol)
    grads = []
    for project in (False, True):  # the same gradients for every parameter (the gather's index_add_ backward)
        m.zero_grad()
        m(*idx, project_first_layer=project).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in m.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, **tol, msg=name)
    pairs = m.predict_tracks(idx[0][:4], idx[1][:4], *idx[2:])
    torch.testing.assert_close(pairs[2], m(idx[0][2].expand(64), idx[1][2].expand(64), *idx[2:]), **tol)


def test_genome_rows_map_positions_to_rows():
    genome = et.Genome.from_assembly("hg38", contigs=["chr21", "chr22"])
    rows = GenomeRows.from_regions(["chr21:0-10000", "chr22:0-5000"], genome)
    first22 = genome.contig_bins("chr22")[0]
    assert rows.n_rows == (600, 60, 3)
    r25, r250, r5k = rows.rows([0, 399, first22])
    assert r25.tolist() == [0, 399, 400] and r250.tolist() == [0, 39, 40] and r5k.tolist() == [0, 1, 2]
    assert GenomeRows.from_intervals(rows.intervals()) == rows
    with pytest.raises(et.RegionError, match="no fitted genome factors"):
        rows.rows([400])


# ---------------------------------------------------------------------- learning
def test_loss_falls(tiny_ds, device):
    model = et.Avocado(tiny_ds, preset="paper", seed=0, device=device, **TINY)
    hist = model.fit(epochs=15, progress=False)
    assert list(hist.columns[:2]) == ["epoch", "loss"] and len(hist) == 15
    assert hist.loss.iloc[-1] < 0.5 * hist.loss.iloc[0]


def _baseline(ds, b, a):
    """Average activity: mean of assay ``a`` over the biosamples where it is observed."""
    obs = ds.observed.sel(assay=a).values
    return ds.signal.sel(assay=a).isel(biosample=np.flatnonzero(obs)).mean("biosample").values


def test_beats_average_activity_on_held_out_tracks(tmp_path, device):
    ds = et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=10, n_assays=6, n_positions=3_000, missing=0.5, seed=2)
    model = et.Avocado(ds, preset="paper", seed=0, device=device, n_nodes=64, batch_size=1_000, n_assay_factors=16, n_biosample_factors=8)
    model.fit(epochs=60, progress=False)
    hidden = ds.epi.tracks("missing")
    imp = model.impute(region="synthetic")
    err_model, err_base = [], []
    for b, a in zip(hidden.biosample, hidden.assay):
        truth = ds.held_out.sel(biosample=b, assay=a).values
        err_model.append(np.mean((imp.sel(biosample=b, assay=a).values - truth) ** 2))
        err_base.append(np.mean((_baseline(ds, b, a) - truth) ** 2))
    assert np.mean(err_model) < 0.9 * np.mean(err_base), (np.mean(err_model), np.mean(err_base))


def test_deterministic_with_seed_on_cpu(tiny_ds):
    runs = []
    for _ in range(2):
        m = et.Avocado(tiny_ds, preset="paper", seed=7, **TINY)
        m.fit(epochs=2, progress=False)
        runs.append(m)
    np.testing.assert_array_equal(runs[0].history.loss, runs[1].history.loss)
    for (k, v), w in zip(runs[0].module.state_dict().items(), runs[1].module.state_dict().values()):
        assert torch.equal(v, w), k


# ---------------------------------------------------------------------- I/O
def test_save_load_bit_identical(fitted, tiny_ds, tmp_path):
    fitted.save(tmp_path / "m")
    fitted.save(tmp_path / "m")  # replacing an existing model works
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert len(names) == 2 and names[0] == "config.json" and names[1].startswith("weights-")
    loaded = et.Avocado.load(tmp_path / "m", tiny_ds)
    a, b = fitted.impute(region="synthetic"), loaded.impute(region="synthetic")
    np.testing.assert_array_equal(a.values, b.values)
    assert loaded.config == fitted.config and len(loaded.history) == 3
    assert not list(tmp_path.glob(".m.*"))  # no temporary leftovers


def test_a_model_trained_on_the_device_loads_there_bit_identical_and_on_cpu_close(tiny_ds, tmp_path, device):
    model = et.Avocado(tiny_ds, preset="paper", seed=2, device=device, **TINY)
    model.fit(epochs=2, progress=False)
    model.save(tmp_path / "m")
    imputed = model.impute(region="synthetic").values
    again = et.Avocado.load(tmp_path / "m", tiny_ds, device=device)
    assert again.device == model.device
    np.testing.assert_array_equal(again.impute(region="synthetic").values, imputed)
    on_cpu = et.Avocado.load(tmp_path / "m", tiny_ds, device="cpu")
    assert on_cpu.module.genome_25bp.weight.device.type == "cpu"
    # on CUDA the imputations are bf16 autocast, on CPU float32: equal to bf16's precision
    np.testing.assert_allclose(on_cpu.impute(region="synthetic").values, imputed, rtol=2e-2, atol=2e-2)


def test_load_refuses_mismatched_store(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    other = et.datasets.synthetic(tmp_path / "o.zarr", n_biosamples=5, n_assays=4, n_positions=1_200, seed=5)
    with pytest.raises(et.ModelError, match=r"lacks the model's biosample\(s\) \['B05'\]"):
        et.Avocado.load(tmp_path / "m", other)
    longer = et.datasets.synthetic(tmp_path / "l.zarr", n_biosamples=6, n_assays=4, n_positions=1_300, seed=5)
    with pytest.raises(et.ModelError, match="genomes differ"):
        et.Avocado.load(tmp_path / "m", longer)


def _store_files(path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


def test_save_keeps_user_files_refuses_foreign_directories_and_sweeps_leftovers(fitted, tiny_ds, tmp_path):
    target = tmp_path / "m"
    fitted.save(target)
    (target / "notes.txt").write_text("mine")
    (target / ".weights.0123abcd.tmp").write_bytes(b"half")  # what killed saves leave
    (target / "weights-0123456789abcdef.pt").write_bytes(b"orphan")
    legacy = tmp_path / ".m.old-4242"  # the copy a killed save of earlier versions left beside the model
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    (legacy / "weights.pt").write_bytes(b"x" * 100)
    fitted.save(target)
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir())[:2] == ["config.json", "notes.txt"] and len(list(target.iterdir())) == 3
    assert not legacy.exists()
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(ModelFileError, match=r"documents is not an epitensor model directory .*thesis\.tex"):
        fitted.save(foreign)
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    (foreign / "config.json").write_text('{"format": "other-tool"}')
    with pytest.raises(ModelFileError, match="refusing to save"):
        fitted.save(foreign)
    assert et.Avocado.load(target, tiny_ds).history.equals(fitted.history)


def test_models_saved_by_earlier_versions_load_and_are_upgraded_by_the_next_save(fitted, tiny_ds, tmp_path):
    fitted.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / meta.pop("weights")["file"]).rename(tmp_path / "m" / "weights.pt")
    meta["format_version"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))  # the layout of format version 1
    loaded = et.Avocado.load(tmp_path / "m", tiny_ds)
    np.testing.assert_array_equal(loaded.impute(region="synthetic").values, fitted.impute(region="synthetic").values)
    del meta["history"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))  # damaged: a save over it repairs it
    loaded.save(tmp_path / "m")
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert len(names) == 2 and names[1].startswith("weights-")
    assert et.Avocado.load(tmp_path / "m", tiny_ds).history.equals(fitted.history)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def _rewrite_weights(model_dir, data: bytes, legacy=False) -> Path:
    """Replace the model's weights by ``data``, recording its hash as a save would (or as format version 1)."""
    meta = json.loads((model_dir / "config.json").read_text())
    old = model_dir / meta.get("weights", {}).get("file", "weights.pt")
    if legacy:
        old.unlink()
        meta.pop("weights", None)
        file = model_dir / "weights.pt"
    else:
        file = old
        if "weights" in meta:
            meta["weights"]["sha256"] = hashlib.sha256(data).hexdigest()
    file.write_bytes(data)
    (model_dir / "config.json").write_text(json.dumps(meta))
    return file


def _damage(kind, model_dir) -> str:
    """Damage the saved model in ``model_dir`` one way; return the file the error must name."""
    config = model_dir / "config.json"
    meta = json.loads(config.read_text())
    weights = model_dir / meta.get("weights", {}).get("file", "weights.pt")  # format 1: weights.pt
    if kind == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif kind == "truncated weights, format 1":
        _rewrite_weights(model_dir, weights.read_bytes()[:1000], legacy=True)
        return "weights.pt"
    elif kind == "not a torch file":
        _rewrite_weights(model_dir, b"\x00garbage" * 50)
    elif kind == "pickled code":
        buffer = io.BytesIO()
        torch.save({"x": _Payload()}, buffer)
        _rewrite_weights(model_dir, buffer.getvalue())
    elif kind == "weights of another shape":
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(3)}, buffer)
        _rewrite_weights(model_dir, buffer.getvalue())
    elif kind == "config not JSON":
        config.write_text("{not json")
        return "config.json"
    elif kind == "config lacks keys":
        del meta["fitted_positions"], meta["history"]
        config.write_text(json.dumps(meta))
        return "config.json"
    elif kind == "weights missing":
        weights.unlink()
    elif kind == "not a model":
        config.unlink()
        return model_dir.name
    return weights.name


@pytest.mark.parametrize("kind", ["truncated weights", "truncated weights, format 1", "not a torch file", "pickled code",
                                  "weights of another shape", "config not JSON", "config lacks keys", "weights missing",
                                  "not a model"])
def test_damaged_model_files_give_one_line_errors(fitted, tiny_ds, tmp_path, kind, capfd):
    fitted.save(tmp_path / "m")
    named = _damage(kind, tmp_path / "m")
    with pytest.raises(ModelFileError) as err:
        et.Avocado.load(tmp_path / "m", tiny_ds)
    message = str(err.value)
    assert named in message and "\n" not in message and "save" in message, message
    assert "weights_only" not in message and "this must never run" not in capfd.readouterr().out


@pytest.mark.parametrize("arguments", [dict(epochs=0), dict(epochs=-1), dict(epochs=1.5), dict(epochs=True),
                                       dict(epochs="3"), dict(epochs=1, time_limit=0), dict(epochs=1, time_limit=-5.0),
                                       dict(epochs=1, time_limit=float("nan")), dict(epochs=1, seed=-1)])
def test_fit_rejects_bad_arguments_before_changing_anything(fitted, arguments):
    before, history = {k: v.clone() for k, v in fitted.module.state_dict().items()}, fitted.history.copy()
    with pytest.raises(et.ModelError, match=str(next(iter(arguments))) if len(arguments) == 1 else "time_limit|seed"):
        fitted.fit(region="synthetic:0-10000", **arguments, progress=False)  # another region would reset the factors
    after = fitted.module.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert fitted.history.equals(history) and len(fitted.fitted_positions) == 1_200
    with pytest.raises(et.ModelError, match="epochs"):
        fitted.fit_genome_factors("synthetic:0-10000", epochs=-1, progress=False)


def test_impute_rejects_bad_batch_size_and_device(fitted, tiny_ds):
    for bad in (0, -1, 2.5):
        with pytest.raises(et.ModelError, match="batch_size"):
            fitted.impute("B00", "H3K4me3", region="synthetic:0-1000", batch_size=bad)
    with pytest.raises(et.ModelError, match="unknown device 'tpu'"):
        et.Avocado(tiny_ds, preset="paper", device="tpu", **TINY)


def test_impute_to_store_checks_region_before_writing(fitted, tiny_ds):
    path = tiny_ds.attrs["source"]
    before = _store_files(path)
    with pytest.raises(et.RegionError, match="runs past"):
        fitted.impute_to_store(region="synthetic:0-100000", progress=False)
    assert _store_files(path) == before  # no "imputed" variable created


def test_imputing_against_a_store_without_the_training_tracks_is_an_error(tmp_path):
    """A model whose imputations add the average activity of training tracks, loaded against a store with the
    same labels but without those tracks, refuses to impute (it would silently give NaN)."""
    ds = et.datasets.synthetic(tmp_path / "a.zarr", n_biosamples=6, n_assays=4, n_positions=1_200, missing=0.2, seed=5)
    model = et.Avocado(ds, preset="paper", seed=1, baseline_weight=0.5, **TINY)
    model.fit(epochs=1, progress=False)
    model.save(tmp_path / "m")
    other = et.datasets.synthetic(tmp_path / "b.zarr", n_biosamples=6, n_assays=4, n_positions=1_200, missing=0.2, seed=8)
    lacking = [p for p in model.training_tracks if not other["observed"].sel(biosample=p[0], assay=p[1])]
    assert lacking
    loaded = et.Avocado.load(tmp_path / "m", other)
    with pytest.raises(et.ModelError, match=r"does not hold the model's training track\(s\) \[\('"):
        loaded.impute(region="synthetic:0-1000")
    before = _store_files(tmp_path / "b.zarr")
    with pytest.raises(et.ModelError, match=lacking[0][0]):
        loaded.impute_to_store(region="synthetic:0-1000", progress=False)
    assert _store_files(tmp_path / "b.zarr") == before
    assert np.isfinite(et.Avocado.load(tmp_path / "m", ds).impute(region="synthetic:0-1000").values).all()

def test_store_outputs(fitted, tiny_ds):
    path = tiny_ds.attrs["source"]
    fitted.write_factors()
    fitted.impute_to_store(biosamples=["B01"], assays=["H3K4me3", "H3K27me3"], region="synthetic:0-20000", progress=False,
                           precision="float32")
    ds = et.open_dataset(path)
    assert ds.genome_factors_25bp.dims == ("position", "factor_25bp")
    assert ds.genome_factors_5kbp.sizes["position_5kbp"] == 6
    assert ds.genome_factors_250bp.chunks is not None  # genome-long variables stay lazy
    np.testing.assert_allclose(ds.biosample_factors.values, fitted.factors("biosample").values)
    g = fitted.genome_factors("synthetic")
    np.testing.assert_allclose(ds.genome_factors_25bp.values, g.sel(factor=g.resolution == "25bp").values)
    written = ds.imputed.sel(biosample="B01", assay="H3K4me3").values
    expect = fitted.impute("B01", "H3K4me3", region="synthetic:0-20000").values[0, 0]
    np.testing.assert_allclose(written[:800], expect, rtol=1e-6)
    assert np.isnan(written[800:]).all() and np.isnan(ds.imputed.sel(biosample="B00").values).all()
    xr.testing.assert_identical(ds.signal.load(), tiny_ds.signal.load())  # signal untouched



def test_impute_to_store_pairs_writes_exactly_the_unobserved_tracks_in_process(fitted, tiny_ds):
    """pairs="unobserved" completes the tensor in this process: each unobserved track gets the model's
    imputation, and no observed track is written (a list of pairs in any order writes those only)."""
    path, region = tiny_ds.attrs["source"], "synthetic:0-4000"
    fitted.impute_to_store(pairs="unobserved", region=region, progress=False, precision="float32")
    ds = et.open_dataset(path)
    observed = ds.observed.to_pandas()
    written = ds.imputed.isel(position=slice(0, 160)).notnull().all("position").to_pandas()  # 4 kb: 160 bins
    assert (written == ~observed).all().all() and (~observed).any().any()
    b, a = next((b, a) for b in observed.index for a in observed.columns if not observed.loc[b, a])
    np.testing.assert_allclose(ds.imputed.sel(biosample=b, assay=a).isel(position=slice(0, 160)).values,
                               fitted.impute(b, a, region=region).values[0, 0], rtol=1e-6)
    with pytest.raises(et.ArgumentError, match="not both"):
        fitted.impute_to_store(pairs="unobserved", biosamples="B00", region=region, progress=False)
    with pytest.raises(et.ModelError, match="'unobserved', 'all' or a list"):
        fitted.impute_to_store(pairs="missing", region=region, progress=False)
    with pytest.raises(et.ModelError, match=r"no \(biosample, assay\) pair to impute"):
        fitted.impute_to_store(pairs=[], region=region, progress=False)
    with pytest.raises(et.ModelError, match=r"no \(biosample, assay\) pair to impute"):
        fitted.impute_to_store(pairs=[], region=region, workers=1, progress=False)  # the same rule by blocks


# ---------------------------------------------------------------------- freezing (stage 2, extension)
def test_train_only_genome_tables_leaves_network_unchanged(fitted):
    before = {k: v.clone() for k, v in fitted.module.state_dict().items()}
    genome_params = [t.weight for t in fitted.module.genome_tables()]
    fitted.fit(epochs=1, progress=False, parameters=genome_params)
    after = fitted.module.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]) == k.startswith(("hidden", "output", "biosample", "assay")), k


def test_fit_genome_factors_of_a_new_block(fitted):
    network = {k: v.clone() for k, v in fitted.module.state_dict().items() if not k.startswith("genome")}
    hist = fitted.fit_genome_factors("synthetic:5000-15000", epochs=2, progress=False)
    assert len(hist) == 2 and fitted.fitted_positions.n_rows == (400, 40, 2)
    assert all(torch.equal(v, fitted.module.state_dict()[k]) for k, v in network.items())
    assert fitted.impute("B00", "H3K4me3", region="synthetic:5000-6000").shape == (1, 1, 40)
    assert all(p.requires_grad for p in fitted.module.parameters())


def test_grad_masks_keep_frozen_rows_bit_identical(fitted):
    old = fitted.module.biosample.weight.detach().clone()
    mask = torch.zeros(6, dtype=torch.bool)
    mask[5] = True
    fitted.fit(epochs=2, progress=False, parameters=[fitted.module.biosample.weight],
               grad_masks={fitted.module.biosample.weight: mask})
    new = fitted.module.biosample.weight.detach()
    assert torch.equal(new[:5], old[:5]) and not torch.equal(new[5], old[5])


def test_extend_table_keeps_rows():
    m = AvocadoModule(3, 2, (10, 1, 1), AvocadoConfig(n_nodes=8))
    old = m.assay.weight.detach().clone()
    m.extend_table("assay", 2)
    assert m.assay.weight.shape == (4, 256) and torch.equal(m.assay.weight[:2], old)


# ---------------------------------------------------------------------- errors
def test_unknown_labels_list_known_ones(fitted):
    with pytest.raises(et.LabelError, match="known biosamples: B00, B01"):
        fitted.impute("E999", "H3K4me3", region="synthetic:0-1000")
    with pytest.raises(et.LabelError, match="unknown assay"):
        fitted.impute("B00", "H3K999", region="synthetic:0-1000")


def test_region_outside_fitted_positions(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", **TINY)
    with pytest.raises(et.ModelError, match="not fitted"):
        model.impute(region="synthetic:0-1000")
    model.fit(region="synthetic:0-10000", epochs=1, progress=False)
    with pytest.raises(et.RegionError, match="no fitted genome factors"):
        model.impute("B00", "H3K4me3", region="synthetic:9000-12000")


def test_training_track_errors(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", **TINY)
    missing = tiny_ds.epi.tracks("missing").iloc[0]
    with pytest.raises(et.ModelError, match="not observed"):
        model.fit(tracks=[(missing.biosample, missing.assay)], epochs=1, progress=False)
    observed = tiny_ds.epi.tracks().iloc[0]
    with pytest.raises(et.ModelError, match="no observed training track for biosample"):
        model.fit(tracks=[(observed.biosample, observed.assay)], epochs=1, progress=False)


def test_empty_and_non_finite_training_data(tiny_ds):
    with pytest.raises(et.DataError, match="empty"):
        build_training_data(np.zeros((0, 10)), [], [], [[], [], []], device="cpu")
    path = tiny_ds.attrs["source"]
    b, a = tiny_ds.epi.tracks().iloc[0][["biosample", "assay"]]
    arr = zarr.open_group(path, mode="r+")["signal"]
    bi, ai = list(tiny_ds.biosample.values).index(b), list(tiny_ds.assay.values).index(a)
    arr[bi, ai, 10] = np.inf
    with pytest.raises(et.DataError, match=f"{b}/{a}"):
        et.Avocado(tiny_ds, preset="paper", **TINY).fit(epochs=1, progress=False)


def test_diverging_loss_stops_and_keeps_last_good_weights(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", **TINY)
    model.fit(epochs=1, progress=False)
    good = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.config.learning_rate = 1e38
    model.reset_optimizer()  # the next fit builds Adam with the new learning rate
    with pytest.raises(et.ModelError, match="loss became"):
        model.fit(epochs=3, progress=False)
    state = model.module.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    if len(model.history) == 1:  # diverged in the first epoch of the second fit: back to the first fit's weights
        assert all(torch.equal(good[k], state[k]) for k in good)


def test_validation_and_early_stopping(tiny_ds, device):
    model = et.Avocado(tiny_ds, preset="paper", device=device, validation_fraction=0.1, patience=2, learning_rate=0.05, **TINY)
    hist = model.fit(epochs=40, progress=False)
    assert "val_mse" in hist and np.isfinite(hist.val_mse).all()
    assert len(hist) < 40  # stopped early


def test_residual_model_predicts_around_average_activity(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", residual=True, **TINY)
    model.fit(epochs=1, progress=False)
    b, a = tiny_ds.epi.tracks("missing").iloc[0][["biosample", "assay"]]
    imp = model.impute(b, a, region="synthetic").values[0, 0]
    assert np.corrcoef(imp, _baseline(tiny_ds, b, a))[0, 1] > 0.9


def test_baseline_weight_blends_with_average_activity(tiny_ds, device):
    model = et.Avocado(tiny_ds, preset="paper", device=device, baseline_weight=1.0, **TINY)
    model.fit(epochs=1, progress=False)
    b, a = tiny_ds.epi.tracks("missing").iloc[0][["biosample", "assay"]]
    np.testing.assert_allclose(model.impute(b, a, region="synthetic").values[0, 0], _baseline(tiny_ds, b, a), rtol=1e-5)
    model.config.baseline_weight = 0.5
    half = model.impute(b, a, region="synthetic").values[0, 0]
    model.config.baseline_weight = 0.0
    net = model.impute(b, a, region="synthetic").values[0, 0]
    np.testing.assert_allclose(half, 0.5 * (net + _baseline(tiny_ds, b, a)), rtol=1e-5, atol=1e-6)


def test_unknown_preset_and_option(tiny_ds):
    with pytest.raises(et.ModelError, match="unknown preset"):
        et.Avocado(tiny_ds, preset="huge")
    with pytest.raises(et.ModelError, match="unknown Avocado options"):
        et.Avocado(tiny_ds, preset="paper", n_neurons=3)


# ---------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_and_imputation_match_cpu_shapes(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", device="cuda", **TINY)
    hist = model.fit(epochs=5, progress=False)
    assert hist.loss.iloc[-1] < hist.loss.iloc[0]
    assert model.module.genome_25bp.weight.is_cuda
    imp = model.impute(region="synthetic:0-1000")
    assert imp.shape == (6, 4, 40) and np.isfinite(imp.values).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_tensor_is_16_bit(tiny_ds):
    model = et.Avocado(tiny_ds, preset="paper", device="cuda", **TINY)
    pairs, rows = model.observed_tracks(), GenomeRows.whole_genome(model.genome)
    data = training_data(model.read_tracks(pairs, rows.positions), *model.indices(pairs), rows.rows(rows.positions),
                         model.config, n_assays=len(model.assays), device=model.device, seed=0, track_names=None,
                         validation_fraction=0.0)
    assert data.values.dtype == torch.float16 and data.values.is_cuda


def test_train_function_on_raw_tensors():
    cfg = AvocadoConfig(n_nodes=8, batch_size=64)
    m = AvocadoModule(2, 2, (100, 10, 1), cfg)
    rng = np.random.default_rng(0)
    data = build_training_data(rng.random((3, 100)), [0, 1, 1], [0, 0, 1], GenomeRows(np.arange(100)).rows(np.arange(100)), device="cpu")
    hist, _ = train(m, data, 3, cfg, progress=False)
    assert len(hist) == 3 and (hist.samples_per_s > 0).all()


def test_residual_offset_matches_training_for_single_track_assays():
    """Under ``residual`` an assay with one training track is trained on its raw signal (its
    leave-one-out mean is 0), so its predictions must not add its average activity back."""
    from epitensor.model.config import AvocadoConfig
    from epitensor.model.offsets import combine_with_average, leave_one_out_mean, offset_applies

    residual = AvocadoConfig.from_preset("paper", residual=True)
    assert not offset_applies(residual, 1) and offset_applies(residual, 2)
    assert offset_applies(AvocadoConfig.from_preset("small"), 1)  # shrinkage toward a single track is fine
    values = np.array([[2.0, 4.0]], dtype=np.float32)
    assert not leave_one_out_mean(values, np.array([0]), 1).any()
    pred, avg = np.array([[1.0, 1.0]]), np.array([[2.0, 4.0]])
    np.testing.assert_allclose(combine_with_average(pred, avg, residual), [[3.0, 5.0]])
    np.testing.assert_allclose(combine_with_average(pred, avg, AvocadoConfig()), pred)
