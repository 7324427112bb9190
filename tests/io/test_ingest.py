"""Ingesting bigWig files into a store: binning, manifests, resume after kill -9, bad input, scale-out."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pytest
from conftest import store_digest

import epitensor as et
from epitensor.datasets import synthetic_bigwigs, write_bigwig
from epitensor.io import completed_pieces, ingest_run, pieces, read_bins
from epitensor.io.bigwig import bin_means, inspect_bigwig, interval_bin_means
from epitensor.io.bigwig_blocks import BigWigBlocks
from epitensor.store import ChunkFiles

CHROMS = {"chr1": 60_013, "chr2": 30_007}  # partial last bins; 3 + 2 chunks of 1,000 bins
GENOME = et.Genome("test", list(CHROMS), list(CHROMS.values()), chunk_bins=1_000)


def expected_bins(bw_path, chrom: str, transform: str = "arcsinh", bin_size: int = 25, bins=None) -> np.ndarray:
    """Independent computation: pyBigWig.values -> NaN to 0 -> padded bin means -> transform.

    ``bins=(lo, hi)`` restricts it to bins ``[lo, hi)`` of the contig (default: all of them).
    """
    bw = pyBigWig.open(str(bw_path))
    try:
        length = bw.chroms(chrom)
        lo, hi = bins if bins is not None else (0, -(-length // bin_size))
        start, end = lo * bin_size, min(hi * bin_size, length)
        values = np.nan_to_num(bw.values(chrom, start, end, numpy=True).astype(np.float64))
    finally:
        bw.close()
    padded = np.zeros((hi - lo) * bin_size)
    padded[: end - start] = values
    counts = np.full(hi - lo, float(bin_size))
    counts[-1] = end - (hi - 1) * bin_size
    means = padded.reshape(hi - lo, bin_size).sum(axis=1) / counts
    return (np.arcsinh(means) if transform == "arcsinh" else means).astype(np.float32)


def corrupt_data_block(src, dst, contig: str) -> Path:
    """Copy bigWig ``src`` to ``dst`` with the middle of the last data block of ``contig`` zeroed
    (the header, index and total summary stay intact, so the damage shows only when it is read)."""
    with BigWigBlocks(src) as blocks:
        chrom_id, length = blocks.chroms[contig]
        offset, size = (int(x) for x in blocks.data_blocks(chrom_id, 0, length)[-1])
    data = bytearray(Path(src).read_bytes())
    data[offset + size // 4 : offset + 3 * size // 4] = bytes(3 * size // 4 - size // 4)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def track_chunk_files(store, b: int, a: int) -> list[Path]:
    """The chunk files of track ``(b, a)`` of ``signal`` (zarr's default ``c/<b>/<a>/<k>`` keys)."""
    folder = Path(store) / "signal" / "c" / str(b) / str(a)
    return sorted(f for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else []


@pytest.fixture
def manifest(tmp_path):
    return synthetic_bigwigs(tmp_path / "bw", CHROMS, ["B1", "B2"], ["H3K4me3", "H3K27me3"], seed=7)


def contig_values(store, biosample, assay, contig):
    ds = et.open_dataset(store)
    return ds.signal.epi.region(contig).sel(biosample=biosample, assay=assay).values


# ---------------------------------------------------------------------- binning
@pytest.mark.parametrize(
    ("values", "bin_size", "expected"),
    [
        ([1, 1, 3, 3], 2, [1, 3]),
        ([1, 1, 3, 3, 5], 2, [1, 3, 5]),  # last bin: one base
        ([0, 2, 4, 6, 8, 10, 12], 3, [2, 8, 12]),
        ([7], 25, [7]),
    ],
)
def test_bin_means_partial_last_bin(values, bin_size, expected):
    np.testing.assert_array_equal(bin_means(np.array(values, dtype=np.float32), bin_size), expected)


def test_read_bins_equals_numpy(tmp_path):
    path = synthetic_bigwigs(tmp_path, {"chr1": 12_345}, ["B"], ["A"], seed=1).path[0]
    got = np.concatenate([read_bins(path, "chr1", 12_345, lo, min(lo + 100, 494)) for lo in range(0, 494, 100)])
    np.testing.assert_allclose(got, expected_bins(path, "chr1"), rtol=1e-6, atol=0)
    assert got.dtype == np.float32 and got.shape == (494,)


# ---------------------------------------------------------------------- ingest
def test_ingest_creates_store_with_exact_bins(tmp_path, manifest, capsys):
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=GENOME, progress=True)
    err = capsys.readouterr().err
    assert "ingest: 100%" in err and "20/20" in err  # 4 tracks x 5 chunks
    ds = et.open_dataset(store)
    assert ds.observed.values.all() and ds.attrs["transform"] == "arcsinh"
    assert list(ds.biosample.values) == ["B1", "B2"] and list(ds.assay.values) == ["H3K4me3", "H3K27me3"]
    for row in manifest.itertuples():
        for contig in CHROMS:
            np.testing.assert_allclose(contig_values(store, row.biosample, row.assay, contig), expected_bins(row.path, contig), rtol=1e-6, atol=0)
    padding = ds.signal.isel(position=slice(GENOME.contig_bins("chr1")[1], GENOME.contig_bins("chr2")[0])).values
    assert np.isnan(padding).all()
    assert len(completed_pieces(store)) == 4 * len(CHROMS)


def test_transform_none_is_recorded_and_not_applied(tmp_path, manifest):
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=GENOME, transform="none", progress=False)
    assert et.open_dataset(store).attrs["transform"] == "none"
    np.testing.assert_allclose(contig_values(store, "B1", "H3K4me3", "chr2"), expected_bins(manifest.path[0], "chr2", "none"), rtol=1e-6)


