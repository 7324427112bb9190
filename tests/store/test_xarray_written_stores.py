"""Stores written by ``xarray.Dataset.to_zarr`` with xarray's defaults (consolidated metadata).

Every project write that changes the arrays of such a store keeps its consolidated metadata
current, so ``xr.open_zarr`` (which trusts it) sees what the project added, and the project's own
workers never trip over a stale copy.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

import epitensor as et
from epitensor.datasets import synthetic_bigwigs
from epitensor.store import has_consolidated_metadata

torch.set_num_threads(1)
TINY = dict(n_nodes=8, n_layers=1, batch_size=250)
GENOME = et.Genome("toy", ["c1"], [2_000 * 25], chunk_bins=1_000)
STAGE1, STAGE2 = "c1:0-25kb", "c1:25kb-50kb"


def xarray_copy(ds: xr.Dataset, path):
    """``ds`` saved the way an xarray user saves it: ``to_zarr`` with every default."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: "consolidated metadata is not part of the v3 spec"
        ds.to_zarr(path)
    assert has_consolidated_metadata(path)
    return path


def xr_view(path) -> xr.Dataset:
    """The store as ``xr.open_zarr`` sees it with its defaults (through the consolidated metadata)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to unconsolidated reads
        return xr.open_zarr(path)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("xarray_written")
    ds = et.datasets.synthetic(root / "base.zarr", n_biosamples=4, n_assays=3, genome=GENOME, missing=0.3,
                               keep_held_out=False, seed=3)
    return xarray_copy(ds, root / "xr.zarr")


@pytest.fixture
def store(written, tmp_path):
    shutil.copytree(written, tmp_path / "s.zarr")
    return tmp_path / "s.zarr"


def test_track_variable_and_labels_added_are_seen_by_xr_open_zarr(store):
    ds = et.open_dataset(store)
    b, a = str(ds.biosample.values[0]), str(ds.assay.values[0])
    et.write_track(store, b, a, np.ones(GENOME.n_positions), variable="held_out")
    assert "held_out" in xr_view(store).data_vars
    np.testing.assert_array_equal(xr_view(store).held_out.sel(biosample=b, assay=a).values, 1)

    et.store.add_labels(store, biosamples={"E999": "new tissue"}, assays=["H3K9me3"])
    view = xr_view(store)
    assert view.signal.shape == (5, 4, GENOME.n_positions) and view.held_out.shape == (5, 4, GENOME.n_positions)
    assert list(view.biosample.values)[-1] == "E999" and list(view.assay.values)[-1] == "H3K9me3"
    assert view.observed.shape == (5, 4) and not view.observed.sel(biosample="E999").any()
    grown = et.open_dataset(store)
    assert grown.biosample_summary.sel(biosample="E999").item() == "new tissue"
    # the project's writes also gave the store the core-typed label copies
    assert zarr.open_group(str(store), mode="r")["labels_utf8/biosample"].shape[0] == 5


def test_extension_grows_an_xarray_written_store(store, tmp_path):
    ds = et.open_dataset(store)
    assays = ds.assay.values.tolist()
    model = et.Avocado(ds, preset="paper", seed=0, **TINY)
    model.fit(region=STAGE1, epochs=2, progress=False)
    source = et.create_store(tmp_path / "new.zarr", {"E900": "new donor"}, assays, GENOME)
    et.write_track(source, "E900", assays[0], np.linspace(0, 2, GENOME.n_positions))
    model.add_biosamples(et.open_dataset(source), tracks=[("E900", assays[0])], epochs=1, progress=False)
    view = xr_view(store)
    assert view.biosample.values.tolist()[-1] == "E900" and bool(view.observed.sel(biosample="E900", assay=assays[0]))
    np.testing.assert_allclose(view.signal.sel(biosample="E900", assay=assays[0]).values,
                               np.linspace(0, 2, GENOME.n_positions, dtype=np.float32))


def test_ingest_into_an_xarray_written_store_twice(tmp_path):
    chroms = {"c1": 2_000 * 25}
    manifest = synthetic_bigwigs(tmp_path / "bw", chroms, ["B1", "B2"], ["H3K4me3"], seed=1)
    made = et.create_store(tmp_path / "made.zarr", ["B1", "B2"], ["H3K4me3"], GENOME)
    store = xarray_copy(et.open_dataset(made), tmp_path / "xr.zarr")
    et.ingest(manifest.iloc[:1], store, progress=False)
    et.ingest(manifest, store, progress=False)  # second run: the progress group is already there
    assert xr_view(store).observed.values.all()
    reference = et.ingest(manifest, tmp_path / "ref.zarr", assembly=GENOME, progress=False)
    np.testing.assert_array_equal(xr_view(store).signal.values, et.open_dataset(reference).signal.values)


def test_fit_impute_to_store_and_fit_genome_on_a_local_cluster(store):
    from distributed import Client, LocalCluster

    model = et.Avocado(et.open_dataset(store), preset="paper", seed=0, **TINY)
    model.fit(region=STAGE1, epochs=3, progress=False)
    model.write_factors()
    assert {"biosample_factors", "assay_factors", "genome_factors_25bp"} <= set(xr_view(store).data_vars)
    model.impute_to_store(region=STAGE1, progress=False)
    assert np.isfinite(xr_view(store).imputed.isel(position=slice(0, 1_000)).values).all()

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        report = model.fit_genome(client=client, region=STAGE2, block_size="25kb", epochs=2, progress=False)
    assert (report.status == "fitted").all(), report.error.tolist()
    factors = xr_view(store).genome_factors_25bp.values
    assert np.isfinite(factors[1_000:2_000]).all()
    np.testing.assert_array_equal(factors, et.open_dataset(store).genome_factors_25bp.values)


def test_a_store_rechunked_by_xarray_is_read_but_not_written_in_parallel(tmp_path):
    ds = et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=2, n_assays=2, n_positions=2_000, seed=0,
                               genome=GENOME)
    copy = ds.load()
    for variable in copy.variables.values():
        variable.encoding = {}
    xarray_copy(copy.chunk({"biosample": 2, "assay": 2, "position": 500}), tmp_path / "big-chunks.zarr")
    again = et.open_dataset(tmp_path / "big-chunks.zarr")
    np.testing.assert_array_equal(again.signal.epi.read("c1:0-1000").values, ds.signal.epi.read("c1:0-1000").values)
    manifest = synthetic_bigwigs(tmp_path / "bw", {"c1": 2_000 * 25}, ["B00"], ["H3K4me3"], seed=0)
    with pytest.raises(et.SchemaError, match=r"\(1, 1, L\) chunks"):
        et.ingest(manifest, tmp_path / "big-chunks.zarr", progress=False)
