"""The zarr store: schema round trip, zero bytes for missing tracks, laziness, bad input."""

import numpy as np
import pytest
import xarray as xr
from conftest import REPO
from dask.core import flatten

import epitensor as et
from epitensor.store import (
    TrackArray,
    TrackWriter,
    add_track_variable,
    prepare_records,
    read_records,
    set_observed,
    write_record,
)


@pytest.fixture
def genome():
    return et.Genome.from_assembly("hg38", contigs=["chr21", "chr22"], chunk_bins=100_000)


@pytest.fixture
def store(tmp_path, genome):
    return et.create_store(
        tmp_path / "c.zarr",
        {"HepG2": "liver carcinoma", "K562": "leukaemia", "GM12878": "lymphoblastoid"},
        {"H3K27ac": "histone", "CTCF": "tf", "DNase-seq": "accessibility"},
        genome,
    )


def test_schema_round_trip(store, genome):
    rng = np.random.default_rng(0)
    values = rng.gamma(1.0, 1.0, genome.n_bins("chr21")).astype(np.float32)
    et.write_track(store, "K562", "CTCF", values, "chr21")
    ds = et.open_dataset(store)
    assert ds.signal.dims == ("biosample", "assay", "position")
    assert ds.signal.dtype == np.float32
    assert ds.signal.shape == (3, 3, genome.n_positions)
    assert list(ds.biosample.values) == ["HepG2", "K562", "GM12878"]
    assert list(ds.assay_category.values) == ["histone", "tf", "accessibility"]
    assert ds.biosample_summary.sel(biosample="HepG2").item() == "liver carcinoma"
    assert ds.attrs["assembly"] == "hg38" and ds.attrs["bin_size"] == 25 and ds.attrs["transform"] == "arcsinh"
    assert ds.epi.genome == genome
    assert ds.observed.sel(biosample="K562", assay="CTCF").item() is True
    assert int(ds.observed.sum()) == 1
    first, end = genome.contig_bins("chr21")
    np.testing.assert_array_equal(ds.signal.sel(biosample="K562", assay="CTCF")[first:end].values, values)
    # chr22 of that track was never written, nor any other track
    assert np.isnan(ds.signal.sel(biosample="K562", assay="CTCF").epi.region("chr22").values).all()
    assert np.isnan(ds.signal.sel(biosample="HepG2").values).all()
    # genome attrs travel with the DataArray
    assert et.Genome.from_attrs(ds.signal.attrs) == genome