def test_contig_aliases_resolved_against_store(tmp_path):
    path = write_bigwig(tmp_path / "ens.bw", {"1": 5_001, "MT": 16_569}, {"1": ([10, 100], [50, 4_990], [2.0, 0.5]), "MT": ([0], [16_569], [3.0])})
    genome = et.Genome("hg", ["chr1", "chrM"], [5_001, 16_569], chunk_bins=100)
    store = et.ingest(pd.DataFrame({"biosample": ["X"], "assay": ["Y"], "path": [str(path)]}), tmp_path / "s.zarr", assembly=genome, progress=False)
    np.testing.assert_allclose(contig_values(store, "X", "Y", "chr1"), expected_bins(path, "1"), rtol=1e-6)
    np.testing.assert_allclose(contig_values(store, "X", "Y", "chrM"), np.arcsinh(np.float32(3.0)), rtol=1e-6)


def test_rerun_is_a_no_op(tmp_path, manifest):
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=GENOME, progress=False)
    before = {f: f.stat().st_mtime_ns for f in Path(store, "signal").rglob("*") if f.is_file()}
    digest = store_digest(store)
    et.ingest(manifest, store, progress=False)
    assert {f: f.stat().st_mtime_ns for f in Path(store, "signal").rglob("*") if f.is_file()} == before
    assert store_digest(store) == digest



def test_files_copied_again_moved_or_touched_are_not_ingested_again(tmp_path, manifest):
    """The same content at a new modification time (cp without -p, a fresh checkout) or a new path
    is the same track: a rerun is a no-op, not a refusal. Changed content still needs overwrite."""
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=GENOME, progress=False)
    digest = store_digest(store)
    moved = tmp_path / "moved"
    moved.mkdir()
    copies = [shutil.copy(path, moved / Path(path).name) for path in manifest.path]  # new paths, new mtimes
    for path in manifest.path:
        os.utime(path, ns=(0, 10**18))  # touched in place
    et.ingest(manifest, store, progress=False)
    et.ingest(manifest.assign(path=copies), store, progress=False)
    assert store_digest(store) == digest
    shutil.copy(manifest.path[3], copies[0])  # other content at the same path: another track
    with pytest.raises(et.LabelError, match=r"already holds track\(s\) \[\('B1', 'H3K4me3'\)\].*overwrite=True"):
        et.ingest(manifest.assign(path=copies), store, progress=False)
    assert store_digest(store) == digest


