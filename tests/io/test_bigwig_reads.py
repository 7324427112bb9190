"""Binned bigWig reads (pybigtools' exact means) equal the project's definition computed with
pyBigWig's base-level values, bit for bit, on the real files and on written ones."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

import epitensor as et
from epitensor.io import read_bins
from epitensor.io.bigwig import apply_transform, bin_means, interval_bin_means
from epitensor.io.bigwig_blocks import BigWigBlocks


def definition(path, chrom, start, end, transform="arcsinh", bin_size=25):
    """The independent computation: pyBigWig's base-level values, NaN to 0, the mean of each
    ``bin_size`` bin (the last may be partial), then the transform."""
    bw = pyBigWig.open(str(path))
    try:
        return apply_transform(bin_means(np.nan_to_num(bw.values(chrom, start, end, numpy=True)), bin_size), transform)
    finally:
        bw.close()


def read(path, chrom, length, start, end, transform="arcsinh"):
    """``read_bins`` of the bins covering ``[start, end)`` (bin-aligned start)."""
    return read_bins(path, chrom, length, start // 25, -(-end // 25), transform=transform)


def write(path, header, entries):
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(header, maxZooms=0)
    for args, kwargs in entries:
        bw.addEntries(*args, **kwargs)
    bw.close()
    return path


@pytest.mark.shared_data
def test_real_files_bit_exact_to_the_definition(bigwig_dir):
    files = sorted(bigwig_dir.glob("*.b*"))
    assert len(files) == 8
    for path in files:
        bw = pyBigWig.open(str(path))
        chroms = bw.chroms()
        for chrom, length in chroms.items():
            ivs = bw.intervals(chrom)
            if not ivs:
                continue
            lo = ivs[0][0] - ivs[0][0] % 25
            hi = min(length, ivs[-1][1] + 500, lo + 2_000_000)  # pyBigWig expands every base: keep it small
            # a window over the data, one inside it, one across its end, the contig's last (partial) bin
            windows = [(lo, hi), (lo + 1_000, min(hi, lo + 41_000)), (max(0, hi - 3_000) // 25 * 25, hi),
                       (max(0, length - 10_000) // 25 * 25, length)]
            for start, end in windows:
                for transform in ("arcsinh", "none"):
                    got = read(path, chrom, length, start, end, transform)
                    assert got.dtype == np.float32
                    np.testing.assert_array_equal(got, definition(path, chrom, start, end, transform),
                                                  err_msg=f"{path.name} {chrom}:{start}-{end} {transform}")
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
    for chrom, start, end in [("chr1", 0, 100_000), ("chr1", 49_975, 96_011), ("chr2", 0, 5_003), ("chr2", 4_000, 5_003)]:
        length = dict(header)[chrom]
        np.testing.assert_array_equal(read(path, chrom, length, start, end, "none"), definition(path, chrom, start, end, "none"))


def test_unaligned_region_and_partial_last_bin(tmp_path):
    path = write(tmp_path / "t.bw", [("chr1", 1_010)], [((["chr1", "chr1"], [0, 990]), {"ends": [30, 1_010], "values": [2.0, 4.0]})])
    means = interval_bin_means(path, "chr1", 13, 1_010)  # bins 13-38, ..., 988-1010 (22 bp)
    assert means.shape == (40,)
    assert means[0] == 2.0 * 17 / 25 and means[1] == 0.0
    assert means[-1] == pytest.approx(4.0 * 20 / 22)  # bases 988-1010: 990-1010 covered


def test_read_bins_pybigtools_and_pybigwig_paths_agree(tmp_path):
    manifest = et.datasets.synthetic_bigwigs(tmp_path, {"chr1": 123_457}, ["B"], ["A"], seed=4)
    path, length = manifest.path[0], 123_457
    n = -(-length // 25)
    intervals = read_bins(path, "chr1", length, 0, n)
    bw = pyBigWig.open(str(path))
    through_pybigwig = read_bins(path, "chr1", length, 0, n, bw=bw)
    bw.close()
    np.testing.assert_array_equal(intervals, through_pybigwig)
    assert intervals.shape == (n,) and intervals.dtype == np.float32


def test_non_finite_values_are_errors(tmp_path):
    path = write(tmp_path / "bad.bw", [("chr1", 10_000)],
                 [((["chr1", "chr1", "chr1"], [0, 5_000, 7_000]), {"ends": [100, 5_100, 7_010], "values": [1.0, float("inf"), float("nan")]})])
    with pytest.raises(et.DataError, match="infinite values in chr1:0-6,000"):
        read_bins(path, "chr1", 10_000, 0, 240)
    with pytest.raises(et.DataError, match="NaN values in chr1:6,000"):
        read_bins(path, "chr1", 10_000, 240, 400)
    assert read_bins(path, "chr1", 10_000, 0, 40, transform="none")[:5].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]  # before the bad items


def test_a_file_that_is_not_a_bigwig(tmp_path):
    (tmp_path / "x.bw").write_bytes(b"not a bigwig at all" * 10)
    with pytest.raises(ValueError, match="not a bigWig"):
        BigWigBlocks(tmp_path / "x.bw")
    with pytest.raises(et.DataError, match="x.bw: cannot read chr1"):
        interval_bin_means(tmp_path / "x.bw", "chr1", 0, 100)
