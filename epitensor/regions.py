"""Genomic regions: parse bioframe-style strings into 0-based half-open intervals and bins.

Accepted forms (commas and underscores in numbers are ignored; ``k``/``kb``, ``M``/``Mb`` and
``G``/``Gb`` suffixes multiply by 10^3, 10^6 and 10^9):

=============================  ===========================================
``"chr5:10,100,000-30,000,000"``  chr5, bases 10,100,000 up to 30,000,000
``"chrX"``                      the whole contig
``"6:1kb-2M"``                  chr6 (alias), 1,000 to 2,000,000
``"chr1:5,000-"``                from 5,000 to the end of chr1
``("chr1", 0, 1000)``           a tuple (contig, start, end)
``("chr1",)`` / ``("chr1", 500)``  the whole contig / from 500 to its end
=============================  ===========================================

A tuple is always one region; a list (or numpy array) is always a list of regions, so
``["chr20:1,000-2,000"]`` is that one region and ``["chr1", "chr2:0-10"]`` two. Coordinates in a
tuple are integers (Python or numpy) or whole, finite floats (``1000.0``, ``np.float64(1000)``);
``1.5``, NaN and infinity are rejected, as is any coordinate of ``10**18`` bp or more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .exceptions import GenomeError, RegionError
from .genome import Genome

_NUMBER = r"[0-9][0-9,_]*(?:\.[0-9]+)?\s*(?:[kKmMgG][bB]?|[bB][pP])?"
_REGION = re.compile(rf"^\s*(?P<contig>[^:\s]+)\s*(?::\s*(?P<start>{_NUMBER})?\s*(?:-\s*(?P<end>{_NUMBER})?)?)?\s*$")
#: Coordinates at or above this are rejected before any arithmetic (no genome comes close).
MAX_POSITION = 10**18
#: Where a comma-separated list of regions splits: at every comma, except one followed by exactly
#: three digits (a thousands separator, as in ``chr20:1,000,000-2,000,000``).
_LIST_COMMA = re.compile(r",(?![0-9]{3}(?![0-9]))")
_SCALE = {"": 1, "bp": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}


@dataclass(frozen=True)
class Region:
    """A 0-based half-open interval ``[start, end)`` on one contig, in base pairs.

    Examples
    --------
    >>> Region("chr1", 0, 1000).length
    1000
    >>> str(Region("chr1", 1000, 2000))
    'chr1:1,000-2,000'
    """

    contig: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.contig}:{self.start:,}-{self.end:,}"


def parse_number(text: str, spec=None) -> int:
    """Parse a humanised base-pair count such as ``"1,000"``, ``"1kb"`` or ``"2.5M"``.

    Examples
    --------
    >>> parse_number("2.5Mb")
    2500000
    """
    m = re.fullmatch(r"\s*([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _SCALE:
        raise RegionError(f"cannot read {_shown(text)} as a base-pair position in region {_shown(spec)}; use e.g. 1000, 1,000, 1kb or 2.5Mb")
    whole, _, fraction = m.group(1).replace(",", "").replace("_", "").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    if len(whole) > len(str(MAX_POSITION)):  # checked before any arithmetic on a huge number
        raise RegionError(_too_large(text, spec))
    if len(fraction) > 9:  # finer than the largest unit (10^9) can make whole
        raise RegionError(f"{_shown(text)} in region {_shown(spec)} is not a whole number of base pairs")
    return _coordinate(Fraction(f"{whole}.{fraction}") * _SCALE[unit], text, spec)


def _too_large(value, spec) -> str:
    return f"{_shown(value)} in region {_shown(spec)} is too large for a base-pair position (at most {MAX_POSITION - 1:,})"


def _coordinate(value, given, spec) -> int:
    """``value`` (an exact number) as a base-pair count, or a RegionError naming ``given``."""
    if value != int(value):
        raise RegionError(f"{_shown(given)} in region {_shown(spec)} is not a whole number of base pairs")
    if abs(value) >= MAX_POSITION:
        raise RegionError(_too_large(given, spec))
    return int(value)


def _tuple_coordinate(x, spec) -> int | None:
    """One start/end of a tuple region: None, an integer, a whole finite float or a number string."""
    if x is None:
        return None
    if isinstance(x, str):
        return parse_number(x, spec)
    if isinstance(x, int | np.integer) and not isinstance(x, bool):
        return _coordinate(int(x), x, spec)
    if isinstance(x, float | np.floating):
        if not np.isfinite(x):
            raise RegionError(f"region {_shown(spec)}: start and end must be finite integers, got {_shown(x)}")
        if x != int(x):
            raise RegionError(f"region {_shown(spec)}: start and end must be integers (whole numbers of base pairs), got {_shown(x)}")
        return _coordinate(int(x), x, spec)
    raise RegionError(f"region {_shown(spec)}: start and end must be integers, got {_shown(x)}")


def parse_region(spec, genome: Genome) -> Region:
    """Parse ``spec`` into a :class:`Region` checked against ``genome``.

    Parameters
    ----------
    spec : str, tuple or Region
        See the module docstring for accepted forms.
    genome : Genome
        Resolves contig aliases and supplies contig lengths.

    Returns
    -------
    Region

    Raises
    ------
    RegionError
        Malformed string, unknown contig, negative or empty interval, or an interval running past
        the contig's end.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38")
    >>> parse_region("chr5:10,100,000-30,000,000", g)
    Region(contig='chr5', start=10100000, end=30000000)
    >>> parse_region("6:1kb-2M", g)
    Region(contig='chr6', start=1000, end=2000000)
    """
    contig, start, end = _split(spec)
    try:
        contig = genome.resolve(contig)
    except GenomeError as err:
        raise RegionError(f"region {_shown(spec)}: {err}") from None
    size = genome.length(contig)
    start = 0 if start is None else start
    end = size if end is None else end
    if start < 0 or end < 0:
        raise RegionError(f"region {_shown(spec)} has a negative coordinate; coordinates are 0-based and non-negative")
    if end <= start:
        raise RegionError(f"region {_shown(spec)} is empty or reversed (start {start:,} >= end {end:,})")
    if end > size:
        raise RegionError(
            f"region {_shown(spec)} runs past the end of {contig} ({size:,} bp in {genome.assembly}); "
            f"end it at {size:,} or earlier"
        )
    return Region(contig, start, end)


def _split(spec):
    if isinstance(spec, Region):
        return spec.contig, spec.start, spec.end
    if isinstance(spec, str):
        m = _REGION.match(spec)
        if m is None:
            raise RegionError(
                f"cannot parse region {_shown(spec)}; write it as 'chr5:10,100,000-30,000,000', 'chrX' or '6:1kb-2M'"
            )
        start = parse_number(m["start"], spec) if m["start"] else None
        end = parse_number(m["end"], spec) if m["end"] else None
        return m["contig"], start, end
    if isinstance(spec, list | np.ndarray):
        raise RegionError(
            f"{_shown(spec)} is a list, which is read as several regions; pass one region as a string "
            f"'chr1:1,000-2,000' or a tuple ('chr1', 1000, 2000)"
        )
    if isinstance(spec, tuple) and 1 <= len(spec) <= 3 and isinstance(spec[0], str):
        nums = [_tuple_coordinate(x, spec) for x in spec[1:]]
        nums += [None] * (2 - len(nums))
        return spec[0], nums[0], nums[1]
    raise RegionError(
        f"cannot interpret {_shown(spec)} as a region; pass a string like 'chr1:1,000-2,000' or a tuple "
        f"('chr1', 1000, 2000) (a tuple is one region; pass several regions as a list)"
    )


def _shown(spec) -> str:
    """``repr(spec)``, cut short for very long input."""
    try:
        text = repr(spec)
    except ValueError:  # an int of more digits than Python will convert to text
        return f"<a {type(spec).__name__} too large to show>"
    return text if len(text) <= 200 else text[:200] + "..."


def region_bins(region: Region, genome: Genome) -> tuple[int, int]:
    """Genome-wide positions ``[first, end)`` of the bins that overlap ``region``.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38", contigs=["chr1"])
    >>> region_bins(Region("chr1", 30, 120), g)
    (1, 5)
    """
    first, _ = genome.contig_bins(region.contig)
    return first + region.start // genome.bin_size, first + (region.end - 1) // genome.bin_size + 1


def as_regions(spec, genome: Genome) -> list[Region]:
    """Parse one region, or a list of regions, into a list of :class:`Region`.

    A list or numpy array is always a list of regions (each a string, tuple or Region); anything
    else (a string, a tuple, a Region) is one region.

    Raises
    ------
    RegionError
        An empty list, or any region :func:`parse_region` rejects.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38")
    >>> as_regions(["chr20:1,000-2,000"], g)
    [Region(contig='chr20', start=1000, end=2000)]
    >>> as_regions(("chr1", 0, 1000), g)
    [Region(contig='chr1', start=0, end=1000)]
    """
    if isinstance(spec, list | np.ndarray):
        items = list(np.ravel(spec)) if isinstance(spec, np.ndarray) else spec
        if not items:
            raise RegionError("the list of regions is empty; name at least one region, e.g. ['chr1:0-1,000,000']")
        numbers = [x for x in items if isinstance(x, int | float | np.number) and not isinstance(x, bool)]
        if numbers:
            raise RegionError(
                f"{_shown(spec)} is a list, which is read as several regions, and {_shown(numbers[0])} is not a "
                f"region; write one region as a tuple ('chr1', 0, 1000) or a string 'chr1:0-1,000'"
            )
        return [parse_region(s, genome) for s in items]
    return [parse_region(spec, genome)]


def split_regions(text: str) -> list[str]:
    """Split a comma-separated list of region strings, keeping thousands separators in numbers.

    A comma followed by exactly three digits belongs to a number; every other comma separates two
    regions.

    Examples
    --------
    >>> split_regions("chr20:1,000,000-2,000,000,chr21")
    ['chr20:1,000,000-2,000,000', 'chr21']
    >>> split_regions("chr1, 2, chrX:0-400,000")
    ['chr1', '2', 'chrX:0-400,000']
    """
    return [piece.strip() for piece in _LIST_COMMA.split(text) if piece.strip()]