def test_append_to_existing_store(tmp_path, manifest):
    store = et.create_store(tmp_path / "s.zarr", ["B0", "B1", "B2"], ["H3K4me3", "H3K27me3", "CTCF"], GENOME)
    et.ingest(manifest.iloc[[1, 2]], store, progress=False)
    obs = et.open_dataset(store).observed.to_pandas()
    assert obs.values.sum() == 2 and obs.loc["B1", "H3K27me3"] and obs.loc["B2", "H3K4me3"]
    np.testing.assert_allclose(contig_values(store, "B2", "H3K4me3", "chr1"), expected_bins(manifest.path[2], "chr1"), rtol=1e-6)


def test_missing_chrom_as_zero_coverage(tmp_path):
    path = write_bigwig(tmp_path / "one.bw", {"chr1": CHROMS["chr1"]}, {"chr1": ([0], [100], [4.0])})
    m = pd.DataFrame({"biosample": ["X"], "assay": ["Y"], "path": [str(path)]})
    with pytest.raises(et.GenomeError, match=r"no contig chr2.*the file has: chr1.*missing_chroms='zero'"):
        et.ingest(m, tmp_path / "s.zarr", assembly=GENOME, progress=False)
    assert not (tmp_path / "s.zarr").exists()
    store = et.ingest(m, tmp_path / "s.zarr", assembly=GENOME, missing_chroms="zero", progress=False)
    assert (contig_values(store, "X", "Y", "chr2") == 0).all()
    assert contig_values(store, "X", "Y", "chr1")[:4].tolist() == pytest.approx([np.arcsinh(4.0)] * 4)


# ---------------------------------------------------------------------- manifests
def test_manifest_tsv_and_csv_with_relative_paths(tmp_path, manifest):
    rel = manifest.assign(path=[os.path.relpath(p, tmp_path) for p in manifest.path])
    rel.rename(columns=str.upper).to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    rel.to_csv(tmp_path / "m.csv", index=False)
    for name in ("m.tsv", "m.csv"):
        table = et.read_manifest(tmp_path / name)
        assert table.path.tolist() == [str(Path(p).resolve()) for p in manifest.path]
    store = et.ingest(tmp_path / "m.tsv", tmp_path / "s.zarr", assembly=GENOME, progress=False)
    assert et.open_dataset(store).observed.values.all()


def test_encode_manifest_format(encode_core):
    table = et.read_manifest(encode_core)
    assert len(table) == 3814 and table.biosample.nunique() == 400 and table.assay.nunique() == 84 and table.path.str.startswith("https://www.encodeproject.org/").all()
    assert {"biosample_summary", "assay_category", "accession"} <= set(table.columns)


def test_url_downloaded_to_cache_with_retries(tmp_path, manifest):
    url = Path(manifest.path[0]).as_uri()
    local = et.io.fetch(url, tmp_path / "cache")
    assert local.read_bytes() == Path(manifest.path[0]).read_bytes()
    m = pd.DataFrame({"biosample": ["B1"], "assay": ["H3K4me3"], "path": [url]})
    store = et.ingest(m, tmp_path / "s.zarr", assembly=GENOME, cache_dir=tmp_path / "cache2", progress=False)
    np.testing.assert_allclose(contig_values(store, "B1", "H3K4me3", "chr1"), expected_bins(manifest.path[0], "chr1"), rtol=1e-6)
    with pytest.raises(et.DownloadError, match="after 2 attempts"):
        et.io.fetch((tmp_path / "absent.bw").as_uri(), tmp_path / "cache", retries=1, backoff=0)
    assert not list((tmp_path / "cache").glob("*.part"))


