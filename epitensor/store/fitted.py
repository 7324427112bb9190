"""Which positions of a store have stage-2 genome factors: the ``genome_fit`` completion markers.

Stage 2 (:mod:`epitensor.scale`) writes one marker per finished block, ``genome_fit/<kind>/<first>-<end>``
(``kind`` ``factors`` or ``imputed``), a write record (:mod:`epitensor.store.records`) whose attributes
hold the run key and the model's fingerprint. This module reads them back as position ranges, so the
model can tell which of its predictions take genome factors from the store without importing stage 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .location import StoreLocation
from .records import read_records

#: The store group holding the markers, and the kinds of markers in it.
GENOME_FIT_GROUP = "genome_fit"
MARKER_KINDS = ("factors", "imputed")


def has_fitted_factors(path) -> bool:
    """Whether the store at ``path`` (a folder or a :class:`StoreLocation`) has stage-2 factor markers."""
    if isinstance(path, StoreLocation):
        return path.exists(f"{GENOME_FIT_GROUP}/factors/zarr.json")
    return (Path(path) / GENOME_FIT_GROUP / "factors").is_dir()


def marker_ranges(path, kind: str) -> dict[tuple[int, int], dict]:
    """Every readable marker of ``kind``: ``(first, end) -> attributes`` (unreadable ones left out)."""
    out = {}
    for name, attrs in read_records(path, f"{GENOME_FIT_GROUP}/{kind}", as_groups=True).items():
        try:
            first, end = (int(x) for x in name.split("-"))
        except ValueError:
            continue  # not a block's marker
        out[(first, end)] = attrs
    return out


class Intervals:
    """Sorted, disjoint ``[first, end)`` ranges with a fast membership test (no per-position array).

    Examples
    --------
    >>> iv = Intervals([(0, 10), (20, 30)])
    >>> iv.covers([5, 15, 29]).tolist()
    [True, False, True]
    """

    def __init__(self, ranges):
        ranges = sorted((int(a), int(b)) for a, b in ranges)
        self.starts = np.array([a for a, _ in ranges], dtype=np.int64)
        self.ends = np.array([b for _, b in ranges], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def covers(self, positions) -> np.ndarray:
        """Whether each of ``positions`` lies in one of the ranges."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(self.starts):
            return np.zeros(positions.shape, dtype=bool)
        i = np.searchsorted(self.starts, positions, side="right") - 1
        return (i >= 0) & (positions < self.ends[np.clip(i, 0, None)])


def fitted_intervals(path, fingerprint: str) -> Intervals:
    """Positions whose genome factors were fitted in the store for the model ``fingerprint``."""
    return Intervals([r for r, a in marker_ranges(path, "factors").items() if a.get("model") == fingerprint])
