"""Labels are the truth: ordinary xarray work on a store-backed dataset gives what the labels say.

Each test is one of the defects found by using the dataset as an xarray user would (issue 11).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import epitensor as et
from epitensor.genome_index import GenomeIndex
from epitensor.store import read_tracks, store_source


@pytest.fixture
def ds(tmp_path):
    """3 biosamples x 3 assays x 90,000 bins, every track observed, three chunks per track."""
    return et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=3, n_assays=3, n_positions=90_000,
                                 missing=0.0, seed=0)


def _track(ds, b, a, lo=0, hi=None):
    """The values the store holds for one track, read with zarr alone (the oracle)."""
    import zarr

    root = zarr.open_group(ds.attrs["source"], mode="r")
    bi = list(root["biosample"][:]).index(b)
    ai = list(root["assay"][:]).index(a)
    return root["signal"][bi, ai, lo:hi]


def test_read_tracks_of_a_sorted_dataset_reads_the_labelled_track(ds):
    sorted_ds = ds.sortby("assay")
    b, a = "B00", str(sorted_ds.assay.values[0])
    assert a != str(ds.assay.values[0])  # the sort moved it: row 0 of the sorted dataset is another assay
    got = read_tracks(sorted_ds.signal, [(b, a)], range(1000, 2000))[0]
    np.testing.assert_array_equal(got, _track(ds, b, a, 1000, 2000))


def test_model_reads_the_values_the_user_object_holds(ds):
    ones = ds.assign(signal=ds.signal * 0 + 1)
    model = et.Avocado(ones, preset="small")
    values = model.read_tracks([("B01", "H3K4me3")], np.arange(5))
    np.testing.assert_array_equal(values, np.ones((1, 5), dtype=np.float32))
    subset = et.Avocado(ds.isel(biosample=[2, 0]), preset="small")
    np.testing.assert_array_equal(subset.read_tracks([("B00", "H3K27me3")], np.arange(50, 60))[0],
                                  _track(ds, "B00", "H3K27me3", 50, 60))


def test_avocado_on_a_reordered_dataset_equals_one_on_a_fresh_store(ds, tmp_path):
    reordered = ds.sortby("assay", ascending=False).isel(biosample=[2, 1, 0])
    fresh_path = tmp_path / "fresh.zarr"
    fresh = et.create_store(fresh_path, [str(b) for b in reordered.biosample.values],
                            [str(a) for a in reordered.assay.values], et.Genome.from_attrs(ds.attrs))
    for b in reordered.biosample.values:
        for a in reordered.assay.values:
            et.write_track(fresh, str(b), str(a), _track(ds, str(b), str(a)))
    fresh_ds = et.open_dataset(fresh_path)
    options = dict(preset="small", seed=0, device="cpu")
    m1 = et.Avocado(reordered, **options)
    m2 = et.Avocado(fresh_ds, **options)
    h1 = m1.fit(region="synthetic:0-100,000", epochs=2, progress=False)
    h2 = m2.fit(region="synthetic:0-100,000", epochs=2, progress=False)
    np.testing.assert_allclose(h1["loss"].to_numpy(), h2["loss"].to_numpy(), rtol=1e-6)
    pd.testing.assert_frame_equal(m1.factors("assay"), m2.factors("assay"))


def test_region_of_a_position_slice_is_labelled_by_its_bins(ds):
    da = ds.signal.isel(position=slice(40_000, None))
    with pytest.raises(et.RegionError, match="not wholly inside"):
        da.epi.region("synthetic:0-1000")
    part = da.epi.region("synthetic:1,000,000-1,001,000")
    assert part.position.values[0] == 40_000 and int(part.start[0]) == 1_000_000
    np.testing.assert_array_equal(part.sel(biosample="B01", assay="H3K4me3").values,
                                  _track(ds, "B01", "H3K4me3", 40_000, 40_040))


@pytest.mark.parametrize("reorder", ["position", "biosample", "assay"])
def test_store_with_reordered_coordinates_reads_agree(ds, tmp_path, reorder):
    saved = ds.isel({reorder: slice(None, None, -1)}).isel(position=slice(0, 45_000))
    saved = saved.load()
    for variable in saved.variables.values():
        variable.encoding = {}
    saved.to_zarr(tmp_path / "r.zarr", mode="w")
    again = et.open_dataset(tmp_path / "r.zarr")
    region = "synthetic:10,000-20,000" if reorder != "position" else "synthetic:1,500,000-1,510,000"
    lazy = again.signal.epi.region(region).load()
    fast = again.signal.epi.read(region)
    xr.testing.assert_identical(fast, lazy)
    lo = int(lazy.position.min())
    np.testing.assert_array_equal(lazy.sel(biosample="B02", assay="H3K27ac").sortby("position").values,
                                  _track(ds, "B02", "H3K27ac", lo, lo + lazy.sizes["position"]))


@pytest.mark.parametrize("how", ["region", "isel", "sel"])
def test_a_saved_subset_reopens_with_its_own_positions(ds, tmp_path, how):
    if how == "region":
        sub = ds.epi.region("synthetic:1,000,000-2,000,000")
    elif how == "isel":
        sub = ds.isel(position=slice(40_000, 80_000))
    else:
        sub = ds.sel(position="synthetic:1,000,000-2,000,000")
    sub.to_zarr(tmp_path / "sub.zarr")
    again = et.open_dataset(tmp_path / "sub.zarr")
    assert isinstance(again.xindexes["position"], GenomeIndex)
    table = again.epi.contigs()
    assert table.loc["synthetic", "start"] == 1_000_000 and table.loc["synthetic", "end"] == 2_000_000
    got = again.signal.epi.read("synthetic:1,500,000-1,500,100").sel(biosample="B00", assay="H3K4me3")
    np.testing.assert_array_equal(got.values, _track(ds, "B00", "H3K4me3", 60_000, 60_004))
    with pytest.raises(et.RegionError, match="not wholly inside"):
        again.epi.region("synthetic:0-1000")


def test_netcdf_round_trip_keeps_the_genome(ds, tmp_path):
    pytest.importorskip("h5netcdf")
    part = ds.epi.region("synthetic:0-10,000").load()
    part.to_netcdf(tmp_path / "p.nc", engine="h5netcdf")
    back = xr.open_dataset(tmp_path / "p.nc", engine="h5netcdf")
    assert back.signal.epi.genome == ds.epi.genome
    np.testing.assert_array_equal(back.signal.epi.read("synthetic:1000-2000").values,
                                  ds.signal.epi.read("synthetic:1000-2000").values)


def test_add_biosamples_after_training_on_a_position_subset(ds, tmp_path):
    model = et.Avocado(ds.isel(position=slice(0, 40_000)).sel(biosample=["B00", "B01"]), preset="small",
                       device="cpu")
    model.fit(region="synthetic:0-200,000", epochs=1, progress=False)
    model.add_biosamples(ds, biosamples=["B02"], epochs=1, progress=False)
    assert model.biosamples == ["B00", "B01", "B02"]


def test_evaluate_labelled_arrays_without_a_store():
    rng = np.random.default_rng(0)
    coords = {"biosample": ["b1", "b2"], "assay": ["a1"], "position": np.arange(500)}
    truth = xr.DataArray(rng.random((2, 1, 500)), dims=("biosample", "assay", "position"), coords=coords)
    guess = truth + rng.normal(0, 0.1, truth.shape)
    scores = et.evaluate(guess, truth, metrics=["mse", "gwcorr", "gwspear", "mse1obs", "mse1imp"])
    assert len(scores) == 2 and (scores["mse"] > 0).all() and (scores["gwcorr"] > 0.9).all()
    from sklearn.metrics import mean_squared_error

    expected = mean_squared_error(truth.sel(biosample="b1", assay="a1"), guess.sel(biosample="b1", assay="a1"))
    assert scores.set_index("biosample").loc["b1", "mse"] == pytest.approx(expected)
    with pytest.raises(et.SchemaError, match="need the genome"):
        et.evaluate(guess, truth, metrics=["mse"], eic_parity=True)


def test_accessor_on_xr_open_zarr_dataarrays(ds, tmp_path):
    z = xr.open_zarr(ds.attrs["source"], consolidated=False)
    got = z.signal.epi.read("synthetic:1000-2000").sel(biosample="B00", assay="H3K4me3")
    np.testing.assert_array_equal(got.values, _track(ds, "B00", "H3K4me3", 40, 80))
    assert z.signal.epi.region("synthetic:0-100").sizes["position"] == 4
    track = z.signal.sel(biosample="B00", assay="H3K4me3").epi.region("synthetic:0-10,000")
    assert track.epi.to_bigwig(tmp_path / "t.bw").exists()
    with pytest.raises(et.SchemaError, match="which bins it holds is unknown"):
        z.signal.isel(position=slice(100, None)).epi.region("synthetic:10,000-20,000")


def test_astype_and_reductions_keep_the_genome(ds):
    as64 = ds.signal.astype("float64")
    assert as64.epi.read("synthetic:0-100").dtype == np.float64
    mean = ds.signal.mean("biosample")
    np.testing.assert_allclose(mean.epi.region("synthetic:0-100").values,
                               ds.signal.epi.read("synthetic:0-100").mean("biosample").values, rtol=1e-6)


def test_label_slices_of_bins_are_inclusive_everywhere(ds):
    whole = ds.signal.sel(position=slice(1000, 2000))
    part = ds.signal.epi.region("synthetic:0-100,000").sel(position=slice(1000, 2000))
    assert whole.sizes["position"] == part.sizes["position"] == 1001


def test_fast_path_only_for_unmodified_store_selections(ds):
    assert store_source(ds.signal.sortby("assay")) is not None
    assert store_source(ds.signal * 1) is None
    relabelled = ds.signal.assign_coords(biosample=ds.biosample.values[::-1])
    assert store_source(relabelled) is None
    got = relabelled.epi.read("synthetic:0-100").sel(biosample="B00", assay="H3K4me3")
    np.testing.assert_array_equal(got.values, _track(ds, "B02", "H3K4me3", 0, 4))


def test_plot_of_a_region_puts_base_pairs_on_x(ds):
    import matplotlib

    matplotlib.use("Agg")
    region = ds.signal.sel(biosample="B00").epi.region("synthetic:1,000,000-1,010,000")
    lines = region.epi.plot()
    assert len(lines) == 3 and lines[0].get_xdata()[0] == 1_000_000
    assert "synthetic" in lines[0].axes.get_xlabel()
    two_d = region.load()
    two_d.plot.line(x="start", hue="assay")  # xarray's own verbs with ordinary string labels
    with pytest.raises(et.RegionError, match="spans contigs"):
        et.datasets.synthetic(n_biosamples=1, n_assays=1, n_positions=2_000, seed=0,
                              genome=et.Genome("g", ["a", "b"], [25_000, 25_000])).signal.isel(
            biosample=0, assay=0).epi.plot()


def test_stage_two_refuses_a_modified_dataset_instead_of_reading_the_store(ds):
    model = et.Avocado(ds.assign(signal=ds.signal * 0 + 1), preset="small", device="cpu")
    model.fit(region="synthetic:0-100,000", epochs=1, progress=False)
    with pytest.raises(et.ModelError, match="not an unmodified selection"):
        model.fit_genome(region="synthetic:0-100,000", epochs=1, dry_run=True)