# ---------------------------------------------------------------------- bad input leaves the store as it was
def _bad_cases(tmp_path, manifest):
    not_bw = tmp_path / "table.bw"
    not_bw.write_text("chr1\t0\t100\t1.0\n")
    hg_wrong = write_bigwig(tmp_path / "wrong_build.bw", {"chr1": 60_000, "chr2": 30_007}, {"chr1": ([0], [10], [1.0])})
    nan_bw = write_bigwig(tmp_path / "nan.bw", CHROMS, {"chr2": ([0, 10], [10, 20], [1.0, float("nan")])})
    inf_bw = write_bigwig(tmp_path / "inf.bw", CHROMS, {"chr1": ([5], [9], [float("inf")])})
    empty = tmp_path / "empty.bw"
    empty.touch()
    folder = tmp_path / "folder.bw"
    folder.mkdir()
    damaged = corrupt_data_block(manifest.path[0], tmp_path / "damaged.bw", "chr2")
    one = manifest.iloc[:1]
    return {
        "empty file": (one.assign(path=[str(empty)]), {}, et.DataError, r"empty.bw is empty \(0 bytes\)"),
        "folder": (one.assign(path=[str(folder)]), {}, et.DataError, "folder.bw is a folder, not a bigWig file"),
        "damaged data block": (one.assign(path=[str(damaged)]), {}, et.DataError, r"track B1/H3K4me3 .*damaged.bw: cannot read chr2:.*damaged"),
        "not a bigwig": (one.assign(path=[str(not_bw)]), {}, et.DataError, "cannot be opened as a bigWig|not a bigWig"),
        "missing file": (one.assign(path=[str(tmp_path / "nope.bw")]), {}, et.DataError, "does not exist"),
        "duplicate rows": (pd.concat([one, one]), {}, et.ManifestError, "more than once"),
        "missing column": (one.drop(columns="assay"), {}, et.ManifestError, r"lacks column\(s\) \['assay'\]"),
        "wrong build": (one.assign(path=[str(hg_wrong)]), {}, et.GenomeError, "60,000 bp.*60,013 bp.*another genome build"),
        "nan values": (one.assign(path=[str(nan_bw)]), {}, et.DataError, r"NaN or infinite.*chr2:10"),
        "inf values": (one.assign(path=[str(inf_bw)]), {}, et.DataError, r"NaN or infinite.*chr1:5"),
        "unknown labels": (one.assign(biosample=["HepG2"]), {}, et.LabelError, r"biosample\(s\) \['HepG2'\]"),
        "other contigs": (one, {"chroms": ["chr1"]}, et.GenomeError, "cannot be used"),
    }


@pytest.mark.parametrize("case", ["empty file", "folder", "damaged data block", "not a bigwig", "missing file", "duplicate rows", "missing column", "wrong build", "nan values", "inf values", "unknown labels", "other contigs"])
def test_bad_input_raises_and_leaves_store_unchanged(tmp_path, manifest, case):
    store = et.create_store(tmp_path / "s.zarr", ["B1", "B2"], ["H3K4me3", "H3K27me3"], GENOME)
    et.ingest(manifest.iloc[[3]], store, progress=False)
    before = store_digest(store)
    table, kwargs, error, message = _bad_cases(tmp_path, manifest)[case]
    with pytest.raises(error, match=message):
        et.ingest(table, store, progress=False, **kwargs)
    assert store_digest(store) == before


def test_bad_input_creates_no_store(tmp_path, manifest):
    table, _, error, _ = _bad_cases(tmp_path, manifest)["wrong build"]
    with pytest.raises(error):
        et.ingest(table, tmp_path / "new.zarr", assembly=GENOME, progress=False)
    assert not (tmp_path / "new.zarr").exists()


