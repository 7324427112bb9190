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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .exceptions import GenomeError, RegionError
from .genome import Genome

_NUMBER = r"[0-9][0-9,_]*(?:\.[0-9]+)?\s*(?:[kKmMgG][bB]?|[bB][pP])?"
_REGION = re.compile(rf"^\s*(?P<contig>[^:\s]+)\s*(?::\s*(?P<start>{_NUMBER})?\s*(?:-\s*(?P<end>{_NUMBER})?)?)?\s*$")
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
        raise RegionError(f"cannot read {text!r} as a base-pair position in region {spec!r}; use e.g. 1000, 1,000, 1kb or 2.5Mb")
    value = float(m.group(1).replace(",", "").replace("_", "")) * _SCALE[unit]
    if value != int(value):
        raise RegionError(f"{text!r} in region {spec!r} is not a whole number of base pairs")
    return int(value)


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
        raise RegionError(f"region {spec!r}: {err}") from None
    size = genome.length(contig)
    start = 0 if start is None else start
    end = size if end is None else end
    if start < 0 or end < 0:
        raise RegionError(f"region {spec!r} has a negative coordinate; coordinates are 0-based and non-negative")
    if end <= start:
        raise RegionError(f"region {spec!r} is empty or reversed (start {start:,} >= end {end:,})")
    if end > size:
        raise RegionError(
            f"region {spec!r} runs past the end of {contig} ({size:,} bp in {genome.assembly}); "
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
                f"cannot parse region {spec!r}; write it as 'chr5:10,100,000-30,000,000', 'chrX' or '6:1kb-2M'"
            )
        start = parse_number(m["start"], spec) if m["start"] else None
        end = parse_number(m["end"], spec) if m["end"] else None
        return m["contig"], start, end
    if isinstance(spec, tuple | list) and 1 <= len(spec) <= 3 and isinstance(spec[0], str):
        nums = []
        for x in spec[1:]:
            if x is None:
                nums.append(None)
            elif isinstance(x, int | float) and not isinstance(x, bool) and float(x) == int(x):
                nums.append(int(x))
            elif isinstance(x, str):
                nums.append(parse_number(x, spec))
            else:
                raise RegionError(f"region {spec!r}: start and end must be integers, got {x!r}")
        nums += [None] * (2 - len(nums))
        return spec[0], nums[0], nums[1]
    raise RegionError(
        f"cannot interpret {spec!r} as a region; pass a string like 'chr1:1,000-2,000' or a tuple ('chr1', 1000, 2000)"
    )


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
    """Parse one region or a list of regions (a list of strings/tuples) into a list."""
    if isinstance(spec, list) and spec and not (isinstance(spec[0], str) and len(spec) <= 3 and all(
        isinstance(x, int | float) for x in spec[1:]
    )):
        return [parse_region(s, genome) for s in spec]
    return [parse_region(spec, genome)]
