"""Property test: the fast readers equal plain xarray on random chains of xarray operations.

A chain of ordinary operations (label selections, reorderings, position slices, ``where``,
arithmetic, relabelling, concatenation, ``load``) is applied to a store-backed dataset. Whatever the
chain, ``.epi.read`` and :func:`epitensor.store.direct.read_tracks` (which read the store's chunk files
when they can prove the object is an unmodified store selection) must give exactly what xarray
gives for the same labels, or raise a project error.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import epitensor as et
from epitensor.store import read_selection, read_tracks, store_source

REGION = "synthetic:1,000,000-1,002,500"  # bins 40,000-40,099: every position slice below keeps them
BINS = np.arange(40_000, 40_100)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "s.zarr"
    return et.datasets.synthetic(path, n_biosamples=4, n_assays=3, n_positions=90_000, missing=0.25, seed=2)


def _permute(data, dim):
    return st.permutations(range(4 if dim == "biosample" else 3)).map(lambda p, dim=dim: ("perm", dim, list(p)))


OPERATIONS = st.one_of(
    _permute(None, "biosample"),
    _permute(None, "assay"),
    st.tuples(st.just("sortby"), st.sampled_from(["biosample", "assay"]), st.booleans()),
    st.tuples(st.just("slice"), st.integers(0, 39_000), st.integers(41_000, 90_000)),
    st.tuples(st.just("subset"), st.sampled_from(["biosample", "assay"]), st.integers(2, 3)),
    st.just(("where",)),
    st.just(("arith",)),
    st.just(("relabel",)),
    st.just(("load",)),
    st.just(("concat",)),
    st.just(("reverse_positions",)),
)


def _apply(obj: xr.Dataset, op) -> xr.Dataset:
    kind = op[0]
    if kind == "perm":
        _, dim, order = op
        return obj.isel({dim: [i for i in order if i < obj.sizes[dim]]})
    if kind == "sortby":
        return obj.sortby(op[1], ascending=op[2])
    if kind == "slice":
        held = obj.indexes["position"]
        return obj.isel(position=np.flatnonzero((held >= op[1]) & (held <= op[2])))
    if kind == "subset":
        return obj.isel({op[1]: slice(0, min(op[2], obj.sizes[op[1]]))})
    if kind == "where":
        return obj.assign(signal=obj.signal.where(obj.signal > 0.1, 0.0))
    if kind == "arith":
        return obj.assign(signal=obj.signal * 2 + 1)
    if kind == "relabel":
        return obj.assign_coords(biosample=obj.biosample.values[::-1])
    if kind == "load":
        return obj.compute()  # (load() would load the shared fixture in place)
    if kind == "concat":
        n = obj.sizes["biosample"]
        if n < 2:
            return obj
        return xr.concat([obj.isel(biosample=slice(n // 2, None)), obj.isel(biosample=slice(0, n // 2))], "biosample")
    if kind == "reverse_positions":
        return obj.isel(position=slice(None, None, -1))
    raise AssertionError(kind)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(OPERATIONS, min_size=1, max_size=4))
def test_fast_reads_equal_xarray_after_any_chain(ds, chain):
    obj = ds
    for op in chain:
        obj = _apply(obj, op)
    signal = obj.signal
    expected = signal.sel(position=BINS).load()
    try:
        got = signal.epi.read(REGION)
    except et.EpitensorError:
        return  # a project error saying why it cannot run is allowed
    got = got.transpose(*expected.dims)
    np.testing.assert_array_equal(got.sortby("position").values, expected.sortby("position").values)
    for dim in ("biosample", "assay"):
        assert list(got[dim].values) == list(expected[dim].values)
    pairs = [(str(b), str(a)) for b in signal.biosample.values[:2] for a in signal.assay.values[-2:]]
    values = read_tracks(signal, pairs, BINS)
    for row, (b, a) in zip(values, pairs):
        np.testing.assert_array_equal(row, signal.sel(biosample=b, assay=a, position=BINS).values)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.tuples(st.integers(0, 89_999), st.integers(1, 40_000)), min_size=1, max_size=4),
       scattered=st.lists(st.integers(0, 89_999), max_size=5))
@example(runs=[(0, 30_000), (50_000, 40_000)], scattered=[])  # two contigs and the padding between them
@example(runs=[(50_000, 40_000), (0, 30_000)], scattered=[])
def test_track_reads_at_runs_of_bins_equal_xarray(ds, runs, scattered):
    """Positions in several runs (two contigs without the padding between them; runs out of order
    or overlapping) and scattered bins: the chunk-file reads give what xarray selects."""
    positions = np.concatenate([np.arange(lo, min(lo + n, 90_000)) for lo, n in runs] + [np.asarray(scattered, int)])
    assert store_source(ds.signal) is not None  # the fast path is the one under test
    pairs = [("B03", "H3K4me3"), ("B00", "H3K27me3"), ("B01", "H3K4me3")]
    values = read_tracks(ds.signal, pairs, positions)
    for row, (b, a) in zip(values, pairs):
        np.testing.assert_array_equal(row, ds.signal.sel(biosample=b, assay=a).values[positions])
    subset = ds.signal.isel(biosample=[3, 0], position=positions)  # a lazy selection: read whole from the chunks
    source = store_source(subset)
    assert source is not None
    got = read_selection(subset, source, slice(None))
    xr.testing.assert_identical(got, subset.load())


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lo=st.integers(0, 89_000), n=st.integers(1, 1_000),
       picks=st.lists(st.integers(-1_000, 999), min_size=1, max_size=20), mask_seed=st.integers(0, 2**16))
def test_location_coordinates_follow_any_position_indexer(ds, lo, n, picks, mask_seed):
    """chrom/start/end of a position slice, then integers (negative ones too) or a boolean mask:
    the same as the whole coordinates (read through a slice) indexed by numpy."""
    part = ds.isel(position=slice(lo, lo + n))
    whole = {c: ds[c].values[lo : lo + n] for c in ("position", "chrom", "start", "end")}
    picks = [p for p in picks if -n <= p < len(whole["position"])] or [0]
    mask = np.random.default_rng(mask_seed).random(len(whole["position"])) < 0.3
    for indexer in (picks, mask):
        got = part.isel(position=indexer)
        for c, values in whole.items():
            np.testing.assert_array_equal(got[c].values, values[indexer])


@pytest.mark.parametrize("positions", [
    np.arange(3, 90_000, 8),  # every 8th bin: one read of the span, then every 8th row of it
    np.concatenate([np.arange(lo, lo + 40) for lo in (41_000, 40_100, 40_500, 40_120)]),  # short regions in one chunk, out of order, overlapping
], ids=["every 8th bin", "short regions"])
def test_scattered_positions_gathered_from_one_read_equal_xarray(ds, positions, no_compute):
    pairs = [("B02", "H3K27ac"), ("B00", "H3K4me3")]
    values = read_tracks(ds.signal, pairs, positions)
    subset = ds.signal.isel(biosample=[2, 0], position=positions)
    got = read_selection(subset, store_source(subset), slice(None))  # dask would raise here (no_compute)
    with dask.config.set(scheduler="sync"):
        for row, (b, a) in zip(values, pairs):
            np.testing.assert_array_equal(row, ds.signal.sel(biosample=b, assay=a).values[positions])
        xr.testing.assert_identical(got, subset.load())
