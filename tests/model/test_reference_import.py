"""Importing a reference Avocado model (Keras NAME.json + NAME.h5) gives the reference's predictions.

The fixture in fixtures/reference_avocado was made once with the reference code (make_fixture.py
there, run in the reference's own environment): a 3 x 3 model over 4,010 positions and the
reference's own predictions of its nine (celltype, assay) pairs. No TensorFlow here: h5py only.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES

import epitensor as et
from epitensor.cli import main

h5py = pytest.importorskip("h5py")

FIXTURE = FIXTURES / "reference_avocado"
JSON, H5 = FIXTURE / "tiny.json", FIXTURE / "tiny.h5"
N = 4_010  # the fixture's n_genomic_positions
BIN = 25


@pytest.fixture(scope="module")
def reference():
    """The reference's predictions: {(celltype, assay): float32 track of N bins}."""
    with np.load(FIXTURE / "tiny_predictions.npz") as npz:
        return {(str(c), str(a)): npz["predictions"][k] for k, (c, a) in enumerate(npz["pairs"])}


def make_store(path, biosamples=("E116", "X9", "E003", "E017"), assays=("H3K36me3", "H3K4me3", "H3K27me3"),
               transform="arcsinh"):
    """An empty store whose labels are ordered differently from the model's (and include an extra
    biosample), with two contigs: chrA (3,000 bins, too short for the model) and chrB (4,500 bins)."""
    genome = et.Genome("test", ["chrA", "chrB"], [3_000 * BIN, 4_500 * BIN])
    return et.create_store(path, list(biosamples), list(assays), genome, transform=transform)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("ref") / "store.zarr")


def max_difference(model, reference, region) -> float:
    imputed = model.impute(region=region)
    return max(float(np.abs(imputed.sel(biosample=c, assay=a).values - track).max())
               for (c, a), track in reference.items())


def test_the_fixture_is_small_and_its_labels_are_not_in_store_order(store):
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 1_000_000
    meta = json.loads(JSON.read_text())
    ds = et.open_dataset(store)
    assert list(ds.biosample.values[[0, 2, 3]]) != meta["celltypes"]
    assert list(ds.assay.values) != meta["assays"]


def test_imported_predictions_equal_the_references_on_every_pair(store, reference):
    model = et.Avocado.from_reference(JSON, H5, store, region="chrB")
    assert model.biosamples == ["E017", "E003", "E116"] and model.assays == ["H3K4me3", "H3K27me3", "H3K36me3"]
    first = et.open_dataset(store).epi.genome.contig_bins("chrB")[0]
    assert model.fitted_positions.intervals() == [[first, first + N]]
    assert len(reference) == 9
    assert max_difference(model, reference, f"chrB:0-{N * BIN}") <= 1e-5
    assert model.training_tracks == [tuple(e) for e in json.loads(JSON.read_text())["experiments"]]


def test_the_reference_positions_start_at_the_regions_first_bin(store, reference):
    model = et.Avocado.from_reference(JSON, H5, store, region="chrB:5,000-")  # 200 bins (5 kbp) in
    assert max_difference(model, reference, f"chrB:5000-{5_000 + N * BIN}") <= 1e-5
    with pytest.raises(et.RegionError, match="no fitted genome factors"):
        model.impute(region="chrB:0-5000")


def test_a_weights_only_h5_imports_too(store, reference, tmp_path):
    """The reference's Keras ``save_weights`` layout: the layer groups at the root, no architecture."""
    weights = tmp_path / "weights.h5"
    with h5py.File(H5, "r") as src, h5py.File(weights, "w") as dst:
        for name in src["model_weights"]:
            src.copy(src["model_weights"][name], dst, name)
        dst.attrs.update(dict(src["model_weights"].attrs))
    model = et.Avocado.from_reference(JSON, weights, store, region="chrB")
    assert max_difference(model, reference, f"chrB:0-{N * BIN}") <= 1e-5


def test_a_store_without_a_label_of_the_model_is_refused(tmp_path):
    path = make_store(tmp_path / "s.zarr", biosamples=("E003", "E017"))
    with pytest.raises(et.ModelError, match=r"lacks the biosample\(s\) \['E116'\].*tiny\.json"):
        et.Avocado.from_reference(JSON, H5, path, region="chrB")


def test_a_store_on_another_scale_than_the_model_is_refused(tmp_path, reference):
    raw = make_store(tmp_path / "raw.zarr", transform="none")
    with pytest.raises(et.ModelError, match=r"transform 'none', but the reference model .*tiny\.json predicts 'arcsinh'"):
        et.Avocado.from_reference(JSON, tmp_path / "never-read.h5", raw, region="chrB")  # checked before the h5
    model = et.Avocado.from_reference(JSON, H5, raw, region="chrB", transform="none")  # a model trained on raw signal
    assert max_difference(model, reference, f"chrB:0-{N * BIN}") <= 1e-5


