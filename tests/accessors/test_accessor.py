"""Every .epi accessor method on numpy-backed and dask-backed inputs (cf_xarray's habit)."""

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import epitensor as et


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    genome = et.Genome("test", ["chr21", "chr22"], [6_000_000, 2_000_000], chunk_bins=50_000)
    path = tmp_path_factory.mktemp("acc") / "a.zarr"
    et.datasets.synthetic(path, n_biosamples=4, n_assays=3, genome=genome, missing=0.5, seed=2)
    return path


@pytest.fixture(params=["dask", "numpy"])
def ds(request, store):
    out = et.open_dataset(store)
    return out if request.param == "dask" else out.load()


def test_region_adds_readable_coordinates(ds):
    g = ds.epi.genome
    sel = ds.signal.epi.region("chr22:1,000,010-1,000,100")
    first, _ = g.contig_bins("chr22")
    assert sel.sizes["position"] == 4  # bins 40,000 .. 40,003 overlap [1,000,010, 1,000,100)
    assert list(sel.position.values) == list(range(first + 40_000, first + 40_004))
    assert set(sel.chrom.values) == {"chr22"}
    assert list(sel.start.values) == [1_000_000, 1_000_025, 1_000_050, 1_000_075]
    assert list(sel.end.values) == [1_000_025, 1_000_050, 1_000_075, 1_000_100]
    np.testing.assert_array_equal(sel.values, ds.signal.isel(position=slice(first + 40_000, first + 40_004)).values)


def test_region_on_dataset_and_then_labels(ds):
    sub = ds.epi.region("chr21:5Mb-5.1Mb")
    assert set(sub.data_vars) == set(ds.data_vars)
    track = sub.signal.sel(biosample="B01")
    assert track.dims == ("assay", "position") and track.sizes["position"] == 4000


def test_region_list_concatenates_contigs(ds):
    both = ds.signal.epi.region(["chr21:0-1000", "chr22:0-500"])
    assert both.sizes["position"] == 60
    assert list(pd.unique(both.chrom.values)) == ["chr21", "chr22"]


def test_region_within_a_selection(ds):
    sel = ds.signal.epi.region("chr21:1Mb-2Mb")
    inner = sel.epi.region("chr21:1,500,000-1,500,050")
    assert list(inner.start.values) == [1_500_000, 1_500_025]
    with pytest.raises(et.RegionError, match="not wholly inside"):
        sel.epi.region("chr21:1,999,990-2,000,100")


@pytest.mark.parametrize(
    "select",
    [
        lambda s: s.sel(biosample="B02", assay="H3K27me3"),
        lambda s: s.sel(biosample=["B03", "B00"]),
        lambda s: s.isel(assay=[2, 0]).sel(biosample="B03"),
        lambda s: s.epi.region("chr21:4Mb-5.5Mb").sel(assay="H3K27ac"),
        lambda s: s * 1.0,  # not a plain store read: goes through dask
    ],
    ids=["one track", "biosample list", "assay list", "within a region", "arithmetic"],
)
@pytest.mark.parametrize("region", ["chr21:4,999,990-5,100,000", ["chr21:4.9Mb-5Mb", "chr21:5.2Mb-5.25Mb"]])
def test_read_equals_lazy_region_loaded(ds, select, region):
    da = select(ds.signal)
    got = da.epi.read(region)
    xr.testing.assert_identical(got, da.epi.region(region).load())
    assert isinstance(got.data, np.ndarray)


def test_read_of_a_store_track_computes_no_dask_graph(store, no_compute):
    track = et.open_dataset(store).signal.sel(biosample="B03", assay="H3K27ac")
    values = track.epi.read("chr22:1Mb-2Mb").values  # would raise if dask computed anything
    assert values.shape == (40_000,) and np.isfinite(values).any() == bool(track.observed)
    with pytest.raises(RuntimeError):
        (track + 0).epi.read("chr22:1Mb-2Mb")  # arithmetic is dask's work: the guard sees it


def test_read_of_a_list_of_regions_computes_no_dask_graph(store, no_compute):
    """Regions on two contigs, out of genome order and overlapping: read region by region from the
    chunk files, and equal to the lazy selection loaded (with dask allowed again)."""
    regions = ["chr22:1Mb-1.2Mb", "chr21:4.9Mb-5Mb", "chr21:4.95Mb-5.05Mb"]
    signal = et.open_dataset(store).signal.sel(biosample=["B03", "B00"])
    got = signal.epi.read(regions)  # would raise if dask computed anything
    assert isinstance(got.data, np.ndarray)
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_identical(got, signal.epi.region(regions).load())


def test_read_follows_a_store_that_grew(tmp_path):
    genome = et.Genome("test", ["chr1"], [500_000], chunk_bins=5_000)
    path = et.create_store(tmp_path / "g.zarr", ["B1"], ["A1"], genome)
    et.write_track(path, "B1", "A1", np.arange(genome.n_bins("chr1"), dtype=np.float32), "chr1")
    before = et.open_dataset(path).signal.sel(biosample="B1", assay="A1").epi.read("chr1:0-1kb")
    et.store.add_labels(path, biosamples=["B0"])
    et.write_track(path, "B0", "A1", np.full(genome.n_bins("chr1"), 7, dtype=np.float32), "chr1")
    ds = et.open_dataset(path)
    np.testing.assert_array_equal(ds.signal.sel(biosample="B1", assay="A1").epi.read("chr1:0-1kb"), before)
    assert (ds.signal.sel(biosample="B0", assay="A1").epi.read("chr1:0-1kb") == 7).all()
    with pytest.raises(et.RegionError, match="not wholly inside"):
        ds.signal.epi.region("chr1:0-1kb").epi.read("chr1:0-2kb")


def test_region_errors(ds):
    with pytest.raises(et.RegionError, match="chr9"):
        ds.signal.epi.region("chr9:1-100")
    with pytest.raises(et.RegionError, match="runs past the end"):
        ds.signal.epi.region("chr22:1,999,000-2,000,100")


def test_tracks_table(ds):
    obs = ds.epi.tracks()
    assert len(obs) == int(ds.observed.sum())
    assert obs.observed.all()
    missing = ds.epi.tracks("missing")
    assert len(missing) + len(obs) == ds.observed.size
    everything = ds.signal.epi.tracks("all")
    assert len(everything) == 12
    row = everything.iloc[0]
    assert row.assay_category == ds.assay_category.sel(assay=row.assay).item()
    # on a selected DataArray, the scalar labels still give a table
    one = ds.signal.sel(biosample="B00").epi.tracks("all")
    assert set(one.biosample) == {"B00"} and len(one) == 3
    with pytest.raises(ValueError, match="which"):
        ds.epi.tracks("some")


def test_summary_and_fraction(ds):
    text = ds.epi.summary()
    assert "test" in text and "chr21, chr22" in text and "4" in text
    assert f"{int(ds.observed.sum())} of 12 tracks" in text
    assert ds.epi.observed_fraction() == pytest.approx(float(ds.observed.mean()))
    table = ds.epi.contigs()
    assert list(table.index) == ["chr21", "chr22"]


def test_accessor_needs_genome_attrs():
    bare = xr.DataArray(np.zeros((2, 2, 3)), dims=("biosample", "assay", "position"))
    with pytest.raises(et.SchemaError, match="carries no genome"):
        bare.epi.region("chr1")
    with pytest.raises(et.SchemaError, match="observed"):
        bare.epi.tracks()
