"""Region strings and tuples parse like bioframe: 0-based half-open, humanised numbers, aliases."""

import pytest

import epitensor as et
from epitensor.regions import Region, as_regions, parse_number, parse_region, region_bins

HG38 = et.Genome.from_assembly("hg38")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("chr5:10,100,000-30,000,000", ("chr5", 10_100_000, 30_000_000)),
        ("chrX", ("chrX", 0, 156_040_895)),
        ("6:1kb-2M", ("chr6", 1_000, 2_000_000)),
        ("chr1:1.5Mb-2.5Mb", ("chr1", 1_500_000, 2_500_000)),
        ("chr21:1000-", ("chr21", 1000, 46_709_983)),
        ("chr21:1000", ("chr21", 1000, 46_709_983)),
        ("MT", ("chrM", 0, 16_569)),
        ("chrM:0-100bp", ("chrM", 0, 100)),
        (" chr2 : 5_000 - 6_000 ", ("chr2", 5000, 6000)),
        (("chr1", 0, 1000), ("chr1", 0, 1000)),
        (("1", 10), ("chr1", 10, 248_956_422)),
        (("chr1", "1kb", "2kb"), ("chr1", 1000, 2000)),
        (["chr3", 5, 6], ("chr3", 5, 6)),
        (Region("chr3", 5, 6), ("chr3", 5, 6)),
    ],
)
def test_parse_region_table(spec, expected):
    assert parse_region(spec, HG38) == Region(*expected)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("chr99:1-2", "not in genome"),
        ("chr1:2000-1000", "empty or reversed"),
        ("chr1:5-5", "empty or reversed"),
        ("chr21:46,000,000-47,000,000", "runs past the end of chr21"),
        ("chr1:1x-2", "cannot"),
        ("chr1:1.5-2", "whole number"),
        ("chr1:-5-10", "cannot parse"),
        ("", "cannot parse"),
        (("chr1", -5, 10), "negative"),
        (("chr1", 1.5, 10), "integers"),
        (42, "cannot interpret"),
    ],
)
def test_parse_region_errors_name_the_input(spec, message):
    with pytest.raises(et.RegionError, match=message) as info:
        parse_region(spec, HG38)
    assert isinstance(info.value, ValueError)
    if isinstance(spec, str) and spec:
        assert repr(spec) in str(info.value) or spec.split(":")[0] in str(info.value)


def test_parse_number_units():
    assert [parse_number(x) for x in ["1", "1,000", "1k", "1kb", "2M", "2.5Mb", "1G", "10bp"]] == [
        1, 1000, 1000, 1000, 2_000_000, 2_500_000, 1_000_000_000, 10,
    ]


def test_region_bins_cover_overlapping_bins_and_contig_offsets():
    g = et.Genome.from_assembly("hg38", contigs=["chr21", "chr22"])
    first22, _ = g.contig_bins("chr22")
    assert first22 % g.chunk_bins == 0 and first22 >= g.n_bins("chr21")
    assert region_bins(Region("chr21", 0, 25), g) == (0, 1)
    assert region_bins(Region("chr21", 24, 26), g) == (0, 2)
    assert region_bins(Region("chr22", 50, 100), g) == (first22 + 2, first22 + 4)
    last = g.length("chr22")
    assert region_bins(Region("chr22", last - 1, last), g) == (first22 + g.n_bins("chr22") - 1, first22 + g.n_bins("chr22"))


def test_as_regions_accepts_lists():
    assert len(as_regions(["chr1", "chr2:0-10"], HG38)) == 2
    assert as_regions(["chr1", 0, 10], HG38) == [Region("chr1", 0, 10)]
