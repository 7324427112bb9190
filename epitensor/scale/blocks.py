"""Cutting genomic regions into 5-kbp-aligned blocks, and blocks into chunk-disjoint tasks.

A *block* is a half-open range ``[first, end)`` of genome-wide positions that starts on a multiple
of the block length counted from its contig's first bin, and ends there or at the contig's end. Every
contig starts on a multiple of the store's chunk length (itself a multiple of 200 bins = 5 kbp), so
blocks whose length is a multiple of 5 kbp share no 250 bp or 5 kbp genome-factor row: with the
network and the biosample/assay factors frozen they are independent problems.

A *task* is a run of consecutive blocks that together own whole store chunks: when the block length
is a multiple of the chunk length (e.g. 1 Mb = 40,000 bins = one chunk), every block is its own task;
shorter blocks (e.g. 100 kb) are grouped so that one task writes each chunk (zarr writes whole
chunks, so two tasks writing parts of one chunk would overwrite each other). Grouping never changes
results: every block is still fitted alone, with its own seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..exceptions import RegionError
from ..genome import Genome
from ..regions import Region, as_regions, parse_number, region_bins

#: Bins of the coarsest genome-factor resolution (5 kbp at 25 bp bins): blocks are multiples of it.
BLOCK_QUANTUM = 200


@dataclass(frozen=True, order=True)
class Block:
    """Genome-wide positions ``[first, end)`` fitted (or imputed) as one independent problem.

    Examples
    --------
    >>> Block(0, 40_000).n_positions
    40000
    """

    first: int
    end: int

    @property
    def n_positions(self) -> int:
        return self.end - self.first

    @property
    def name(self) -> str:
        """Stable identifier used for completion markers and task keys, e.g. ``"0-40000"``."""
        return f"{self.first}-{self.end}"

    def positions(self) -> np.ndarray:
        return np.arange(self.first, self.end, dtype=np.int64)

    def region(self, genome: Genome) -> Region:
        """The block as a readable region (contig and base pairs)."""
        names, starts = genome.locate([self.first])
        start = int(starts[0])
        end = min(start + self.n_positions * genome.bin_size, genome.length(str(names[0])))
        return Region(str(names[0]), start, end)

    def seed(self, seed: int) -> int:
        """Per-block seed: a hash of the run's seed and the block's first position.

        The same block gets the same seed whatever the number of workers, the order in which blocks
        run, or a restart, which makes stage 2 deterministic on CPU.

        Examples
        --------
        >>> Block(0, 200).seed(0) == Block(0, 400).seed(0), Block(0, 200).seed(0) == Block(200, 400).seed(0)
        (True, False)
        """
        digest = hashlib.blake2b(f"epitensor-block:{int(seed)}:{self.first}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % 2**62


def block_bins(block_size, genome: Genome) -> int:
    """The block length in bins for ``block_size`` (bp: ``"1Mb"``, ``"500kb"``, ``1_000_000``).

    Raises
    ------
    RegionError
        ``block_size`` is not a positive multiple of 5 kbp (200 bins of 25 bp).

    Examples
    --------
    >>> block_bins("1Mb", Genome.from_assembly("hg38", contigs=["chr21"]))
    40000
    """
    quantum_bp = BLOCK_QUANTUM * genome.bin_size
    try:
        size = int(block_size) if isinstance(block_size, int | np.integer) else parse_number(block_size, "block_size")
    except RegionError:
        raise RegionError(f"cannot read block_size {block_size!r}; write it in base pairs, e.g. '1Mb', '500kb' or 1000000") from None
    if size <= 0 or size % quantum_bp:
        raise RegionError(
            f"block_size {block_size!r} ({size:,} bp) is not a multiple of 5 kbp ({quantum_bp:,} bp = {BLOCK_QUANTUM} bins): "
            "blocks must not split a 5 kbp genome-factor row. Use e.g. '1Mb' (one store chunk), '500kb' or '5kb'"
        )
    if genome.chunk_bins % BLOCK_QUANTUM:
        raise RegionError(f"the store's chunk length ({genome.chunk_bins} bins) is not a multiple of {BLOCK_QUANTUM} bins, "
                          "so contigs may start inside a 5 kbp row; re-create the store with the default chunk_bins")
    return size // genome.bin_size


def plan_blocks(region, genome: Genome, block_size="1Mb") -> list[Block]:
    """The blocks covering ``region`` (default: every contig), sorted, without overlaps.

    Each region is widened to whole 5 kbp rows (clipped to its contig) and cut on the grid of
    ``block_size`` anchored at its contig's first bin, so the same block appears whatever region asked
    for it.

    Parameters
    ----------
    region : str, tuple, list of them, or None
        ``"chr21"``, ``"chr21:10Mb-20Mb"``, ``["chr1", "chr2"]``; None: the whole genome.
    genome : Genome
    block_size : str or int, default "1Mb"
        Block length in bp, a multiple of 5 kbp.

    Raises
    ------
    RegionError
        Malformed region, region outside the genome, or a bad block size.

    Examples
    --------
    >>> g = Genome.from_assembly("hg38", contigs=["chr21"])
    >>> blocks = plan_blocks("chr21:0-2.5Mb", g)
    >>> [b.name for b in blocks]
    ['0-40000', '40000-80000', '80000-100000']
    """
    step = block_bins(block_size, genome)
    regions = as_regions(region if region is not None else list(genome.contigs), genome)
    cells: dict[int, list[int]] = {}
    for reg in regions:
        first, end = genome.contig_bins(reg.contig)
        lo, hi = region_bins(reg, genome)
        lo = first + (lo - first) // BLOCK_QUANTUM * BLOCK_QUANTUM
        hi = min(first + -(-(hi - first) // BLOCK_QUANTUM) * BLOCK_QUANTUM, end)
        for cell in range(first + (lo - first) // step * step, hi, step):
            a, b = max(cell, lo), min(cell + step, hi, end)
            if cell in cells:  # two regions in one grid cell: one block over both
                a, b = min(a, cells[cell][0]), max(b, cells[cell][1])
            cells[cell] = [a, b]
    return [Block(a, b) for a, b in sorted(cells.values())]


def group_blocks(blocks: list[Block], genome: Genome) -> list[list[Block]]:
    """Group sorted ``blocks`` so that no two groups write the same store chunk.

    Examples
    --------
    >>> g = Genome.single_contig("c", 80_000)
    >>> [len(t) for t in group_blocks(plan_blocks(None, g, "100kb"), g)]
    [10, 10]
    """
    groups: list[list[Block]] = []
    last_chunk = -1
    for block in sorted(blocks):
        first_chunk = block.first // genome.chunk_bins
        if groups and first_chunk <= last_chunk:
            groups[-1].append(block)
        else:
            groups.append([block])
        last_chunk = max(last_chunk, (block.end - 1) // genome.chunk_bins)
    return groups


def describe_blocks(blocks: list[Block], genome: Genome, limit: int = 5) -> str:
    """Readable list of the first ``limit`` blocks as regions."""
    shown = ", ".join(str(b.region(genome)) for b in blocks[:limit])
    return shown + (f" and {len(blocks) - limit} more" if len(blocks) > limit else "")
