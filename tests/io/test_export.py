"""Exporting tracks to bigWig: header, 25 bp fixed-step entries, inverse transform, exact round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyBigWig
import pytest
from conftest import TINY_CHROMS as CHROMS

import epitensor as et
from epitensor.datasets import synthetic_bigwigs


@pytest.fixture
def manifest(tmp_path):
    return synthetic_bigwigs(tmp_path / "bw", CHROMS, ["B1", "B2"], ["H3K4me3"], seed=11)


def entries(path):
    bw = pyBigWig.open(str(path))
    try:
        return bw.chroms(), {c: bw.intervals(c) or () for c in bw.chroms()}
    finally:
        bw.close()


@pytest.mark.parametrize("transform", ["none", "arcsinh"])
def test_round_trip_bigwig_store_bigwig_store_is_exact(tmp_path, manifest, transform, tiny_genome):
    first = et.ingest(manifest, tmp_path / "first.zarr", assembly=tiny_genome, transform=transform, progress=False)
    ds = et.open_dataset(first)
    exported = []
    for row in manifest.itertuples():
        out = ds.signal.sel(biosample=row.biosample, assay=row.assay).epi.to_bigwig(tmp_path / f"{row.biosample}.bw", inverse_transform=True)
        exported.append(str(out))
        chroms, ivs = entries(out)
        assert chroms == CHROMS  # header: every contig of the store with its length
        for contig, length in CHROMS.items():
            starts = np.array([i[0] for i in ivs[contig]])
            ends = np.array([i[1] for i in ivs[contig]])
            assert starts.size == tiny_genome.n_bins(contig)
            np.testing.assert_array_equal(starts, np.arange(starts.size) * 25)  # one entry per 25 bp bin
            np.testing.assert_array_equal(ends, np.minimum(starts + 25, length))  # last bin is partial
    second = et.ingest(manifest.assign(path=exported), tmp_path / "second.zarr", assembly=tiny_genome, transform=transform, progress=False)
    a = et.open_dataset(first).signal.values
    b = et.open_dataset(second).signal.values
    if transform == "none":
        np.testing.assert_array_equal(a, b)
    else:  # sinh, float32 file, arcsinh: exact but for float32 rounding (at most 1 ulp)
        assert_within_one_ulp(a, b)


def assert_within_one_ulp(a, b):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    assert np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32)).max() <= 1
    assert np.mean(a == b) > 0.99


def test_export_without_inverse_keeps_store_values(tmp_path, manifest, tiny_genome):
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    track = et.open_dataset(store).signal.epi.region("chr2:1,000-2,013").sel(biosample="B1", assay="H3K4me3")
    out = track.epi.to_bigwig(tmp_path / "region.bw")
    _, ivs = entries(out)
    assert ivs["chr1"] == ()
    assert [i[:2] for i in ivs["chr2"]] == [(s, s + 25) for s in range(1000, 2025, 25)]
    np.testing.assert_array_equal(np.array([i[2] for i in ivs["chr2"]], dtype=np.float32), track.values)
    inv = track.epi.to_bigwig(tmp_path / "inv.bw", inverse_transform=True)
    np.testing.assert_allclose([i[2] for i in entries(inv)[1]["chr2"]], np.sinh(track.values.astype(np.float64)), rtol=1e-6)


def test_export_several_regions_and_contig_ends(tmp_path, manifest, tiny_genome):
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    signal = et.open_dataset(store).signal.sel(biosample="B1", assay="H3K4me3")
    track = signal.epi.region(["chr2:29,950-30,007", "chr1:100-150", "chr1:59,990-60,013"])
    _, ivs = entries(track.epi.to_bigwig(tmp_path / "r.bw"))
    assert [i[:2] for i in ivs["chr1"]] == [(100, 125), (125, 150), (59_975, 60_000), (60_000, 60_013)]
    assert [i[:2] for i in ivs["chr2"]] == [(29_950, 29_975), (29_975, 30_000), (30_000, 30_007)]


def test_export_errors(tmp_path, manifest, tiny_genome):
    store = et.create_store(tmp_path / "s.zarr", ["B1", "B2"], ["H3K4me3"], tiny_genome)
    et.ingest(manifest.iloc[:1], store, progress=False)
    ds = et.open_dataset(store)
    with pytest.raises(et.DataError, match="select one biosample and one assay"):
        ds.signal.epi.to_bigwig(tmp_path / "x.bw")
    with pytest.raises(et.DataError, match="unobserved track"):
        ds.signal.sel(biosample="B2", assay="H3K4me3").epi.to_bigwig(tmp_path / "x.bw")
    assert not (tmp_path / "x.bw").exists() and not list(tmp_path.glob(".x.bw*"))
    bare = ds.signal.sel(biosample="B1", assay="H3K4me3").copy()
    bare.attrs = {}
    with pytest.raises(et.SchemaError, match="genome layout is unknown"):
        et.to_bigwig(bare, tmp_path / "x.bw")


#: Exports a track to each target path given (and writes a bigWig with write_bigwig), printing one
#: line per project error; pyBigWig crashed the interpreter (rc 139) on such paths.
BAD_TARGETS_SCRIPT = """
import sys
import epitensor as et