def test_nan_found_mid_run_names_file_and_contig(tmp_path, manifest, monkeypatch):
    """Files without a total summary are checked chunk by chunk; the bad piece is not recorded."""
    nan_bw = write_bigwig(tmp_path / "nan.bw", CHROMS, {"chr2": ([0, 10], [10, 20], [1.0, float("nan")])})
    with pytest.raises(et.DataError, match=r"nan.bw: NaN values in chr2:0-25,000"):
        read_bins(nan_bw, "chr2", CHROMS["chr2"], 0, 1000, check=True)

    real = pieces.inspect_bigwig
    monkeypatch.setattr(pieces, "inspect_bigwig", lambda p: real(p).__class__(str(p), real(p).chroms, None))
    table = pd.concat([manifest.iloc[:1], manifest.iloc[[1]].assign(path=[str(nan_bw)])])
    with pytest.raises(et.DataError, match="chr2"):
        et.ingest(table, tmp_path / "s.zarr", assembly=GENOME, scheduler="threads", workers=2, progress=False)
    ds = et.open_dataset(tmp_path / "s.zarr")
    assert not ds.observed.sel(assay="H3K27me3").values.any()
    assert np.isnan(ds.signal.sel(biosample="B1", assay="H3K27me3").values).all()  # no half track left
    assert all(r["assay"] == "H3K4me3" for r in completed_pieces(tmp_path / "s.zarr").values())
    et.ingest(table.iloc[:1], tmp_path / "s.zarr", progress=False)  # the good track completes on a rerun
    assert et.open_dataset(tmp_path / "s.zarr").observed.values.tolist() == [[True, False]]


#: Ingests each bigWig file given (one track each) and prints one line per file: the project
#: error's class, or "ok". pyBigWig crashed the interpreter on some damaged headers.
DAMAGED_FILES_SCRIPT = """
import sys
import pandas as pd
import epitensor as et

genome = et.Genome("test", ["chr1", "chr2"], [60_013, 30_007], chunk_bins=1_000)
for i, path in enumerate(sys.argv[1:]):
    try:
        et.ingest(pd.DataFrame({"biosample": ["B"], "assay": ["A"], "path": [path]}), f"{path}.zarr", assembly=genome, progress=False)
        print("ok")
    except et.EpitensorError as err:
        print(type(err).__name__, str(err).splitlines()[0])
"""


def damaged_headers(src, folder) -> dict[str, Path]:
    """Copies of bigWig ``src`` with one part of the header's layout broken each."""
    data = Path(src).read_bytes()
    with BigWigBlocks(src) as blocks:
        tree, key_size = blocks.chrom_tree, int(np.frombuffer(data[blocks.chrom_tree + 8 : blocks.chrom_tree + 12], "<u4")[0])
    cases = {
        "contig id": (tree + 32 + 4 + key_size + 3, 0x85),  # chr1's id -> 2,231,369,728 (a crash before)
        "index offset": (24 + 7, 0x7F),  # the data index (u8 at byte 24) far past the end of the file
        "zoom levels": (6, 0xFF),
    }
    out = {}
    for name, (at, value) in cases.items():
        broken = bytearray(data)
        broken[at] = value
        out[name] = folder / f"{name.replace(' ', '_')}.bw"
        out[name].write_bytes(bytes(broken))
    for fraction in (0.1, 0.5, 0.9):
        out[f"truncated {fraction}"] = folder / f"truncated_{fraction}.bw"
        out[f"truncated {fraction}"].write_bytes(data[: int(len(data) * fraction)])
    return out


def test_damaged_headers_are_data_errors_not_crashes(tmp_path, manifest, run_script):
    files = damaged_headers(manifest.path[0], tmp_path)
    run = run_script(DAMAGED_FILES_SCRIPT, *files.values())
    assert run.returncode == 0, f"rc {run.returncode} (139/-11: a segfault)\n{run.stderr[-2000:]}"
    got = dict(zip(files, run.stdout.splitlines()))
    assert all(line.startswith("DataError ") for line in got.values()) and len(got) == len(files), got
    assert "contig ids" in got["contig id"] and "offset outside the file" in got["index offset"]


