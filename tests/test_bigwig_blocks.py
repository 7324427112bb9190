"""The block reader of bigWig files equals pyBigWig's base-level values, on real and written files."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

import epitensor as et
from epitensor.io import read_bins
from epitensor.io.bigwig import bin_means
from epitensor.io.bigwig_blocks import BigWigBlocks


def pybigwig_bin_means(path, chrom, start, end, bin_size=25):
    """The independent computation: base-level values, NaN to 0, means of ``bin_size`` bins."""
    bw = pyBigWig.open(str(path))
    try:
        return bin_means(np.nan_to_num(bw.values(chrom, start, end, numpy=True)), bin_size)
    finally:
        bw.close()


def block_bin_means(path, chrom, start, end, bin_size=25):
    with BigWigBlocks(path) as reader:
        sums = reader.bin_sums(chrom, start, end, bin_size)
    widths = np.minimum(bin_size, end - (start + bin_size * np.arange(len(sums))))
    return sums / widths


def write(path, header, entries):
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(header, maxZooms=0)
    for args, kwargs in entries:
        bw.addEntries(*args, **kwargs)
    bw.close()
    return path


@pytest.mark.shared_data
def test_real_files_equal_pybigwig(bigwig_dir):
    files = sorted(bigwig_dir.glob("*.b*"))
    assert len(files) == 8
    for path in files:
        with BigWigBlocks(path) as reader:
            bw = pyBigWig.open(str(path))
            assert {c: size for c, (_, size) in reader.chroms.items()} == bw.chroms()
            for chrom, length in bw.chroms().items():
                ivs = bw.intervals(chrom)
                if not ivs:
                    continue
                lo = ivs[0][0]
                hi = min(length, ivs[-1][1] + 500, lo + 2_000_000)  # pyBigWig expands every base: keep it small
                # unaligned starts, a window inside the data, a window across its end
                for start, end in [(lo - lo % 25, hi), (lo + 13, min(hi, lo + 40_013)), (max(0, hi - 3_000), hi)]:
                    np.testing.assert_allclose(block_bin_means(path, chrom, start, end), pybigwig_bin_means(path, chrom, start, end),
                                               rtol=1e-6, atol=1e-9, err_msg=f"{path.name} {chrom}:{start}-{end}")
            bw.close()


def test_all_three_section_types(tmp_path):
    header = [("chr1", 100_000), ("chr2", 5_003)]
    rng = np.random.default_rng(3)
    starts = np.sort(rng.choice(np.arange(0, 40_000, 50), 500, replace=False))
    path = write(tmp_path / "mixed.bw", header, [
        # bedGraph items with gaps
        ((["chr1"] * 500, starts.tolist()), {"ends": (starts + rng.integers(1, 50, 500)).tolist(), "values": rng.gamma(1, 2, 500).tolist()}),
        # variableStep items (start + fixed span)
        (("chr1", (50_000 + np.arange(300) * 37).tolist()), {"values": rng.gamma(1, 2, 300).tolist(), "span": 20}),
        # fixedStep items (start, step, span)
        (("chr1", 70_000), {"values": rng.gamma(1, 2, 2_000).tolist(), "span": 10, "step": 13}),
        (("chr2", 0), {"values": rng.gamma(1, 2, 200).tolist(), "span": 25, "step": 25}),
    ])
    for chrom, start, end in [("chr1", 0, 100_000), ("chr1", 49_990, 96_011), ("chr2", 0, 5_003), ("chr2", 4_000, 5_003)]:
        np.testing.assert_allclose(block_bin_means(path, chrom, start, end), pybigwig_bin_means(path, chrom, start, end), rtol=1e-6, atol=1e-9)


def test_read_bins_block_and_pybigwig_paths_agree(tmp_path):
    manifest = et.datasets.synthetic_bigwigs(tmp_path, {"chr1": 123_457}, ["B"], ["A"], seed=4)
    path, length = manifest.path[0], 123_457
    n = -(-length // 25)
    blocks = read_bins(path, "chr1", length, 0, n)
    bw = pyBigWig.open(str(path))
    through_pybigwig = read_bins(path, "chr1", length, 0, n, bw=bw)
    bw.close()
    np.testing.assert_allclose(blocks, through_pybigwig, rtol=1e-6)
    assert blocks.shape == (n,) and blocks.dtype == np.float32


def test_non_finite_values_are_errors(tmp_path):
    path = write(tmp_path / "nan.bw", [("chr1", 10_000)], [((["chr1", "chr1"], [0, 5_000]), {"ends": [100, 5_100], "values": [1.0, float("inf")]})])
    with BigWigBlocks(path) as reader:
        with pytest.raises(et.DataError, match="infinite values in chr1"):
            reader.bin_sums("chr1", 0, 10_000, 25)
        assert reader.bin_sums("chr1", 0, 1_000, 25)[:4].tolist() == [25.0, 25.0, 25.0, 25.0]  # before the bad item


def test_a_file_that_is_not_a_bigwig(tmp_path):
    (tmp_path / "x.bw").write_bytes(b"not a bigwig at all" * 10)
    with pytest.raises(ValueError, match="not a bigWig"):
        BigWigBlocks(tmp_path / "x.bw")

