"""et.evaluation.smooth: a moving average by genomic position, checked against a plain loop.

The oracle averages, for each bin, the finite values of the bins within the window that lie on the
same contig and that the object holds; it knows nothing of cumulative sums or stretches.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import TINY_CHROMS

import epitensor as et
from epitensor.datasets import synthetic_bigwigs


@pytest.fixture(scope="module")
def ds(tmp_path_factory, tiny_genome):
    folder = tmp_path_factory.mktemp("smooth")
    manifest = synthetic_bigwigs(folder / "bw", TINY_CHROMS, ["B1", "B2"], ["H3K4me3", "CTCF"], seed=5)
    return et.open_dataset(et.ingest(manifest, folder / "s.zarr", assembly=tiny_genome, progress=False))


def oracle(track: xr.DataArray, bins: int) -> np.ndarray:
    """Loop over bins: the mean of finite held values within bins // 2 on the same contig."""
    genome = track.epi.genome
    positions = track.position.values
    contig = np.searchsorted(genome.first_bins, positions, side="right") - 1
    where = {int(p): i for i, p in enumerate(positions)}
    values = np.moveaxis(track.values.astype(np.float64), track.get_axis_num("position"), -1)
    out = np.full(values.shape, np.nan)
    half = bins // 2
    for i, p in enumerate(positions):
        near = [where[q] for q in range(p - half, p + half + 1) if q in where and contig[where[q]] == contig[i]]
        window = values[..., near]
        with np.errstate(invalid="ignore"):
            out[..., i] = np.nanmean(np.where(np.isfinite(window), window, np.nan), axis=-1)
    return np.moveaxis(out, -1, track.get_axis_num("position"))


def test_smooth_equals_a_plain_loop_across_two_contigs(ds):
    track = ds.signal.epi.region(["chr1:59,000-60,013", "chr2:0-1,200"]).load()  # both contig ends
    got = et.evaluation.smooth(track, 9)
    assert got.dims == track.dims and got.dtype == np.float32
    np.testing.assert_allclose(got.values, oracle(track, 9), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got.values, track.values)  # it did smooth
    assert got.position.equals(track.position) and got.chrom.equals(track.chrom)


def test_smooth_by_labels_whatever_the_order_and_dims(ds):
    track = ds.signal.epi.region("chr1:10,000-14,000").load()
    want = et.evaluation.smooth(track, 5)
    perm = np.random.default_rng(0).permutation(track.sizes["position"])
    shuffled = et.evaluation.smooth(track.isel(position=perm).transpose("position", "assay", "biosample"), 5)
    xr.testing.assert_allclose(shuffled.transpose(*want.dims).sortby("position"), want)
    reversed_ = et.evaluation.smooth(track.sortby("position", ascending=False), 5)
    xr.testing.assert_allclose(reversed_.sortby("position"), want)
    arithmetic = et.evaluation.smooth(track * 2 + 1, 5)  # an object the user made
    xr.testing.assert_allclose(arithmetic, want * 2 + 1, rtol=1e-5)


def test_smooth_never_averages_bins_the_object_does_not_hold(ds):
    track = ds.signal.sel(biosample="B1", assay="CTCF").epi.region(["chr1:0-2,000", "chr1:4,000-6,000"]).load()
    got = et.evaluation.smooth(track, 7)
    np.testing.assert_allclose(got.values, oracle(track, 7), rtol=1e-5, atol=1e-6)
    alone = et.evaluation.smooth(track.epi.region("chr1:4,000-6,000"), 7)  # the first region's bins play no part
    np.testing.assert_allclose(got.sel(position=alone.position).values, alone.values, rtol=1e-6)


def test_smooth_skips_missing_values_and_keeps_attrs(ds):
    track = ds.signal.sel(biosample="B2", assay="H3K4me3").epi.region("chr2:0-2,000").load()
    track.values[[3, 10, 11]] = np.nan
    got = et.evaluation.smooth(track, 3)
    np.testing.assert_allclose(got.values, oracle(track, 3), rtol=1e-5, atol=1e-6)
    assert np.isfinite(got.values).all() and got.attrs == track.attrs
    assert np.array_equal(et.evaluation.smooth(track, 1).values, track.values.astype(np.float32), equal_nan=True)


@pytest.mark.parametrize("bins", [0, 4, -3, 2.0, True, "9"])
def test_bad_windows_are_refused(ds, bins):
    track = ds.signal.epi.region("chr2:0-1,000")
    with pytest.raises(et.ArgumentError, match="odd positive integer"):
        et.evaluation.smooth(track, bins)


def test_scattered_bins_are_refused_with_the_fix(ds):
    every_8th = ds.signal.epi.region("chr1:0-20,000").isel(position=slice(None, None, 8))
    with pytest.raises(et.ArgumentError, match="smooth a whole region first"):
        et.evaluation.smooth(every_8th, 9)
    with pytest.raises(et.SchemaError, match="position"):
        et.evaluation.smooth(ds.observed, 3)
    with pytest.raises(et.ArgumentError, match="DataArray"):
        et.evaluation.smooth(every_8th.values, 3)  # a bare array has no positions to go by


def test_the_window_stops_where_a_contig_ends_even_when_the_next_starts_at_the_following_bin(tmp_path):
    chroms = {"chrA": 25_000, "chrB": 10_000}  # chrA fills its chunk: chrB's first bin follows chrA's last
    genome = et.Genome("adjacent", list(chroms), list(chroms.values()), chunk_bins=1_000)
    assert genome.first_bins[1] == genome.n_bins("chrA")
    manifest = synthetic_bigwigs(tmp_path / "bw", chroms, ["B1"], ["CTCF"], seed=2)
    ds = et.open_dataset(et.ingest(manifest, tmp_path / "a.zarr", assembly=genome, progress=False))
    track = ds.signal.epi.region(["chrA:24,000-25,000", "chrB:0-1,000"]).load()
    np.testing.assert_allclose(et.evaluation.smooth(track, 9).values, oracle(track, 9), rtol=1e-5, atol=1e-6)