def test_damaged_data_block_erases_the_track_and_keeps_the_others(tmp_path, manifest):
    """pyBigWig fails on a corrupt data block of chr2 after chr1's chunks are written: the track
    must not be left half written, and the finished tracks must stay."""
    def new_store(path):
        store = et.create_store(path, ["B1", "B2"], ["H3K4me3", "H3K27me3"], GENOME)
        return et.ingest(manifest.iloc[[3]], store, progress=False)  # B2/H3K27me3

    store = new_store(tmp_path / "s.zarr")
    kept = {f: f.read_bytes() for f in track_chunk_files(store, 1, 1)}
    damaged = corrupt_data_block(manifest.path[0], tmp_path / "damaged.bw", "chr2")
    with pytest.raises(et.DataError, match="cannot read chr2"):  # the damage is real: the block no longer reads
        interval_bin_means(damaged, "chr2", 0, CHROMS["chr2"])
    table = manifest.iloc[[0, 1]].assign(path=[str(damaged), manifest.path[1]])
    with pytest.raises(et.DataError, match=r"track B1/H3K4me3 .*damaged.bw: cannot read chr2.*damaged"):
        et.ingest(table, store, scheduler="sync", progress=False)
    obs = et.open_dataset(store).observed.to_pandas()
    assert track_chunk_files(store, 0, 0) == [] and not obs.loc["B1", "H3K4me3"]
    assert not any(r["assay"] == "H3K4me3" and r["biosample"] == "B1" for r in completed_pieces(store).values())
    assert {f: f.read_bytes() for f in track_chunk_files(store, 1, 1)} == kept and obs.loc["B2", "H3K27me3"]
    if obs.loc["B1", "H3K27me3"]:  # finished before the failure: kept whole
        np.testing.assert_allclose(contig_values(store, "B1", "H3K27me3", "chr1"), expected_bins(manifest.path[1], "chr1"), rtol=1e-6)
    else:  # unfinished: erased whole
        assert track_chunk_files(store, 0, 1) == []
    et.ingest(manifest.iloc[[0, 1]], store, progress=False)  # the good file: resumes and finishes
    clean = et.ingest(manifest.iloc[[0, 1]], new_store(tmp_path / "clean.zarr"), progress=False)
    assert store_digest(store) == store_digest(clean)


@pytest.mark.parametrize(
    ("owner", "name", "nth"),
    # the sync scheduler writes the 3 chr1 chunks (then the chr1 record) of each of the 4 tracks,
    # then their 2 chr2 chunks (then the chr2 record) track by track: the 15th chunk write or the
    # 6th record (its temporary file, tempfile.mkstemp) finds the disk full after one track has finished
    [(ChunkFiles, "write", 15), (tempfile, "mkstemp", 6)],
    ids=["chunk", "record"],
)
def test_disk_full_erases_the_failed_track_and_a_rerun_finishes(tmp_path, manifest, monkeypatch, owner, name, nth):
    real, calls = getattr(owner, name), []

    def full_disk(*args, **kwargs):
        calls.append(args)
        if len(calls) >= nth:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, full_disk)
    store = tmp_path / "s.zarr"
    with pytest.raises(et.WriteError, match=r"disk full writing .*s\.zarr .*track B\d/H3K\d+me3.*free some space and run the same ingest again"):
        et.ingest(manifest, store, assembly=GENOME, scheduler="sync", progress=False)
    obs = et.open_dataset(store).observed.values
    assert 0 < obs.sum() < obs.size  # some tracks finished, the one that hit the full disk did not
    for b in range(2):
        for a in range(2):
            files = track_chunk_files(store, b, a)
            assert (len(files) == 5) if obs[b, a] else files == []  # finished whole, or erased whole
    assert not list(store.rglob("*.partial"))
    monkeypatch.setattr(owner, name, real)  # space freed
    et.ingest(manifest, store, progress=False)
    assert store_digest(store) == store_digest(et.ingest(manifest, tmp_path / "clean.zarr", assembly=GENOME, progress=False))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": -1}, r"workers must be a whole number of at least 1.*got -1"),
        ({"workers": 0}, "workers must be"),
        ({"workers": 1.5}, "workers must be"),
        ({"scheduler": "bogus"}, r"scheduler must be one of \['threads', 'processes', 'sync', 'distributed'\].*'bogus'"),
        ({"missing_chroms": "ignore"}, r"missing_chroms must be one of \['error', 'zero'\].*'ignore'"),
        ({"transform": "log"}, r"transform must be one of \['arcsinh', 'none'\].*'log'"),
    ],
)
def test_bad_arguments_are_refused_before_the_store_is_created(tmp_path, manifest, kwargs, message):
    with pytest.raises(et.ArgumentError, match=message):
        et.ingest(manifest, tmp_path / "s.zarr", assembly=GENOME, progress=False, **kwargs)
    assert not (tmp_path / "s.zarr").exists()


