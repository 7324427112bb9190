"""A client that implements only the Zarr v3 core spec (tensorstore's zarr3 driver) reads a project
store: its signal, its observed mask, and the labels that say which row is which."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import epitensor as et

ts = pytest.importorskip("tensorstore")


def ts_read(store, name: str) -> np.ndarray:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{store}/{name}"}}
    return ts.open(spec).result().read().result()


def ts_labels(store, name: str) -> list[str]:
    """Decode the core-typed copy of a label array, as the store's docs tell an outside reader to."""
    return [bytes(row).rstrip(b"\0").decode("utf-8") for row in ts_read(store, f"labels_utf8/{name}")]


@pytest.fixture
def store(tmp_path):
    ds = et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=3, n_assays=4, n_positions=3_000, missing=0.4, seed=2)
    return ds.attrs["source"]


def _check_against_epitensor(store):
    ds = et.open_dataset(store)
    for name in ("biosample", "assay", "biosample_summary", "assay_category"):
        assert ts_labels(store, name) == ds[name].values.tolist(), name
    np.testing.assert_array_equal(ts_read(store, "observed"), ds.observed.values)
    np.testing.assert_array_equal(ts_read(store, "signal"), ds.signal.values)
    # an outside reader finds a track by its labels
    b, a = ts_labels(store, "biosample").index("B01"), ts_labels(store, "assay").index("H3K27ac")
    np.testing.assert_array_equal(ts_read(store, "signal")[b, a], ds.signal.sel(biosample="B01", assay="H3K27ac").values)


def test_tensorstore_reads_signal_observed_and_labels(store):
    _check_against_epitensor(store)


def test_labels_stay_in_sync_after_add_labels(store):
    et.store.add_labels(store, biosamples={"E999-long-name": "Gewebe ä, 胎児"}, assays=["ATAC-seq"])
    et.write_track(store, "E999-long-name", "ATAC-seq", np.arange(3_000, dtype=np.float32))
    _check_against_epitensor(store)
    assert ts_labels(store, "biosample_summary")[-1] == "Gewebe ä, 胎児"


def test_core_typed_copies_are_invisible_to_xarray(store):
    for ds in (et.open_dataset(store), xr.open_zarr(store, consolidated=False)):
        assert not any("utf8" in str(n) for n in [*ds.variables, *ds.dims])
