"""Which genome-wide positions the genome factor tables cover, and which row each position uses.

The store's ``position`` axis is genome-wide, with padding between contigs. The 25 bp table has one
row per fitted position; the 250 bp and 5 kbp tables one row per distinct ``position // 10`` and
``position // 200`` among them. Every contig starts on a multiple of 200 bins, so a 250 bp or 5 kbp
row never spans two contigs, and blocks of positions aligned to 5 kbp (200 bins) share no row: they
can be fitted independently (stage 2).
"""

from __future__ import annotations

import numpy as np

from ..exceptions import RegionError
from ..genome import Genome
from ..regions import as_regions, region_bins
from ..store import FACTOR_RESOLUTIONS, genome_mask

#: Bins per row of the 250 bp and 5 kbp genome tables (the store's layout of genome factors).
RESOLUTIONS = FACTOR_RESOLUTIONS


class GenomeRows:
    """Sorted genome-wide positions covered by genome factors, and their table rows.

    Parameters
    ----------
    positions : array of int
        Genome-wide positions (any order, duplicates dropped).

    Examples
    --------
    >>> rows = GenomeRows([5, 6, 7, 250, 251])
    >>> rows.n_rows
    (5, 2, 2)
    >>> rows.rows([6, 250])
    (array([1, 3]), array([0, 1]), array([0, 1]))
    """

    def __init__(self, positions):
        self.positions = np.unique(np.asarray(positions, dtype=np.int64))
        self.coarse = {res: np.unique(self.positions // step) for res, step in RESOLUTIONS.items() if step > 1}

    @classmethod
    def from_regions(cls, regions, genome: Genome) -> GenomeRows:
        """The bins of ``regions`` (a region string/tuple or a list of them) inside contigs."""
        parts = []
        for region in as_regions(regions, genome):
            lo, hi = region_bins(region, genome)
            pos = np.arange(lo, hi, dtype=np.int64)
            parts.append(pos[genome_mask(genome, lo, hi)])
        return cls(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))

    @classmethod
    def whole_genome(cls, genome: Genome) -> GenomeRows:
        return cls.from_regions(list(genome.contigs), genome)

    @property
    def n_rows(self) -> tuple[int, int, int]:
        """Rows of the 25 bp, 250 bp and 5 kbp tables."""
        return len(self.positions), len(self.coarse["250bp"]), len(self.coarse["5kbp"])

    def __len__(self) -> int:
        return len(self.positions)

    def __eq__(self, other) -> bool:
        return isinstance(other, GenomeRows) and np.array_equal(self.positions, other.positions)

    def covers(self, positions) -> np.ndarray:
        """Boolean mask: which ``positions`` have genome factors."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(self.positions):
            return np.zeros(positions.shape, dtype=bool)
        i = np.searchsorted(self.positions, positions).clip(0, len(self.positions) - 1)
        return self.positions[i] == positions

    def rows(self, positions, what: str = "these positions") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the 25 bp, 250 bp and 5 kbp tables for ``positions``.

        Raises
        ------
        RegionError
            Some positions have no fitted genome factors.
        """
        positions = np.asarray(positions, dtype=np.int64)
        ok = self.covers(positions)
        if not ok.all():
            bad = positions[~ok]
            raise RegionError(
                f"{what}: {bad.size:,} of {positions.size:,} positions (first {int(bad[0]):,}) have no fitted "
                f"genome factors; the model covers {self.describe()}. Impute inside the training region, "
                "or fit genome factors for this region first"
            )
        r25 = np.searchsorted(self.positions, positions)
        r250 = np.searchsorted(self.coarse["250bp"], positions // 10)
        r5k = np.searchsorted(self.coarse["5kbp"], positions // 200)
        return r25, r250, r5k

    def intervals(self) -> list[list[int]]:
        """Covered positions as half-open ``[first, end)`` runs (compact, JSON-friendly)."""
        p = self.positions
        if not len(p):
            return []
        breaks = np.flatnonzero(np.diff(p) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(p)]])
        return [[int(p[s]), int(p[e - 1]) + 1] for s, e in zip(starts, ends)]

    @classmethod
    def from_intervals(cls, intervals) -> GenomeRows:
        parts = [np.arange(a, b, dtype=np.int64) for a, b in intervals]
        return cls(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))

    def describe(self) -> str:
        runs = self.intervals()
        shown = ", ".join(f"{a:,}-{b:,}" for a, b in runs[:4]) + (f", ... ({len(runs)} runs)" if len(runs) > 4 else "")
        return f"positions [{shown}]" if runs else "no positions"
