"""Region strings and tuples parse like bioframe: 0-based half-open, humanised numbers, aliases."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import epitensor as et
from epitensor.regions import (
    Region,
    as_regions,
    parse_number,
    parse_region,
    region_bins,
    split_regions,
)

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
        (("chr3", np.int64(5), np.uint32(6)), ("chr3", 5, 6)),
        (("chr3", 5.0, np.float64(6)), ("chr3", 5, 6)),
        ("chr1:" + "0" * 400 + "1-2", ("chr1", 1, 2)),
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
        (("chr1", np.float64(1.5), 10), "integers"),
        (("chr1", float("nan"), 10), "finite"),
        (("chr1", np.float64("nan"), 10), "finite"),
        (("chr1", 0, float("inf")), "finite"),
        (("chr1", True, 10), "integers"),
        (("chr1", 0, 10**400), "too large"),
        (("chr1", np.int64(-1), 10), "negative"),
        ("chr1:" + "9" * 400 + "-" + "9" * 401, "too large"),
        ("chr1:1-1" + "0" * 18, "too large"),
        ("chr1:1." + "0" * 500 + "1kb-2kb", "whole number"),
        (["chr3", 5, 6], "read as several regions"),
        (("chr1:0-10", "chr2:0-10"), "cannot read"),
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


def test_as_regions_reads_a_list_as_regions_and_a_tuple_as_one():
    assert len(as_regions(["chr1", "chr2:0-10"], HG38)) == 2
    assert as_regions(["chr20:1,000-2,000"], HG38) == [Region("chr20", 1000, 2000)]
    assert as_regions(np.array(["chr20:1,000-2,000", "chrM"]), HG38) == [Region("chr20", 1000, 2000), Region("chrM", 0, 16_569)]
    assert as_regions(("chr1", 0, 10), HG38) == [Region("chr1", 0, 10)]
    assert as_regions([("chr1", 0, 10), Region("chr2", 5, 6)], HG38) == [Region("chr1", 0, 10), Region("chr2", 5, 6)]
    with pytest.raises(et.RegionError, match="read as several regions"):
        as_regions(["chr1", 0, 10], HG38)
    with pytest.raises(et.RegionError, match="empty"):
        as_regions([], HG38)


def test_a_one_region_list_selects_that_region(small_ds):
    """``da.epi.region([...])`` with one string is that region, thousands separators and all."""
    da = small_ds.signal.isel(biosample=0, assay=0)
    assert da.epi.region(["synthetic:1,000-2,000"]).equals(da.epi.region("synthetic:1,000-2,000"))
    assert da.epi.region(["synthetic:1,000-2,000"]).sizes["position"] == 40


def test_split_regions_keeps_thousands_separators():
    assert split_regions("chr20:1,000,000-2,000,000") == ["chr20:1,000,000-2,000,000"]
    assert split_regions("pilot:0-400,000,chr2, chrX:1,000-") == ["pilot:0-400,000", "chr2", "chrX:1,000-"]
    assert split_regions("1,2,22") == ["1", "2", "22"]


# --- property tests: every string or tuple either parses to the right Region or raises RegionError ---

PROPERTY = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHR1 = HG38.length("chr1")
_UNITS = {"k": 10**3, "kb": 10**3, "K": 10**3, "KB": 10**3, "M": 10**6, "Mb": 10**6, "mb": 10**6}


@st.composite
def written_numbers(draw, value):
    """``value`` as a user might type it: plain, 1,000 / 1_000 separators, or a k/M suffix."""
    forms = [str(value), f"{value:,}", f"{value:_}"]
    for unit, scale in _UNITS.items():
        if value % scale == 0:
            forms.append(f"{value // scale}{draw(st.sampled_from(['', ' ']))}{unit}")
        elif (value * 10) % scale == 0:
            forms.append(f"{value / scale:.1f}{unit}")
    return draw(st.sampled_from(forms))


@st.composite
def region_strings(draw):
    """A valid region string on chr1 and the Region it means."""
    start = draw(st.integers(0, CHR1 - 1))
    end = draw(st.integers(start + 1, CHR1))
    space = st.sampled_from(["", " ", "  "])
    contig = draw(st.sampled_from(["chr1", "1", "CHR1"]))
    text = f"{draw(space)}{contig}{draw(space)}:{draw(space)}{draw(written_numbers(start))}{draw(space)}-" \
           f"{draw(space)}{draw(written_numbers(end))}{draw(space)}"
    return text, Region("chr1", start, end)


@PROPERTY
@given(region_strings())
def test_written_regions_parse_to_their_interval(case):
    text, expected = case
    assert parse_region(text, HG38) == expected
    assert as_regions([text], HG38) == [expected]


def _parses_or_region_error(spec):
    try:
        region = parse_region(spec, HG38)
    except et.RegionError as err:
        assert str(err)
        return None
    assert isinstance(region.start, int) and isinstance(region.end, int)
    assert 0 <= region.start < region.end <= HG38.length(region.contig)
    return region


_PIECES = st.sampled_from(["chr1", "chrX", "7", ":", "-", ",", "_", ".", "5", "0", "9" * 30, "kb", "M", "G", "bp",
                           "e5", "nan", "inf", "-1", " ", "\t", "\u00a0", "\u0661", "\x00", "\U0001f600", "%s"])


@PROPERTY
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=12).map("".join)))
def test_garbage_strings_give_a_region_error_or_a_valid_region(text):
    _parses_or_region_error(text)


@PROPERTY
@given(st.integers(min_value=10**18, max_value=10**500), st.sampled_from(["", "kb", "M"]), st.booleans())
def test_huge_numbers_are_rejected_as_too_large(number, unit, commas):
    text = f"{number:,}" if commas else str(number)
    with pytest.raises(et.RegionError, match="too large"):
        parse_region(f"chr1:0-{text}{unit}", HG38)
    with pytest.raises(et.RegionError, match="too large"):
        parse_region(("chr1", 0, number), HG38)


_COORDINATES = st.one_of(
    st.none(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1).map(np.int64), st.floats(width=32).map(np.float32),
    st.floats().map(np.float64), st.booleans(), st.text(max_size=8),
)


@PROPERTY
@given(st.tuples(st.sampled_from(["chr1", "chrM", "nope"]), _COORDINATES, _COORDINATES))
def test_tuple_coordinates_of_any_type_give_a_region_error_or_a_valid_region(spec):
    region = _parses_or_region_error(spec)
    if region is not None and not isinstance(spec[1], str | type(None)):
        assert region.start == int(spec[1])
