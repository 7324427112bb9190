"""Peak files (narrowPeak, broadPeak, BED) as tracks, and the ENCODE peaks compendium loader."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path, store_digest

import epitensor as et
from epitensor.datasets import peaks as peaks_dataset
from epitensor.exceptions import ArgumentError, DataError, GenomeError, MissingFilesWarning

HG19 = et.Genome.from_assembly("hg19", contigs=["chr21", "chr22"])
SMALL = et.Genome("test", ["chr1", "chr2"], [60_013, 30_007], chunk_bins=1_000)


def expected_track(files, genome, column=None) -> dict[str, np.ndarray]:
    """Independent computation: pandas reads each file, every peak paints the bins it overlaps by
    >= 1 bp (floor(start/25) .. ceil(end/25) - 1) with 1 or its column; replicates by maximum."""
    out = {c: np.zeros(-(-genome.length(c) // 25)) for c in genome.contigs}
    for file in files:
        try:
            table = pd.read_csv(file, sep="\t", header=None)
        except pd.errors.EmptyDataError:
            continue
        for chrom, start, end, value in zip(table[0], table[1], table[2], table[column] if column is not None else np.ones(len(table))):
            if chrom in out:
                lo, hi = start // 25, -(-end // 25)
                out[chrom][lo:hi] = np.maximum(out[chrom][lo:hi], value)
    return out


def store_track(store, biosample, assay, genome) -> dict[str, np.ndarray]:
    ds = et.open_dataset(store)
    return {c: ds.signal.sel(biosample=biosample, assay=assay).epi.region(c).values for c in genome.contigs}


def assert_track_equal(store, biosample, assay, expected, genome):
    got = store_track(store, biosample, assay, genome)
    for contig in genome.contigs:
        np.testing.assert_array_equal(got[contig], expected[contig].astype(np.float32), err_msg=f"{biosample}/{assay} {contig}")


@pytest.fixture
def peaks_dir():
    return shared_path("encode_peaks")


#: Real files of several formats: ENCODE uniform narrowPeak, broadPeak, Roadmap MACS2 narrowPeak,
#: an empty file (no peak on chr21/chr22), and a replicate pair.
REAL = [
    ("GM12878", "CTCF", "wgEncodeAwgTfbsBroadGm12878CtcfUniPk.narrowPeak.gz"),
    ("HeLa-S3", "H3K4me1", "wgEncodeBroadHistoneHelas3H3k04me1StdPk.broadPeak.gz"),
    ("HUVEC", "H3K9ac", "E122-H3K9ac.narrowPeak.gz"),
    ("HeLa-S3", "ZNF274", "wgEncodeAwgTfbsSydhHelas3Znf274UcdUniPk.narrowPeak.gz"),
]
REPLICATES = ("GM12878", "CREB1", ["wgEncodeHaibTfbsGm12878Creb1sc240V0422111PkRep1.broadPeak.gz", "wgEncodeHaibTfbsGm12878Creb1sc240V0422111PkRep2.broadPeak.gz"])


def real_manifest(peaks_dir, rows=REAL) -> pd.DataFrame:
    return pd.DataFrame([(b, a, str(peaks_dir / b / f)) for b, a, f in rows], columns=["biosample", "assay", "path"])


# ---------------------------------------------------------------------- real files
def test_real_peak_files_equal_numpy(peaks_dir, tmp_path):
    store = et.ingest(real_manifest(peaks_dir), tmp_path / "p.zarr", assembly="hg19", chroms=["chr21", "chr22"], progress=False)
    ds = et.open_dataset(store)
    assert ds.attrs["transform"] == "none" and ds.attrs["peaks"]["value"] == "coverage"
    assert ">= 1 bp" in ds.attrs["peaks"]["overlap"]
    for b, a, f in REAL:
        assert bool(ds.observed.sel(biosample=b, assay=a))
        assert_track_equal(store, b, a, expected_track([peaks_dir / b / f], HG19), HG19)
    assert not store_track(store, "HeLa-S3", "ZNF274", HG19)["chr21"].any()  # the empty file: no peaks


def test_replicates_merged_by_union_and_by_max(peaks_dir, tmp_path):
    cell, assay, files = REPLICATES
    manifest = real_manifest(peaks_dir, [(cell, assay, f) for f in files])
    paths = [peaks_dir / cell / f for f in files]
    cover = et.ingest(manifest, tmp_path / "c.zarr", assembly=HG19, progress=False)
    union = expected_track(paths, HG19)
    assert_track_equal(cover, cell, assay, union, HG19)
    single = expected_track(paths[:1], HG19)
    assert union["chr21"].sum() > single["chr21"].sum()  # the second replicate adds peaks
    signal_store = et.ingest(manifest, tmp_path / "s.zarr", assembly=HG19, peak_value="signalValue", transform="none", progress=False)
    assert_track_equal(signal_store, cell, assay, expected_track(paths, HG19, column=6), HG19)
    assert et.open_dataset(signal_store).attrs["peaks"]["value"] == "signalValue"


def test_value_column_with_arcsinh_transform(peaks_dir, tmp_path):
    b, a, f = REAL[2]  # Roadmap MACS2: pValue (-log10 p) given on every row
    store = et.ingest(real_manifest(peaks_dir, [REAL[2]]), tmp_path / "p.zarr", assembly=HG19, peak_value="pValue", progress=False)
    ds = et.open_dataset(store)
    assert ds.attrs["transform"] == "arcsinh" and ds.attrs["peaks"]["value"] == "pValue"
    expected = {c: np.arcsinh(v) for c, v in expected_track([peaks_dir / b / f], HG19, column=7).items()}
    got = store_track(store, b, a, HG19)
    for contig in HG19.contigs:
        np.testing.assert_allclose(got[contig], expected[contig], rtol=1e-6)


def test_value_not_given_names_file_and_line(peaks_dir, tmp_path):
    b, a, f = REAL[0]  # ENCODE uniform peaks write pValue -1
    with pytest.raises(DataError, match=rf"{f}.* line 1: pValue is -1"):
        et.ingest(real_manifest(peaks_dir, [REAL[0]]), tmp_path / "p.zarr", assembly=HG19, peak_value="pValue", progress=False)
    assert not (tmp_path / "p.zarr").exists()


def test_absent_files_error_by_default_and_reported_on_request(peaks_dir, tmp_path):
    absent = ("IMR90", "DNase-seq", "E017-DNase.macs2.narrowPeak.gz")  # listed, absent from the source
    cell, assay, files = REPLICATES
    rows = [REAL[0], absent, (cell, assay, files[0]), (cell, assay, "missing-Rep9.broadPeak.gz")]
    manifest = real_manifest(peaks_dir, rows)
    with pytest.raises(DataError, match=r"E017-DNase\.macs2\.narrowPeak\.gz \(IMR90/DNase-seq\) does not exist.*missing_files='report'"):
        et.ingest(manifest, tmp_path / "e.zarr", assembly=HG19, progress=False)
    assert not (tmp_path / "e.zarr").exists()
    with pytest.warns(MissingFilesWarning, match=r"2 file\(s\).*IMR90/DNase-seq"):
        store = et.ingest(manifest, tmp_path / "r.zarr", assembly=HG19, missing_files="report", progress=False)
    ds = et.open_dataset(store)
    assert sorted((e["biosample"], e["assay"]) for e in ds.attrs["absent_files"]) == [(cell, assay), ("IMR90", "DNase-seq")]
    assert not bool(ds.observed.sel(biosample="IMR90", assay="DNase-seq"))
    assert bool(ds.observed.sel(biosample=cell, assay=assay))  # made of the replicate that exists
    assert_track_equal(store, cell, assay, expected_track([peaks_dir / cell / files[0]], HG19), HG19)


# ---------------------------------------------------------------------- written files
def write_peaks(path, lines) -> str:
    text = "".join(line + "\n" for line in lines)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return str(path)


def narrow(chrom, start, end, signal=5.0, p=3.0, q=2.0) -> str:
    return f"{chrom}\t{start}\t{end}\t.\t0\t.\t{signal}\t{p}\t{q}\t-1"


def small_manifest(tmp_path) -> pd.DataFrame:
    """Two biosamples x two assays of written peak files on :data:`SMALL` (one track with two
    replicates, one BED without a suffix format, plain and gzipped)."""
    rng = np.random.default_rng(0)
    rows = []
    for b in ("B1", "B2"):
        for a in ("CTCF", "H3K27ac"):
            reps = 2 if (b, a) == ("B1", "CTCF") else 1
            for r in range(reps):
                lines = []
                for chrom, length in zip(SMALL.contigs, SMALL.lengths):
                    starts = np.sort(rng.integers(0, length - 2_000, 40))
                    lines += [narrow(chrom, s, s + int(w), round(float(v), 3)) for s, w, v in zip(starts, rng.integers(1, 1_500, 40), rng.uniform(1, 50, 40))]
                suffix = ".narrowPeak.gz" if a == "CTCF" else ".narrowPeak"
                rows.append((b, a, write_peaks(tmp_path / f"{b}_{a}_{r}{suffix}", lines)))
    return pd.DataFrame(rows, columns=["biosample", "assay", "path"])


def test_overlap_rule_at_bin_edges(tmp_path):
    # [0, 25) covers bin 0 only; [49, 51) bins 1 and 2; [100, 101) bin 4; a BED file with 3 columns
    bed = write_peaks(tmp_path / "a.bed", ["track name=x", "chr1\t0\t25", "chr1\t49\t51", "# note", "chr1\t100\t101", "chr2\t30000\t30007"])
    store = et.ingest(pd.DataFrame({"biosample": ["B"], "assay": ["CTCF"], "path": [bed]}), tmp_path / "e.zarr", assembly=SMALL, progress=False)
    got = store_track(store, "B", "CTCF", SMALL)
    np.testing.assert_array_equal(got["chr1"][:6], [1, 1, 1, 0, 1, 0])
    assert got["chr1"].sum() == 4 and got["chr2"][-1] == 1 and got["chr2"].sum() == 1  # the partial last bin


def test_written_files_equal_numpy_values(tmp_path):
    manifest = small_manifest(tmp_path)
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=SMALL, peak_value="signalValue", transform="none", workers=2, progress=False)
    for (b, a), part in manifest.groupby(["biosample", "assay"]):
        assert_track_equal(store, b, a, expected_track(list(part.path), SMALL, column=6), SMALL)


@pytest.mark.parametrize(
    ("name", "lines", "error", "message"),
    [
        ("cols.narrowPeak", [narrow("chr1", 0, 100), "chr1\t200\t300\t.\t0\t.\t1\t1\t1"], DataError, r"cols\.narrowPeak line 2 has 9 tab-separated columns"),
        ("nine.narrowPeak", ["chr1\t200\t300\t.\t0\t.\t1\t1\t1"], DataError, r"nine\.narrowPeak line 1 has 9 tab-separated columns; a narrowPeak file has 10"),
        ("float.bed", ["chr1\t0\t100", "chr1\t10.5\t200"], DataError, r"float\.bed line 2: start '10\.5' is not a whole number"),
        ("order.bed", ["chr1\t500\t100"], DataError, r"order\.bed line 1: end 100 is not after start 500"),
        ("contig.bed", ["chrFoo\t0\t100", "scaffold_7\t5\t10"], GenomeError, r"contig\.bed has no row on a contig of test"),
        ("past.bed", ["chr2\t29000\t31000"], GenomeError, r"past\.bed line 1: peak chr2:29,000-31,000 runs past the end of chr2"),
        ("binary.bed.gz", None, DataError, r"binary\.bed\.gz cannot be read"),
        ("value.narrowPeak", [narrow("chr1", 0, 100, signal="high")], DataError, r"value\.narrowPeak line 1: signalValue 'high' is not a finite number"),
        ("three.narrowPeak.bed", ["chr1\t0\t100"], DataError, r"three\.narrowPeak\.bed has 3 columns and no signalValue column"),
    ],
)
def test_malformed_peak_files_name_file_and_line(tmp_path, name, lines, error, message):
    path = tmp_path / name
    if lines is None:
        path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    else:
        write_peaks(path, lines)
    manifest = pd.DataFrame({"biosample": ["B"], "assay": ["CTCF"], "path": [str(path)]})
    with pytest.raises(error, match=message):
        et.ingest(manifest, tmp_path / "m.zarr", assembly=SMALL, peak_value="signalValue" if "narrowPeak" in name else "coverage", progress=False)
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peak_value": "score"}, r"peak_value must be one of \['coverage', 'signalValue', 'pValue', 'qValue'\]"),
        ({"missing_files": "skip"}, r"missing_files must be one of \['error', 'report'\]"),
        ({"transform": "arcsinh"}, r"peak coverage is 0/1 and is stored untransformed"),
    ],
)
def test_bad_peak_arguments_are_refused_before_the_store_is_created(tmp_path, kwargs, message):
    bed = write_peaks(tmp_path / "a.bed", ["chr1\t0\t25"])
    with pytest.raises(ArgumentError, match=message):
        et.ingest(pd.DataFrame({"biosample": ["B"], "assay": ["CTCF"], "path": [bed]}), tmp_path / "x.zarr", assembly=SMALL, progress=False, **kwargs)
    assert not (tmp_path / "x.zarr").exists()


def test_a_store_holds_one_kind_of_peak_value(tmp_path):
    manifest = small_manifest(tmp_path)
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=SMALL, peak_value="signalValue", transform="none", progress=False)
    before = store_digest(store)
    with pytest.raises(et.exceptions.SchemaError, match=r"holds peak tracks of 'signalValue'"):
        et.ingest(manifest, store, peak_value="qValue", overwrite=True, progress=False)
    assert store_digest(store) == before


def test_touched_replicate_files_are_not_ingested_again(tmp_path):
    """A peak track's record keeps the content digest of its replicate files: files touched (or
    copied again) are a no-op on rerun, a replicate with other peaks needs overwrite."""
    manifest = small_manifest(tmp_path)
    store = et.ingest(manifest, tmp_path / "s.zarr", assembly=SMALL, progress=False)
    before = store_digest(store)
    for path in manifest.path:
        os.utime(path, ns=(0, 10**18))
    et.ingest(manifest, store, progress=False)
    assert store_digest(store) == before
    replicated = manifest[manifest.duplicated(["biosample", "assay"], keep=False)]
    assert len(replicated) >= 2  # a track of several files
    path = replicated.path.iloc[-1]
    write_peaks(path, [narrow("chr1", 900, 950)])  # other peaks in one replicate
    with pytest.raises(et.LabelError, match="overwrite=True"):
        et.ingest(manifest, store, progress=False)
    assert store_digest(store) == before


def test_bigwig_rows_still_refuse_replicates(tmp_path):
    manifest = pd.DataFrame({"biosample": ["B", "B"], "assay": ["CTCF", "CTCF"], "path": ["a.bigWig", "b.bigWig"]})
    with pytest.raises(et.exceptions.ManifestError, match="more than once"):
        et.io.read_manifest(manifest)
    mixed = pd.DataFrame({"biosample": ["B", "B"], "assay": ["CTCF", "CTCF"], "path": ["a.narrowPeak", "b.bigWig"]})
    with pytest.raises(et.exceptions.ManifestError):
        et.io.read_manifest(mixed)


KILL_SCRIPT = """
import os, re, signal, sys, threading
import pandas as pd
import epitensor as et