def test_already_observed_track_needs_overwrite(tmp_path, manifest):
    store = et.ingest(manifest.iloc[:1], tmp_path / "s.zarr", assembly=GENOME, progress=False)
    other = manifest.iloc[:1].assign(path=[manifest.path[3]])
    with pytest.raises(et.LabelError, match="overwrite=True"):
        et.ingest(other, store, progress=False)
    et.ingest(other, store, overwrite=True, progress=False)
    np.testing.assert_allclose(contig_values(store, "B1", "H3K4me3", "chr1"), expected_bins(manifest.path[3], "chr1"), rtol=1e-6)
    assert et.open_dataset(store).observed.values.all()


# ---------------------------------------------------------------------- resume after kill -9
#: Runs ingest and kills itself (kill -9) at one write point: every file of a store is written to a
#: temporary name and renamed into place (os.replace), so patching os.replace reaches them all.
#: argv: manifest, store, scheduler, a regex of the written path, N, "before" or "after" the Nth
#: matching rename (before: the temporary file is written but not yet renamed).
KILL_SCRIPT = """
import os, re, signal, sys, threading
import pandas as pd
import epitensor as et

manifest, store, scheduler, pattern, nth, when = sys.argv[1:]
real, calls, lock = os.replace, [], threading.Lock()
def replace_or_die(src, dst, *args, **kwargs):
    # threaded writers rename concurrently: each rename takes its number under the lock, so two
    # threads can never both see the count pass nth between an append and the comparison
    with lock:
        hit = re.search(pattern, os.fspath(dst).replace(os.sep, "/")) is not None
        if hit:
            calls.append(dst)
        mine = hit and len(calls) == int(nth)
    if mine and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(src, dst, *args, **kwargs)
    if mine and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return out
os.replace = replace_or_die
genome = et.Genome("test", ["chr1", "chr2"], [60_013, 30_007], chunk_bins=1_000)
et.ingest(pd.read_csv(manifest, sep="\\t"), store, assembly=genome, scheduler=scheduler, workers=2, progress=False)
sys.exit("the kill point was never reached")
"""


@pytest.mark.parametrize(
    ("scheduler", "point", "nth", "when"),
    [
        ("sync", r"/signal/c/", 7, "before"),  # a chunk written, not renamed
        ("threads", r"/signal/c/", 12, "after"),  # chunks done, their piece's record not written
        ("sync", r"/ingest_progress/zarr\.json$", 1, "before"),  # the progress group being created
        ("sync", r"/ingest_progress/\d", 3, "before"),  # a completion record written, not renamed
        ("sync", r"/observed/c/", 1, "before"),  # every piece recorded, observed not yet updated
    ],
    ids=["chunk", "chunk-threads", "progress-group", "record", "observed"],
)
def test_resume_after_kill_9_gives_identical_store(tmp_path, manifest, run_script, scheduler, point, nth, when):
    manifest.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    killed = tmp_path / "killed.zarr"
    run = run_script(KILL_SCRIPT, tmp_path / "m.tsv", killed, scheduler, point, nth, when)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    records = completed_pieces(killed)
    assert len(records) == 8 if point.startswith("/observed") else len(records) < 8
    assert not et.open_dataset(killed).observed.values.any()
    if when == "before":  # the kill left the temporary file of the write it interrupted
        assert [f for f in killed.rglob("*") if f.name.endswith((".partial", ".tmp"))]

    et.ingest(tmp_path / "m.tsv", killed, progress=False)  # resume
    clean = et.ingest(tmp_path / "m.tsv", tmp_path / "clean.zarr", assembly=GENOME, progress=False)
    assert store_digest(killed) == store_digest(clean)
    assert et.open_dataset(killed).observed.values.all()


