"""Storage precision of ``imputed``: each precision keeps its documented bound, makes smaller chunk
files than float32, is read identically by zarr-python and tensorstore, is written to the same
bytes by the direct chunk writer and by zarr, is recorded in attrs and kept by later writes."""

from __future__ import annotations

import hashlib
import math
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import epitensor as et
from epitensor.cli import main
from epitensor.store import ChunkFiles, add_track_variable
from epitensor.store.precision import DEFAULT_IMPUTED_PRECISION, parse_precision

ts = pytest.importorskip("tensorstore")

GENOME = et.Genome("test", ["chr1", "chr2"], [250_013, 90_000], chunk_bins=1_000)  # an edge chunk of 600 bins
ROUNDED = ["bitround-1", "bitround-7", "bitround-22", "quantize-0", "quantize-2", "quantize-7"]
PAIRS = [("B1", "A1"), ("B2", "A3"), ("B2", "A2")]


def bound(precision: str, x: np.ndarray) -> np.ndarray:
    """The documented bound on |stored - x| (module docstring of epitensor.store.precision), in float64."""
    p = parse_precision(precision)
    if p.kind == "bitround":
        return 2.0 ** -(p.n + 1) * np.maximum(np.abs(x.astype(np.float64)), 2.0**-126)
    return np.full(x.shape, 2.0 ** -(math.ceil(p.n * math.log2(10)) + 1))


floats = hnp.arrays(np.float32, st.integers(1, 200),
                    elements=st.floats(width=32, allow_nan=True, allow_infinity=True)
                    | st.sampled_from([0.0, -0.0, 1e-40, -3.0, 3.4e38, -3.4028235e38]))


@settings(max_examples=60, deadline=None)
@given(x=floats, precision=st.sampled_from(ROUNDED + ["float32"]))
def test_each_precision_rounds_within_its_bound(x, precision):
    p = parse_precision(precision)
    stored = p.round(x)
    assert stored.dtype == np.float32 and stored.shape == x.shape
    nan = np.isnan(x)
    np.testing.assert_array_equal(np.isnan(stored), nan)  # NaN stays NaN, nothing else becomes NaN
    finite = np.isfinite(x)
    np.testing.assert_array_equal(stored[~finite & ~nan], x[~finite & ~nan])  # infinities kept
    assert np.isfinite(stored[finite]).all()  # no overflow to infinity
    err = np.abs(stored[finite].astype(np.float64) - x[finite].astype(np.float64))
    assert (err <= bound(precision, x[finite])).all()
    np.testing.assert_array_equal(p.round(stored).view(np.int32), stored.view(np.int32))  # idempotent


def test_bad_precisions_are_refused_with_the_choices():
    for bad in ["float16", "bitround-0", "bitround-23", "quantize-8", "quantize", 32]:
        with pytest.raises(et.ArgumentError, match="quantize-N"):
            parse_precision(bad)


def _values(rng, n):
    """Imputation-like values on the arcsinh scale: mostly near zero, a few peaks."""
    return np.arcsinh(rng.gamma(0.4, 3.0, n)).astype(np.float32)


def _chunk_bytes(store) -> int:
    return sum(f.stat().st_size for f in (store / "imputed" / "c").rglob("*") if f.is_file())


def _write(store, precision, rng_seed=0):
    add_track_variable(store, "imputed", long_name="imputed signal", precision=precision)
    rng = np.random.default_rng(rng_seed)
    written = {}
    for b, a in PAIRS:
        written[b, a] = _values(rng, GENOME.contig_bins("chr1")[1])
        et.write_track(store, b, a, written[b, a], contig="chr1", variable="imputed", mark_observed=False)
    return written


@pytest.mark.parametrize("precision", sorted({"bitround-7", "quantize-2", DEFAULT_IMPUTED_PRECISION}))
def test_store_round_trip_smaller_chunks_and_tensorstore_reads_the_same(tmp_path, precision):
    stores = {p: et.create_store(tmp_path / f"{p}.zarr", ["B1", "B2"], ["A1", "A2", "A3"], GENOME)
              for p in ("float32", precision)}
    written = {p: _write(path, p) for p, path in stores.items()}
    ds = et.open_dataset(stores[precision])
    assert ds.imputed.attrs["precision"] == precision  # reopened: the precision is in the attrs
    assert ds.imputed.attrs["precision_bound"] == parse_precision(precision).bound
    assert ds.imputed.dtype == np.float32
    for (b, a), x in written[precision].items():
        stored = ds.imputed.sel(biosample=b, assay=a).values[: x.shape[0]]
        np.testing.assert_array_equal(stored, parse_precision(precision).round(x))
        assert (np.abs(stored.astype(np.float64) - x) <= bound(precision, x)).all()
    exact = et.open_dataset(stores["float32"]).imputed
    assert exact.attrs["precision"] == "float32"
    np.testing.assert_array_equal(exact.sel(biosample="B1", assay="A1").values[:1_000], written["float32"]["B1", "A1"][:1_000])
    assert _chunk_bytes(stores[precision]) < 0.6 * _chunk_bytes(stores["float32"])
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{stores[precision]}/imputed"}}
    outside = ts.open(spec).result().read().result()
    np.testing.assert_array_equal(outside, zarr.open_array(str(stores[precision]), path="imputed", mode="r")[:])
    np.testing.assert_array_equal(outside, ds.imputed.values)


