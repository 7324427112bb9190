"""Synthetic bigWig files with the interval structure of ChIP-seq signal tracks (no network needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def random_intervals(length: int, rng, mean_len: int = 30, gap_fraction: float = 0.3, scale: float = 2.0):
    """Sorted, non-overlapping ``(starts, ends, values)`` covering about ``1 - gap_fraction`` of a contig.

    Interval lengths are geometric with mean ``mean_len`` bp (signal p-value tracks change value
    every few tens of bp); values are gamma-distributed (many small, a few large peaks).

    Examples
    --------
    >>> s, e, v = random_intervals(10_000, np.random.default_rng(0))
    >>> bool((s[1:] >= e[:-1]).all() and e[-1] <= 10_000)
    True
    """
    lens = rng.geometric(1 / mean_len, size=length // max(mean_len // 2, 1) + 10)
    ends = np.cumsum(lens)
    ends = np.r_[ends[ends < length], length]
    starts = np.r_[0, ends[:-1]]
    keep = rng.random(starts.size) >= gap_fraction
    values = rng.gamma(0.6, scale, size=starts.size).astype(np.float32)
    return starts[keep], ends[keep], values[keep]


def write_bigwig(path, chroms: dict, intervals: dict) -> Path:
    """Write a bigWig file: ``chroms`` (name -> length) in the header, ``intervals[name] = (starts, ends, values)``.

    Examples
    --------
    >>> import tempfile
    >>> path = write_bigwig(tempfile.mkdtemp() + "/t.bw", {"chr1": 1000}, {"chr1": ([0], [10], [1.5])})
    >>> path.suffix
    '.bw'
    """
    from ..io.export import create_bigwig

    bw = create_bigwig(path)
    try:
        bw.addHeader([(str(c), int(n)) for c, n in chroms.items()])
        for name in chroms:
            starts, ends, values = intervals.get(name, ((), (), ()))
            if len(starts):
                bw.addEntries([name] * len(starts), [int(s) for s in starts], ends=[int(e) for e in ends], values=[float(v) for v in values])
    finally:
        bw.close()
    return Path(path)


def synthetic_bigwigs(folder, chroms: dict, biosamples, assays, seed: int = 0, **kwargs) -> pd.DataFrame:
    """Write one random bigWig per (biosample, assay) into ``folder`` and return their manifest.

    Parameters
    ----------
    folder : str or Path
    chroms : dict
        Contig name -> length (bp) for every file's header and data.
    biosamples, assays : list of str
    seed : int, default 0
    **kwargs
        ``mean_len``, ``gap_fraction``, ``scale`` of :func:`random_intervals`.

    Returns
    -------
    pandas.DataFrame
        Columns ``biosample``, ``assay``, ``path``: a manifest for :func:`epitensor.ingest`.

    Examples
    --------
    >>> import tempfile
    >>> m = synthetic_bigwigs(tempfile.mkdtemp(), {"chr1": 5_000}, ["B1", "B2"], ["H3K4me3"])
    >>> m.shape
    (2, 3)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for b in biosamples:
        for a in assays:
            path = folder / f"{b}_{a}.bw"
            write_bigwig(path, chroms, {c: random_intervals(n, rng, **kwargs) for c, n in chroms.items()})
            rows.append((b, a, str(path)))
    return pd.DataFrame(rows, columns=["biosample", "assay", "path"])
