"""Direct chunk-file I/O writes the files zarr writes and reads what zarr reads."""

from __future__ import annotations

import hashlib

import numpy as np
import pyBigWig
import pytest
import zarr

import epitensor as et
from epitensor.io import read_bins
from epitensor.store import ChunkFiles

GENOME = et.Genome("test", ["chr1", "chr2"], [250_013, 90_000], chunk_bins=1_000)  # 14,600 positions: an edge chunk of 600


def digest(path):
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture
def stores(tmp_path):
    return [et.create_store(tmp_path / f"{name}.zarr", ["B1", "B2"], ["A1", "A2", "A3"], GENOME) for name in ("zarr", "files")]


def test_writes_are_byte_identical_to_zarr(stores):
    rng = np.random.default_rng(0)
    through_zarr = zarr.open_array(str(stores[0]), path="signal", mode="r+")
    files = ChunkFiles.open(stores[1], "signal")
    assert files is not None and files.chunk == 1_000
    n_chunks = -(-GENOME.n_positions // files.chunk)
    writes = []
    for k in range(n_chunks):  # every chunk of one track, the edge chunk included
        end = min((k + 1) * files.chunk, GENOME.n_positions)
        writes.append((0, 1, k, np.arcsinh(rng.gamma(0.6, 2, end - k * files.chunk)).astype(np.float32)))
    half = np.full(files.chunk, np.nan, dtype=np.float32)
    half[:300] = 3.5
    writes += [(1, 2, 3, half), (1, 0, 5, writes[5][3]), (1, 0, 5, np.full(files.chunk, np.nan, dtype=np.float32))]  # the last deletes
    for b, a, k, values in writes:
        lo = k * files.chunk
        through_zarr[b, a, lo : lo + values.shape[0]] = values
        files.write(b, a, k, values)
    assert digest(stores[0]) == digest(stores[1])
    assert not (stores[1] / "signal" / "c" / "1" / "0" / "5").exists()  # an all-NaN chunk is no file
    with pytest.raises(ValueError, match="holds 1000 values"):
        files.write(0, 0, 0, np.ones(10, dtype=np.float32))


def test_reads_equal_zarr_reads(stores):
    rng = np.random.default_rng(1)
    arr = zarr.open_array(str(stores[0]), path="signal", mode="r+")
    arr[0, 2, 1_500:9_000] = rng.random(7_500).astype(np.float32)
    arr[1, 1, :] = rng.random(GENOME.n_positions).astype(np.float32)
    files = ChunkFiles.open(stores[0], "signal")
    for b, a in [(0, 2), (1, 1), (0, 0)]:
        for lo, hi in [(0, 1), (999, 1_001), (300, 12_345), (0, GENOME.n_positions), (GENOME.n_positions - 5, GENOME.n_positions)]:
            np.testing.assert_array_equal(files.read(b, a, lo, hi), arr[b, a, lo:hi])


def test_other_layouts_go_through_zarr(tmp_path):
    plain = zarr.create_array(str(tmp_path / "z.zarr"), shape=(2, 2, 100), chunks=(1, 1, 10), dtype="f4", fill_value=np.nan)
    assert ChunkFiles.open(tmp_path / "z.zarr", "") is None  # default zstd codec
    as_float64 = zarr.create_array(str(tmp_path / "d.zarr"), shape=(2, 2, 100), chunks=(1, 1, 10), dtype="f8", fill_value=np.nan,
                                   compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"))
    assert ChunkFiles.open(tmp_path / "d.zarr", "") is None
    assert ChunkFiles.open(tmp_path / "missing.zarr", "signal") is None
    assert plain.shape == as_float64.shape


def real_file_pieces(bigwig_dir) -> dict[str, np.ndarray]:
    """Binned values of every real bigWig file: per contig holding data, the 1 Mb piece (one
    ingestion chunk) that holds its first interval."""
    files = sorted(bigwig_dir.glob("*.b*"))
    assert len(files) == 8
    pieces = {}
    for path in files:
        bw = pyBigWig.open(str(path))
        for chrom, length in bw.chroms().items():
            first = bw.intervals(chrom, 0, length)
            if first:
                lo = first[0][0] // 25 // 40_000 * 40_000
                pieces[f"{path.stem}.{chrom}"] = read_bins(path, chrom, length, lo, min(lo + 40_000, -(-length // 25)))
        bw.close()
    return pieces


@pytest.mark.shared_data
def test_real_file_bins_equal_the_libraries_bit_for_bit(bigwig_dir, tmp_path):
    """The hand-written chunk path (kept: faster than the best library, benchmarks/bench_libraries.py)
    against tensorstore (the fastest library reading) and zarrs (the fastest writing), on the bins
    of every real file: the same values read, the same chunk files written."""
    ts = pytest.importorskip("tensorstore")
    pieces = real_file_pieces(bigwig_dir)
    genome = et.Genome("pieces", list(pieces), [v.shape[0] * 25 for v in pieces.values()], chunk_bins=15_000)
    values = np.full(genome.n_positions, np.nan, dtype=np.float32)  # NaN: the padding between contigs
    for contig, bins in pieces.items():
        lo, hi = genome.contig_bins(contig)
        values[lo:hi] = bins
    ours = et.create_store(tmp_path / "ours.zarr", ["B"], ["A"], genome)
    files = ChunkFiles.open(ours, "signal")
    for k in range(-(-genome.n_positions // files.chunk)):
        files.write(0, 0, k, values[k * files.chunk : (k + 1) * files.chunk])
    read = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(ours / "signal")}}).result()[0, 0].read().result()
    for got in (read, files.read(0, 0, 0, genome.n_positions)):
        np.testing.assert_array_equal(got.view(np.uint32), values.view(np.uint32))  # bit for bit, NaNs included
    assert digest(ours / "signal") != {}
    pytest.importorskip("zarrs")
    theirs = et.create_store(tmp_path / "zarrs.zarr", ["B"], ["A"], genome)
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
        zarr.open_array(str(theirs), path="signal", mode="r+")[0, 0, :] = values
    assert digest(theirs / "signal") == digest(ours / "signal")