def test_a_genome_range_that_does_not_fit_is_refused(store):
    with pytest.raises(et.ModelError, match=r"tiny\.json models 4,010 genomic positions.*holds only 3,000 bins"):
        et.Avocado.from_reference(JSON, H5, store)  # default: the first contig, chrA, 3,000 bins
    with pytest.raises(et.ModelError, match="not a multiple of 200 bins"):
        et.Avocado.from_reference(JSON, H5, store, region="chrB:250-")
    with pytest.raises(et.ModelError, match="one region"):
        et.Avocado.from_reference(JSON, H5, store, region=["chrA", "chrB"])


@pytest.mark.parametrize("text, problem", [
    ('{"celltypes": ["a"], "assays": ["b"]}', r"is not a reference Avocado model's json: it lacks \['n_genomic_positions'"),
    ('{"format": "epitensor-avocado"}', "is an epitensor model's config.json"),
    ("not json at all", "is not valid JSON"),
])
def test_a_json_that_is_not_a_reference_model_is_refused(store, tmp_path, text, problem):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(et.ReferenceModelError, match=problem) as err:
        et.Avocado.from_reference(bad, H5, store, region="chrB")
    assert str(bad) in str(err.value)


def test_an_h5_with_missing_layers_is_refused(store, tmp_path):
    damaged = tmp_path / "tiny.h5"
    shutil.copy(H5, damaged)
    with h5py.File(damaged, "r+") as f:
        del f["model_weights/dense_1"]
    with pytest.raises(et.ReferenceModelError, match=r"tiny\.h5 lacks the layer\(s\) \['dense_1'\]") as err:
        et.Avocado.from_reference(JSON, damaged, store, region="chrB")
    assert str(damaged) in str(err.value)


def test_an_h5_that_does_not_fit_the_json_or_is_not_hdf5_is_refused(store, tmp_path):
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({**json.loads(JSON.read_text()), "n_nodes": 32}))
    with pytest.raises(et.ReferenceModelError, match=r"layer 'dense_0' has weights of shapes \[\(30, 16\), \(16,\)\].*"
                                                     r"\[\(30, 32\), \(32,\)\]"):
        et.Avocado.from_reference(wider, H5, store, region="chrB")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(et.ReferenceModelError, match="garbage.h5 is not a readable HDF5 file"):
        et.Avocado.from_reference(JSON, garbage, store, region="chrB")


def test_an_h5_whose_network_is_not_the_references_is_refused(store, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(H5, other)
    with h5py.File(other, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["name"] == "dense_0":
                layer["config"]["activation"] = "tanh"
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(et.ReferenceModelError, match=r"other\.h5: layers \{'dense_0': 'tanh'\}"):
        et.Avocado.from_reference(JSON, other, store, region="chrB")


def test_the_imported_model_saves_loads_and_imputes_into_the_store(tmp_path, reference):
    path = make_store(tmp_path / "s.zarr")
    model = et.Avocado.from_reference(JSON, H5, path, region="chrB")
    model.save(tmp_path / "model")
    loaded = et.Avocado.load(tmp_path / "model", path)
    region = f"chrB:0-{N * BIN}"
    np.testing.assert_array_equal(loaded.impute(region=region).values, model.impute(region=region).values)
    assert loaded.training_tracks == model.training_tracks and loaded.config == model.config
    loaded.impute_to_store(biosamples="E116", assays="H3K36me3", region=region, progress=False, precision="float32")
    written = et.open_dataset(path).imputed.epi.region(region).sel(biosample="E116", assay="H3K36me3").values
    np.testing.assert_allclose(written, reference[("E116", "H3K36me3")], atol=1e-5, rtol=0)


def test_the_cli_imports_and_saves_a_model(tmp_path, reference):
    path = make_store(tmp_path / "s.zarr")
    runner = CliRunner()
    result = runner.invoke(main, ["import-model", str(JSON), str(H5), str(path), str(tmp_path / "m"), "--region", "chrB"])
    assert result.exit_code == 0, result.output
    assert "3 celltypes x 3 assays" in result.output and "4,010 positions" in result.output
    model = et.Avocado.load(tmp_path / "m", path)
    assert max_difference(model, reference, f"chrB:0-{N * BIN}") <= 1e-5
    result = runner.invoke(main, ["import-model", str(JSON), str(H5), str(path), str(tmp_path / "m2")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "holds only 3,000 bins" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m2").exists()