def _digest(path):
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("precision", ["bitround-9", "quantize-3"])
def test_direct_chunk_writes_equal_zarr_writes_byte_for_byte(tmp_path, precision):
    stores = [et.create_store(tmp_path / f"{n}.zarr", ["B1", "B2"], ["A1", "A2", "A3"], GENOME) for n in ("zarr", "files")]
    for s in stores:
        add_track_variable(s, "imputed", precision=precision)
    rng = np.random.default_rng(4)
    values = _values(rng, GENOME.n_positions) * np.where(rng.random(GENOME.n_positions) < 0.5, 1, -1).astype(np.float32)
    values[GENOME.contig_bins("chr1")[1]:GENOME.contig_bins("chr2")[0]] = np.nan  # the padding between contigs
    et.write_track(stores[0], "B2", "A1", values, variable="imputed", mark_observed=False)  # zarr, rounded by the writer
    files = ChunkFiles.open(stores[1], "imputed")
    assert files is not None and files.precision == parse_precision(precision)
    for k in range(-(-GENOME.n_positions // files.chunk)):  # unrounded values: ChunkFiles rounds them itself
        files.write(1, 0, k, values[k * files.chunk : (k + 1) * files.chunk])
    assert _digest(stores[0] / "imputed") == _digest(stores[1] / "imputed")
    assert files.read(1, 0, 0, 3_000).tobytes() == parse_precision(precision).round(values[:3_000]).tobytes()
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{stores[1]}/imputed"}}
    np.testing.assert_array_equal(ts.open(spec).result().read().result()[1, 0], et.open_dataset(stores[1]).imputed.values[1, 0])


# ---------------------------------------------------------------------- through the model and the CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    ds = et.datasets.synthetic(root / "s.zarr", n_biosamples=3, n_assays=3, n_positions=4_000, missing=0.4, seed=1)
    model = et.Avocado(ds, preset="small", seed=0, device="cpu")
    model.fit(epochs=1, progress=False)
    model.save(root / "model")
    return root, model


def _fresh_store(trained, tmp_path):
    root, model = trained
    path = tmp_path / "s.zarr"
    shutil.copytree(root / "s.zarr", path)
    return path, et.Avocado.load(root / "model", et.open_dataset(path), device="cpu")


def test_impute_to_store_keeps_the_default_and_refuses_another_precision(trained, tmp_path):
    path, model = _fresh_store(trained, tmp_path)
    model.impute_to_store(path, biosamples="B00", progress=False)
    imputed = et.open_dataset(path).imputed
    assert imputed.attrs["precision"] == DEFAULT_IMPUTED_PRECISION
    stored, predicted = imputed.sel(biosample="B00").values, model.impute("B00").values[0]
    assert (np.abs(stored - predicted) <= bound(DEFAULT_IMPUTED_PRECISION, predicted) + 1e-6).all()
    model.impute_to_store(path, biosamples="B01", progress=False, precision=DEFAULT_IMPUTED_PRECISION)  # the same: fine
    before = _digest(path)
    for call in (lambda: model.impute_to_store(path, biosamples="B02", progress=False, precision="float32"),
                 lambda: model.impute_genome(path, pairs="all", region="synthetic", precision="float32", progress=False)):
        with pytest.raises(et.PrecisionError, match=rf"store {path}.*'{DEFAULT_IMPUTED_PRECISION}'.*precision='{DEFAULT_IMPUTED_PRECISION}'"):
            call()
    assert _digest(path) == before  # refused before any write


def test_cli_impute_takes_a_precision(trained, tmp_path):
    path, model = _fresh_store(trained, tmp_path)
    model_dir = trained[0] / "model"
    result = CliRunner().invoke(main, ["impute", str(model_dir), str(path), "--missing", "--region", "synthetic",
                                       "--precision", "bitround-7", "--scheduler", "synchronous"])
    assert result.exit_code == 0, result.output
    ds = et.open_dataset(path)
    assert ds.imputed.attrs["precision"] == "bitround-7"
    missing = ~ds.observed.values
    stored = ds.imputed.values[missing]
    assert np.isfinite(stored).all()
    np.testing.assert_array_equal(parse_precision("bitround-7").round(stored), stored)  # on the 7-bit grid
    predicted = model.impute().values[missing]
    assert (np.abs(stored - predicted) <= bound("bitround-7", predicted) + 1e-6).all()
    for precision, message in [("float8", "is not one of"), ("float32", "stored at precision 'bitround-7'")]:
        result = CliRunner().invoke(main, ["impute", str(model_dir), str(path), "--biosamples", "B00",
                                           "--precision", precision])
        assert result.exit_code == 2 and result.output.startswith("error:") and message in result.output, result.output
        assert "Traceback" not in result.output