manifest, store, nth = sys.argv[1:]
real, calls, lock = os.replace, [], threading.Lock()
def replace_or_die(src, dst, *args, **kwargs):
    if re.search(r"/signal/c/", os.fspath(dst).replace(os.sep, "/")):
        with lock:  # writers may rename from several threads
            calls.append(dst)
            mine = len(calls) == int(nth)
        if mine:
            os.kill(os.getpid(), signal.SIGKILL)  # a chunk written, not renamed
    return real(src, dst, *args, **kwargs)
os.replace = replace_or_die
genome = et.Genome("test", ["chr1", "chr2"], [60_013, 30_007], chunk_bins=1_000)
et.ingest(pd.read_csv(manifest, sep="\\t"), store, assembly=genome, scheduler="sync", progress=False)
sys.exit("the kill point was never reached")
"""


def test_killed_and_rerun_ingest_gives_identical_bytes(tmp_path, run_script):
    manifest = small_manifest(tmp_path)
    manifest.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    killed = tmp_path / "killed.zarr"
    run = run_script(KILL_SCRIPT, tmp_path / "m.tsv", killed, 9)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert not et.open_dataset(killed).observed.values.all()
    et.ingest(tmp_path / "m.tsv", killed, progress=False)  # resume
    clean = et.ingest(tmp_path / "m.tsv", tmp_path / "clean.zarr", assembly=SMALL, progress=False)
    assert store_digest(killed) == store_digest(clean)
    assert et.open_dataset(killed).observed.values.all()


# ---------------------------------------------------------------------- the compendium loader
def test_registry_matches_the_shared_files(peaks_dir):
    registry = peaks_dataset.registry()
    assert len(registry) == 6 + 385  # 17 of the 402 listed files are absent from the source
    for name in ["GM12878/filenames.csv", *(f"{b}/{f}" for b, _, f in REAL)]:
        data = (peaks_dir / name).read_bytes()
        digest = hashlib.sha256(data if name.endswith(".csv") else gzip.decompress(data)).hexdigest()
        assert registry[name] == digest, name


def mini_compendium(peaks_dir, folder, keep=3):
    """A copy of the compendium with the first ``keep`` rows of each cell line's listing (absent
    files included where the listing names one there); returns the (cell, assay) of absent files."""
    absent = set()
    for cell in peaks_dataset.CELL_LINES:
        listing = pd.read_csv(peaks_dir / cell / "filenames.csv")
        rows = listing.head(keep)
        if cell == "IMR90":  # DNase-seq and H1B: listed, absent (H1B has no file in any line)
            rows = pd.concat([rows, listing[listing.name.isin(["DNase-seq", "H1B"])]])
        (folder / cell).mkdir(parents=True)
        rows.to_csv(folder / cell / "filenames.csv", index=False)
        for f in rows.filename:
            if (peaks_dir / cell / f"{f}.gz").exists():
                shutil.copy(peaks_dir / cell / f"{f}.gz", folder / cell / f"{f}.gz")
        absent |= {(cell, n) for n, f in zip(rows.name, rows.filename) if not (peaks_dir / cell / f"{f}.gz").exists()}
    return absent


def test_loader_builds_the_store_and_reports_absent_files(peaks_dir, tmp_path):
    folder = tmp_path / "copy"
    absent = mini_compendium(peaks_dir, folder)
    assert {("IMR90", "DNase-seq"), ("IMR90", "H1B")} <= absent
    with pytest.warns(MissingFilesWarning, match=rf"{len(absent)} file\(s\) listed"):
        ds = et.datasets.encode_peaks(tmp_path / "s.zarr", path=folder, chroms=["chr21"])
    assert ds.attrs["assembly"] == "hg19" and list(ds.attrs["contigs"]) == ["chr21"]
    assert {(e["biosample"], e["assay"]) for e in ds.attrs["absent_files"]} == absent
    assert "H1B" not in ds.assay.values  # no file in any line: no label
    assert not bool(ds.observed.sel(biosample="IMR90", assay="DNase-seq"))
    assert sorted(ds.biosample.values) == sorted(peaks_dataset.CELL_LINES)
    cell, assay, file = "GM12878", "ATF2", "wgEncodeAwgTfbsHaibGm12878Atf2sc81188V0422111UniPk.narrowPeak.gz"
    genome = et.Genome.from_assembly("hg19", contigs=["chr21"])
    assert_track_equal(ds.attrs["source"], cell, assay, expected_track([peaks_dir / cell / file], genome), genome)
    with pytest.warns(MissingFilesWarning):  # reopened as it is
        again = et.datasets.encode_peaks(tmp_path / "s.zarr", path=folder, chroms=["chr21"])
    assert store_digest(tmp_path / "s.zarr") and int(again.observed.sum()) == int(ds.observed.sum())


def test_download_keeps_chr21_chr22_rows_and_checks_their_hash(peaks_dir, tmp_path, monkeypatch):
    """A file:// stand-in for the TargetFinder repository ({cell}/peaks/{file}): genome-wide files
    are cut to chr21/chr22 and hash-checked; a changed file is refused."""
    remote = tmp_path / "remote"
    names = ["GM12878/filenames.csv", "GM12878/wgEncodeAwgTfbsBroadGm12878CtcfUniPk.narrowPeak.gz"]
    for name in names:
        cell, file = name.split("/")
        (remote / cell / "peaks").mkdir(parents=True, exist_ok=True)
        data = (peaks_dir / name).read_bytes()
        if file.endswith(".gz"):  # genome-wide: rows of other chromosomes around the shared ones
            data = gzip.compress(narrow("chr1", 10, 500).encode() + b"\n" + gzip.decompress(data) + narrow("chrX", 5, 90).encode() + b"\n")
        (remote / cell / "peaks" / file).write_bytes(data)
    monkeypatch.setattr(peaks_dataset, "BASE_URL", remote.as_uri() + "/")
    registry = peaks_dataset.registry()
    monkeypatch.setattr(peaks_dataset, "registry", lambda: {n: registry[n] for n in names})
    cache = peaks_dataset.fetch_encode_peaks(tmp_path / "cache", progress=False)
    got = gzip.decompress((cache / names[1]).read_bytes())
    assert got == gzip.decompress((peaks_dir / names[1]).read_bytes())
    changed = remote / "GM12878" / "peaks" / "wgEncodeAwgTfbsBroadGm12878CtcfUniPk.narrowPeak.gz"
    changed.write_bytes(gzip.compress(narrow("chr21", 10, 500).encode() + b"\n"))
    with pytest.raises(et.exceptions.DownloadError, match="does not match its sha256"):
        peaks_dataset.fetch_encode_peaks(tmp_path / "cache2", progress=False)


def test_cli_ingests_peak_files_with_options(tmp_path):
    from click.testing import CliRunner

    from epitensor.cli import main

    manifest = small_manifest(tmp_path)
    manifest.loc[len(manifest)] = ["B2", "CTCF", str(tmp_path / "absent.narrowPeak")]
    manifest.to_csv(tmp_path / "m.tsv", sep="\t", index=False)
    sizes = tmp_path / "test.chrom.sizes"
    sizes.write_text("chr1\t60013\nchr2\t30007\n")
    args = ["ingest", str(tmp_path / "m.tsv"), str(tmp_path / "s.zarr"), "--assembly", str(sizes), "--peak-value", "signalValue", "--transform", "none"]
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code != 0 and "absent.narrowPeak (B2/CTCF) does not exist" in failed.output
    with pytest.warns(MissingFilesWarning):
        result = CliRunner().invoke(main, [*args, "--missing-files", "report"])
    assert result.exit_code == 0, result.output
    ds = et.open_dataset(tmp_path / "s.zarr")
    assert ds.attrs["peaks"]["value"] == "signalValue" and [e["path"] for e in ds.attrs["absent_files"]] == [str(tmp_path / "absent.narrowPeak")]
    assert int(ds.observed.sum()) == 4  # B2/CTCF has its own file as well as the absent one