def test_unobserved_tracks_write_no_chunk_files(store, genome):
    et.write_track(store, "HepG2", "H3K27ac", np.ones(genome.n_bins("chr22")), "chr22")
    chunk_files = [p for p in (store / "signal").rglob("*") if p.is_file() and p.name != "zarr.json"]
    n_chunks_chr22 = -(-genome.n_bins("chr22") // genome.chunk_bins)
    assert len(chunk_files) == n_chunks_chr22
    # every chunk belongs to the one observed track (biosample 0, assay 0)
    assert all(p.relative_to(store / "signal").parts[1:3] == ("0", "0") for p in chunk_files)


def test_whole_axis_write_ignores_padding(store, genome):
    values = np.full(genome.n_positions, 2.0, dtype=np.float32)
    et.write_track(store, "GM12878", "DNase-seq", values)
    da = et.open_dataset(store).signal.sel(biosample="GM12878", assay="DNase-seq").values
    inside = ~np.isnan(da)
    assert inside.sum() == genome.n_bins("chr21") + genome.n_bins("chr22")
    assert (da[inside] == 2.0).all()


def test_open_and_region_are_lazy(store, genome, no_compute):
    ds = et.open_dataset(store)
    sel = ds.signal.epi.region("chr22:1,000,000-2,000,000").sel(biosample="HepG2", assay="H3K27ac")
    assert sel.sizes["position"] == 40_000
    assert isinstance(sel.data, type(ds.signal.data))  # still a dask array
    assert ds.epi.tracks().empty  # observed is in memory: no compute needed
    with pytest.raises(RuntimeError, match="must stay lazy"):
        sel.load()


def test_region_costs_chunks_of_the_region_only(tmp_path):
    g = et.Genome.from_assembly("hg38")
    path = et.create_store(tmp_path / "g.zarr", ["A", "B"], ["H3K4me3", "H3K27me3"], g)
    da = et.open_dataset(path).signal
    assert da.data.npartitions == 4 * -(-g.n_positions // g.chunk_bins)  # > 12,000 chunks genome-wide
    one = da.epi.region("chr20:1,000,000-2,000,000").sel(biosample="A", assay="H3K4me3")
    assert one.data.npartitions == 1  # chr20 starts on a chunk boundary; 1 Mb = one 40,000-bin chunk
    keys = set(flatten(one.data.__dask_keys__()))
    assert len(dict(one.data.__dask_graph__().cull(keys))) <= 4


def test_add_track_variable_has_signal_layout(store):
    add_track_variable(store, "imputed")
    ds = et.open_dataset(store)
    assert ds.imputed.dims == ds.signal.dims and ds.imputed.encoding["chunks"] == ds.signal.encoding["chunks"]
    with pytest.raises(et.SchemaError, match="already has"):
        add_track_variable(store, "imputed")


def test_track_array_chunk_files_and_zarr_agree(store, genome):
    """Whole chunks go to the chunk files, a range that is not whole chunks through zarr: same values."""
    rng = np.random.default_rng(1)
    track = TrackArray.open(store, "signal")
    assert track.files is not None and track.chunk == 100_000
    whole = rng.normal(size=200_000).astype(np.float32)  # chunks 0 and 1, through the chunk files
    part = rng.normal(size=1_234).astype(np.float32)  # inside chunk 2, through zarr
    track.write(0, 1, 0, whole)
    track.write(0, 1, 200_500, part)
    assert (store / "signal" / "c" / "0" / "1" / "1").is_file()
    again = TrackArray.open(store, "signal", mode="r")
    np.testing.assert_array_equal(again.read(0, 1, 0, 200_000), whole)
    np.testing.assert_array_equal(again.read_pairs([(0, 1)], 200_500, 201_734)[0], part)
    assert np.isnan(again.read(0, 1, 200_000, 200_500)).all()
    track.clear(0, 1, 0, 100_000)
    assert not (store / "signal" / "c" / "0" / "1" / "0").exists()  # an all-NaN chunk is no file


def test_records_written_by_zarr_or_by_hand_are_read(store):
    """Marker groups written by zarr itself (stores of earlier versions) read like the ones written now."""
    import zarr

    zarr.create_group(str(store), path="genome_fit/factors/0-200", attributes={"key": "old"}, overwrite=True)
    write_record(store, "genome_fit/factors/200-400", {"key": "new"}, as_group=True)
    (store / "genome_fit" / "factors" / "400-600").mkdir()
    (store / "genome_fit" / "factors" / "400-600" / "zarr.json").write_text('{"attributes": {"ke')  # cut short
    assert read_records(store, "genome_fit/factors", as_groups=True) == {"0-200": {"key": "old"}, "200-400": {"key": "new"}}
    prepare_records(store, "ingest_progress")  # the driver makes the group before tasks write into it
    write_record(store, "ingest_progress/0.0.chr21.json", {"contig": "chr21"})
    assert read_records(store, "ingest_progress") == {"0.0.chr21.json": {"contig": "chr21"}}


def test_track_writer_marks_observed(store, genome):
    w = TrackWriter(store)
    w.write("HepG2", "CTCF", np.zeros(genome.n_bins("chr21")), "chr21")
    w.mark_observed([("HepG2", "CTCF"), ("K562", "CTCF")])
    set_observed(store, [("K562", "CTCF")], False)
    obs = et.open_dataset(store).observed
    assert obs.sel(biosample="HepG2", assay="CTCF") and not obs.sel(biosample="K562", assay="CTCF")


# ---------------------------------------------------------------------------- bad input
def test_duplicate_labels_rejected(tmp_path, genome):
    with pytest.raises(et.LabelError, match="duplicated.*HepG2"):
        et.create_store(tmp_path / "d.zarr", ["HepG2", "HepG2"], ["CTCF"], genome)
    with pytest.raises(et.LabelError, match="assay labels must be unique"):
        et.create_store(tmp_path / "d.zarr", ["HepG2"], ["CTCF", "CTCF"], genome)


def test_bad_label_inputs(tmp_path, genome):
    with pytest.raises(et.LabelError, match="list of names"):
        et.create_store(tmp_path / "d.zarr", "HepG2", ["CTCF"], genome)
    with pytest.raises(et.LabelError, match="categories"):
        et.create_store(tmp_path / "d.zarr", ["HepG2"], {"CTCF": "protein"}, genome)


def test_existing_path_needs_overwrite(store, genome):
    with pytest.raises(et.SchemaError, match="overwrite=True"):
        et.create_store(store, ["X"], ["Y"], genome)
    et.create_store(store, ["X"], ["Y"], genome, overwrite=True)
    assert list(et.open_dataset(store).biosample.values) == ["X"]


@pytest.mark.parametrize(
    "values, message",
    [
        (np.array(["a"] * 10), "1-D numeric"),
        (np.zeros((2, 5)), "1-D numeric"),
        (np.zeros(7), "expected"),
        (np.r_[np.zeros(1), np.nan], "NaN or infinite"),
        (np.r_[np.zeros(1), np.inf], "NaN or infinite"),
    ],
)
def test_write_track_rejects_bad_values(tmp_path, values, message):
    g = et.Genome.single_contig("pilot", values.shape[-1] if message != "expected" else 10)
    path = et.create_store(tmp_path / "v.zarr", ["E003"], ["H3K4me3"], g)
    with pytest.raises(et.DataError, match=message):
        et.write_track(path, "E003", "H3K4me3", values, "pilot")
    assert not et.open_dataset(path).observed.any()


def test_unknown_labels_list_the_known_ones(store, genome):
    with pytest.raises(et.LabelError, match="known biosamples: HepG2, K562, GM12878"):
        et.write_track(store, "HeLa", "CTCF", np.zeros(genome.n_bins("chr21")), "chr21")


def test_opening_a_path_that_is_not_a_store(tmp_path):
    with pytest.raises(et.StoreNotFoundError, match="no epitensor store"):
        et.open_dataset(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hello")
    with pytest.raises(et.StoreNotFoundError):
        et.open_dataset(tmp_path / "plain")
    xr.Dataset({"a": ("x", [1, 2])}).to_zarr(tmp_path / "other.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(et.StoreNotFoundError, match="not an epitensor store"):
        et.open_dataset(tmp_path / "other.zarr")


def test_validate_names_the_broken_rule(store):
    ds = et.open_dataset(store)
    assert et.validate(ds) is ds
    with pytest.raises(et.SchemaError, match="float32"):
        et.validate(ds.assign(signal=ds.signal.astype("float64")))
    with pytest.raises(et.SchemaError, match="dims"):
        et.validate(ds.assign(signal=ds.signal.transpose("assay", "biosample", "position")))
    with pytest.raises(et.SchemaError, match="observed"):
        et.validate(ds.drop_vars("observed"))
    assert et.validate(ds.isel(position=slice(0, 10)))  # a subset knows its positions (GenomeIndex)
    with pytest.raises(et.SchemaError, match="which bins it holds is unknown"):
        et.validate(ds.drop_vars(["position", "chrom", "start", "end"]).isel(position=slice(0, 10)))
    with pytest.raises(et.SchemaError, match="transform"):
        et.validate(ds.assign_attrs(transform="log"))
    dup = ds.assign_coords(biosample=["A", "A", "B"])
    with pytest.raises(et.SchemaError, match="not unique"):
        et.validate(dup)
    with pytest.raises(et.SchemaError, match="no 'signal'"):
        et.validate(ds.drop_vars("signal"))


# ---------------------------------------------------------------------- kill -9 while creating a store
KILL_DRIVER = """
import json, os, signal, sys
import pandas as pd
import epitensor as et
from zarr.storage import _local

mode, out = sys.argv[1], sys.argv[2]
points = [int(p) for p in sys.argv[3].split(",")] if len(sys.argv) > 3 else None
genome = et.Genome("toy", ["c1", "c2"], [60_000, 30_000], chunk_bins=1_000)
calls, kill_at = [0], [0]

def die_at_write(write):
    def counted(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at[0]:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 just before this write
        return write(*args, **kwargs)
    return counted

_local._put = die_at_write(_local._put)      # every file zarr writes
os.rename = die_at_write(os.rename)          # moving directories into place

def create(path):
    if mode == "create":
        et.create_store(path, {"E003": "H1 cells", "E004": "H1 BMP4"}, ["H3K4me3", "DNase-seq"], genome)
    else:
        et.ingest(pd.read_csv(mode, sep="\\t"), path, assembly=genome, scheduler="sync", progress=False)

create(out + ".warm")  # uninterrupted: counts the writes, and warms the imports the children share
total, killed = calls[0], []
for point in points or range(1, total + 1):
    pid = os.fork()
    if pid == 0:  # kill -9 of this child before its write number `point`
        calls[0], kill_at[0] = 0, point
        create(os.path.join(out, f"s{point}.zarr"))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        killed.append(point)
print(json.dumps({"writes": total, "killed": killed}))
"""


def _run_kill_driver(tmp_path, mode, points=None) -> dict:
    """Run ``KILL_DRIVER``: one uninterrupted creation, then one forked child killed (SIGKILL) before
    each write ``points`` (default: every write); the children's stores are in ``tmp_path/killed``."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "kill_create.py"
    script.write_text(KILL_DRIVER)
    repo = REPO
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "killed"
    out.mkdir()
    args = [sys.executable, str(script), str(mode), str(out)] + ([",".join(map(str, points))] if points else [])
    run = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    return json.loads(run.stdout.decode().strip().splitlines()[-1])


def test_store_killed_at_every_write_of_create_store_is_recreated_identically(tmp_path):
    from conftest import store_digest

    run = _run_kill_driver(tmp_path, "create")
    killed = run["killed"]
    assert len(killed) == run["writes"] >= 15  # every file of the store, then the rename into place
    genome = et.Genome("toy", ["c1", "c2"], [60_000, 30_000], chunk_bins=1_000)

    def create(path):
        return et.create_store(path, {"E003": "H1 cells", "E004": "H1 BMP4"}, ["H3K4me3", "DNase-seq"], genome)

    clean = create(tmp_path / "clean.zarr")
    for point in killed:
        path = tmp_path / "killed" / f"s{point}.zarr"
        assert not path.exists(), f"a kill before write {point} left a half-made store"
        create(path)  # the rerun
        assert store_digest(path) == store_digest(clean), f"killed before write {point}"
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == sorted(f"s{p}.zarr" for p in killed)


def test_ingest_killed_while_creating_its_store_resumes(tmp_path):
    from conftest import store_digest

    from epitensor.datasets import synthetic_bigwigs

    manifest = synthetic_bigwigs(tmp_path / "bw", {"c1": 60_000, "c2": 30_000}, ["E003", "E004"], ["H3K4me3"], seed=2)
    manifest.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    run = _run_kill_driver(tmp_path, tmp_path / "m.tsv", points=[1, 2, 6, 12, 20])
    killed = run["killed"]
    assert killed == [1, 2, 6, 12, 20]  # inside create_store (the root zarr.json is the first write)
    genome = et.Genome("toy", ["c1", "c2"], [60_000, 30_000], chunk_bins=1_000)
    clean = et.ingest(manifest, tmp_path / "clean.zarr", assembly=genome, progress=False)
    for point in killed:
        path = tmp_path / "killed" / f"s{point}.zarr"
        et.ingest(tmp_path / "m.tsv", path, assembly=genome, progress=False)  # the rerun
        assert store_digest(path) == store_digest(clean), f"killed before write {point}"


# ---------------------------------------------------------------------- labels behave like strings in xarray
@pytest.fixture
def opened(store, genome):
    et.write_track(store, "K562", "CTCF", np.ones(genome.n_bins("chr21")), "chr21")
    return et.open_dataset(store)


def test_labels_are_ordinary_strings(opened):
    for name in ("biosample", "assay", "biosample_summary", "assay_category"):
        assert opened[name].dtype.kind == "U", name
    assert opened.assay.astype(str).values.tolist() == ["H3K27ac", "CTCF", "DNase-seq"]


def test_merge_align_reindex_and_combine_first_with_a_new_label(opened):
    small = opened.isel(position=slice(0, 100)).load()
    other = small.isel(biosample=[1]).assign_coords(biosample=["HUVEC"])
    merged = xr.merge([small.signal, other.signal], join="outer", compat="no_conflicts")
    assert merged.biosample.values.tolist() == ["GM12878", "HUVEC", "HepG2", "K562"]
    a, b = xr.align(small, other, join="outer")
    assert a.sizes["biosample"] == b.sizes["biosample"] == 4
    grown = small.reindex(biosample=["HepG2", "HeLa-S3"])
    assert grown.biosample.values.tolist() == ["HepG2", "HeLa-S3"]
    assert grown.biosample_summary.values.tolist()[0] == "liver carcinoma"
    combined = small.combine_first(other)
    assert sorted(combined.biosample.values.tolist()) == ["GM12878", "HUVEC", "HepG2", "K562"]
    np.testing.assert_array_equal(combined.signal.sel(biosample="HUVEC").values, small.signal.sel(biosample="K562").values)


def test_two_dimensional_plot_of_a_region(opened):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    region = opened.signal.sel(biosample="K562").epi.region("chr21:1,000,000-1,010,000")
    mesh = region.plot()
    assert [t.get_text() for t in mesh.axes.get_yticklabels()] == ["H3K27ac", "CTCF", "DNase-seq"]
    plt.close("all")


def test_store_of_a_scalar_selection_names_the_dimension_and_the_fix(tmp_path):
    ds = et.datasets.synthetic(tmp_path / "s.zarr", n_biosamples=3, n_assays=2, n_positions=1_000, seed=0)
    one = ds.sel(biosample="B00")
    with pytest.raises(et.SchemaError, match=r"'biosample' is a scalar coordinate .*ds.sel\(biosample=\['B00'\]\)"):
        et.validate(one)
    one.to_zarr(tmp_path / "one.zarr", consolidated=False)
    with pytest.raises(et.SchemaError, match="'biosample' is a scalar coordinate"):
        et.open_dataset(tmp_path / "one.zarr")
    et.validate(ds.sel(biosample=["B00"]))  # the fix the message names