# ---------------------------------------------------------------------- schedulers
def test_large_ingests_run_as_several_graphs(tmp_path, manifest, monkeypatch):
    reference = store_digest(et.ingest(manifest, tmp_path / "one.zarr", assembly=GENOME, progress=False))
    graphs = []
    real_graph = ingest_run.graph
    monkeypatch.setattr(ingest_run, "BATCH_CHUNKS", 4)
    monkeypatch.setattr(ingest_run, "graph", lambda store, batch, genome: graphs.append(len(batch)) or real_graph(store, batch, genome))
    assert store_digest(et.ingest(manifest, tmp_path / "many.zarr", assembly=GENOME, progress=False)) == reference
    assert graphs == [1] * 8  # pieces of 3 and 2 chunks never fit two in a graph of at most 4 chunks


def test_processes_scheduler_and_distributed_cluster_match_threads(tmp_path, manifest, capsys):
    distributed = pytest.importorskip("distributed")
    reference = store_digest(et.ingest(manifest, tmp_path / "threads.zarr", assembly=GENOME, progress=False))
    assert store_digest(et.ingest(manifest, tmp_path / "proc.zarr", assembly=GENOME, scheduler="processes", workers=2, progress=False)) == reference
    # processes=False keeps the test fast on a 2-core machine; the benchmark runs worker processes
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        store = et.ingest(manifest, tmp_path / "dist.zarr", assembly=GENOME)  # picks up the active client
        assert len(client.run(lambda: 1)) == 2
        assert "ingest: 100%" in capsys.readouterr().err
    assert store_digest(store) == reference


# ---------------------------------------------------------------------- real files
H1_TRACKS = ["Ctcf", "H2az", "Nanog", "Oct4", "k27ac", "k4me1", "k4me3"]


@pytest.mark.shared_data
def test_real_h1_bins_equal_numpy(bigwig_dir, tmp_path):
    # every H1 file, read piece by piece around the window they cover (irregular intervals, gaps)
    for name in H1_TRACKS:
        path = bigwig_dir / f"H1_{name}.bw"
        assert inspect_bigwig(path).chroms == {"chr6": 171_115_067}
        lo, hi = 31_125_000 // 25, 31_146_000 // 25
        got = np.concatenate([read_bins(path, "chr6", 171_115_067, a, min(a + 160, hi)) for a in range(lo, hi, 160)])
        np.testing.assert_allclose(got, expected_bins(path, "chr6", bins=(lo, hi)), rtol=1e-6, atol=0)
        assert (got > 0).any()
    # two of them through the whole ingest path, over all of chr6
    files = [bigwig_dir / f"H1_{n}.bw" for n in ("k27ac", "Nanog")]
    m = pd.DataFrame({"biosample": ["H1", "H1"], "assay": ["H3K27ac", "NANOG"], "path": [str(f) for f in files]})
    store = et.ingest(m, tmp_path / "h1.zarr", assembly="hg19", chroms=["6"], workers=2, progress=False)
    lo, hi = 31_125_000 // 25, 31_146_000 // 25
    for assay, f in zip(m.assay, files):
        got = contig_values(store, "H1", assay, "chr6")
        np.testing.assert_allclose(got[lo:hi], expected_bins(f, "chr6", bins=(lo, hi)), rtol=1e-6, atol=0)
        assert got.size == 6_844_603 and not got[:lo].any() and not got[hi:].any()  # no signal outside the window


@pytest.mark.shared_data
def test_real_sparse_encode_file(bigwig_dir, tmp_path):
    path = bigwig_dir / "ENCFF324BPE.bigWig"
    assert len(inspect_bigwig(path).chroms) == 24
    m = pd.DataFrame({"biosample": ["sample"], "assay": ["DNase-seq"], "path": [str(path)]})
    store = et.ingest(m, tmp_path / "enc.zarr", assembly="hg19", chroms=["chr21", "MT"], progress=False)
    for contig in ("chr21", "chrM"):
        got = contig_values(store, "sample", "DNase-seq", contig)
        np.testing.assert_allclose(got, expected_bins(path, contig), rtol=1e-6, atol=0)
        assert 0 < (got > 0).mean() < 1