track = et.open_dataset(sys.argv[1]).signal.sel(biosample="B1", assay="H3K4me3")
for target in sys.argv[2:]:
    for write in (track.epi.to_bigwig, lambda p: et.datasets.write_bigwig(p, {"chr1": 100}, {})):
        try:
            write(target)
            print("wrote", target)
        except et.EpitensorError as err:
            print(type(err).__name__, err)
"""


def test_export_to_a_path_that_cannot_be_written_is_an_error_not_a_crash(tmp_path, manifest, run_script, tiny_genome):
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "folder.bw").mkdir()
    targets = [tmp_path / "missing" / "dir" / "x.bw", tmp_path / "folder.bw", tmp_path / "a_file" / "x.bw"]
    run = run_script(BAD_TARGETS_SCRIPT, store, *targets)
    assert run.returncode == 0, f"rc {run.returncode} (139/-11: a segfault)\n{run.stderr[-2000:]}"
    lines = run.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("WriteError cannot write ") for line in lines), run.stdout
    assert "missing/dir does not exist; create it first" in lines[0]
    assert "folder.bw: it is a folder" in lines[2] and "a_file is a file, not a folder" in lines[4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "bw", "folder.bw", "s.zarr", "script.py"]


def test_export_that_runs_out_of_space_is_an_error_and_leaves_no_file(tmp_path, manifest, run_script, tiny_genome):
    """A file-size limit makes libBigWig's writes fail part way (as a full disk does); it only
    prints that, so the export must notice the truncated file."""
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    full = et.open_dataset(store).signal.sel(biosample="B1", assay="H3K4me3").epi.to_bigwig(tmp_path / "full.bw")
    source = """
    import resource, signal, sys
    import epitensor as et

    track = et.open_dataset(sys.argv[1]).signal.sel(biosample="B1", assay="H3K4me3")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    for limit in map(int, sys.argv[3:]):
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        try:
            track.epi.to_bigwig(sys.argv[2])
            print("wrote", limit)
        except et.WriteError as err:
            print("WriteError", limit, err)
    """
    size = full.stat().st_size
    limits = [4096, size // 2, size - 1]  # header, data and the final magic number cut off
    run = run_script(source, store, tmp_path / "out.bw", *limits)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == [f"WriteError {n} writing {tmp_path / 'out.bw'} failed (the file came out truncated: is the disk full?); free some space and export again" for n in limits]
    assert not (tmp_path / "out.bw").exists() and not list(tmp_path.glob(".out.bw*"))


@pytest.mark.shared_data
def test_real_round_trip_h1(bigwig_dir, tmp_path):
    path = bigwig_dir / "H1_k4me3.bw"
    m = pd.DataFrame({"biosample": ["H1"], "assay": ["H3K4me3"], "path": [str(path)]})
    first = et.ingest(m, tmp_path / "a.zarr", assembly="hg19", chroms=["chr6"], progress=False)
    window = et.open_dataset(first).signal.epi.region("chr6:31,120,000-31,150,000").sel(biosample="H1", assay="H3K4me3")
    out = window.epi.to_bigwig(tmp_path / "h1.bw", inverse_transform=True)
    second = et.ingest(m.assign(path=[str(out)]), tmp_path / "b.zarr", assembly="hg19", chroms=["chr6"], progress=False)
    again = et.open_dataset(second).signal.epi.region("chr6:31,120,000-31,150,000").sel(biosample="H1", assay="H3K4me3")
    assert_within_one_ulp(again.values, window.values)
    assert (window.values > 0).sum() > 500


def test_pybigtools_reads_an_export_of_a_sorted_xr_open_zarr_track(tmp_path, manifest, tiny_genome):
    """An outside bigWig reader (pybigtools, not the pyBigWig that writes) sees what the labels say."""
    import xarray as xr

    pybigtools = pytest.importorskip("pybigtools")
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    opened = xr.open_zarr(store, consolidated=False).sortby("biosample", ascending=False)
    track = opened.signal.sel(biosample="B1", assay="H3K4me3").epi.region("chr1:1,000-3,000")
    out = track.epi.to_bigwig(tmp_path / "b1.bw")
    bw = pybigtools.open(str(out))
    try:
        assert dict(bw.chroms()) == CHROMS
        records = list(bw.records("chr1"))
    finally:
        bw.close()
    assert [(s, e) for s, e, _ in records] == [(s, s + 25) for s in range(1000, 3000, 25)]
    expected = et.open_dataset(store).signal.sel(biosample="B1", assay="H3K4me3").epi.read("chr1:1,000-3,000")
    np.testing.assert_array_equal(np.array([v for _, _, v in records], dtype=np.float32), expected.values)


def test_export_writes_zoom_levels_and_both_readers_agree(tmp_path, manifest, tiny_genome):
    """IGV and the UCSC browser draw zoomed-out views from a bigWig's zoom levels: the export
    writes them, and pyBigWig and pybigtools read back the store's values and the same summaries."""
    import pybigtools

    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=tiny_genome, progress=False)
    track = et.open_dataset(store).signal.sel(biosample="B1", assay="H3K4me3")
    out = track.epi.to_bigwig(tmp_path / "zoomed.bw")
    bw, pbt = pyBigWig.open(str(out)), pybigtools.open(str(out))
    try:
        levels = bw.header()["nLevels"]
        assert levels >= 1 and pbt.info()["zoomLevels"] == levels
        for contig, length in CHROMS.items():
            stored = track.epi.region(f"{contig}:0-{length}").values
            by_pybigwig = np.array([v for _, _, v in bw.intervals(contig)], dtype=np.float32)
            by_pybigtools = np.array([v for _, _, v in pbt.records(contig)], dtype=np.float32)
            np.testing.assert_array_equal(by_pybigwig, stored)
            np.testing.assert_array_equal(by_pybigtools, stored)
            # zoomed-out summaries (read from the zoom levels) against the exact means
            exact = np.array(bw.stats(contig, 0, length, type="mean", nBins=4, exact=True), dtype=np.float64)
            zoomed = np.array(bw.stats(contig, 0, length, type="mean", nBins=4), dtype=np.float64)
            np.testing.assert_allclose(zoomed, exact, rtol=0.05)
            np.testing.assert_allclose(pbt.values(contig, 0, length, bins=4, summary="mean", exact=False, fillna=None), zoomed, rtol=0.05)
    finally:
        bw.close()
        pbt.close()
