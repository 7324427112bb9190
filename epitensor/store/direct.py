"""The one place that decides how tracks are read: straight from the store's chunks, or through xarray.

A DataArray that is a store variable and has only been indexed since it was opened
(``ds.signal.sel(biosample="HepG2", assay="H3K27ac")``, ``ds.sortby("assay").signal``) holds
exactly the values on disk. For a small read, such as 1 Mb of a few tracks while browsing, or the
training tracks of a model, dask's graph and scheduler take longer than the read itself.
:func:`store_source` proves that an object is such a selection: its dask graph holds nothing but
the opened array and indexing, and its ``biosample``/``assay``/``position`` coordinates still name
the store's rows (:func:`~epitensor.genome_index.from_store`: the store's
:class:`~epitensor.genome_index.GenomeIndex`, labels marked when opened). Then the rows are found in the store BY NAME (labels
and genome-wide bin numbers, never the object's row numbers) and read from the chunk files in the
calling thread (:class:`~epitensor.store.tracks.TrackArray`: through zarr for other layouts). Anything else
(arithmetic, new labels, in-memory data, concatenations) is read through xarray, by label.

Examples
--------
>>> import epitensor as et
>>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=8_000, seed=1)
>>> pairs = [("B02", "H3K27me3"), ("B00", "H3K4me3")]
>>> fast = read_tracks(ds.sortby("assay").signal, pairs, range(100, 200))
>>> slow = read_tracks(ds.signal + 0, pairs, range(100, 200))
>>> bool((fast == slow).all()), fast.shape
(True, (2, 100))
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from ..exceptions import LabelError, RegionError
from ..genome_index import LOCATION_COORDS, from_store, genome_index
from .checked import CheckedStore
from .location import StoreLocation
from .open import store_path
from .schema import label_index
from .tracks import TrackArray

TRACK_DIMS = ("biosample", "assay", "position")
_OPENED_PREFIX = "open_dataset-"  # how xarray names the dask array of a variable it opened
_cache: dict[tuple[str, str], tuple] = {}


def store_source(da: xr.DataArray) -> tuple[Path | StoreLocation, str] | None:
    """``(store, variable)`` when ``da`` reads a store variable unchanged, else None.

    True when ``da`` is dask-backed, came from :func:`epitensor.open_dataset`, is laid out
    ``(biosample, assay, position)`` (scalar selections dropping dimensions allowed) and its graph
    holds nothing but the opened array and indexing.
    """
    source = da.encoding.get("source")
    if source is None or da.chunks is None:  # not dask-backed: .data would load the values
        return None
    graph = getattr(da.data, "dask", None)
    if graph is None:
        return None
    opened = [name for name in graph.layers if name.startswith(_OPENED_PREFIX)]
    if len(opened) != 1 or any(not name.startswith("getitem-") for name in graph.layers if name != opened[0]):
        return None
    if list(da.dims) != [d for d in TRACK_DIMS if d in da.dims] or any(d not in da.coords for d in TRACK_DIMS[:2]):
        return None
    if not all(from_store(da, dim, str(source)) for dim in TRACK_DIMS):
        return None  # labels or positions given anew: they no longer name the store's rows
    extra = [k for k, v in da.coords.variables.items() if "position" in v.dims and k not in ("position", *LOCATION_COORDS)]
    if extra:  # coordinates a user attached along position: let xarray carry them
        return None
    variable = opened[0][len(_OPENED_PREFIX) :].rsplit("-", 1)[0]
    return store_path(source), variable


def _open(store: Path, variable: str) -> tuple[TrackArray, pd.Index, pd.Index, pd.Index]:
    """The track variable, the store's labels and its positions (genome-wide bins of
    its position axis), cached until the array's metadata changes."""
    key = (str(store), variable)
    if isinstance(store, StoreLocation):  # an object store: the metadata's bytes are the stamp
        stamp = store.read_bytes(f"{variable}/zarr.json")
        opened = store.zarr_store(read_only=True)
    else:
        stamp = os.stat(store / variable / "zarr.json").st_mtime_ns  # add_labels rewrites it
        opened = CheckedStore(key[0], read_only=True)
    hit = _cache.get(key)
    if hit is None or hit[0] != stamp:
        root = zarr.open_group(opened, mode="r", use_consolidated=False)
        labels = [pd.Index(np.asarray(root[dim][:], dtype=object)) for dim in TRACK_DIMS[:2]]
        n = root[variable].shape[2]
        positions = pd.Index(np.asarray(root["position"][:], dtype=np.int64)) if "position" in root else pd.RangeIndex(n)
        hit = _cache[key] = (stamp, TrackArray(root, store, variable), *labels, positions)
    return hit[1:]


def _rows(labels: pd.Index, wanted, kind: str):
    """Store rows of ``wanted`` labels (an int for a scalar label, an array otherwise)."""
    wanted = np.asarray(wanted, dtype=object)
    if wanted.ndim == 0 and labels.is_unique and wanted.item() in labels:
        return labels.get_loc(wanted.item())  # the common case, one track: no array work
    found = label_index(labels, np.atleast_1d(wanted).tolist(), kind)
    return int(found[0]) if wanted.ndim == 0 else found


def _store_window(store_positions: pd.Index, positions: pd.Index) -> tuple[int, int] | None:
    """Store rows ``[lo, hi)`` holding genome-wide bins ``positions`` in order, or None."""
    if not len(positions):
        return (0, 0)
    if isinstance(store_positions, pd.RangeIndex) and store_positions.step == 1:
        lo = int(positions[0]) - store_positions.start
        if lo < 0 or int(positions[-1]) >= store_positions.stop:
            return None
        contiguous = isinstance(positions, pd.RangeIndex) and positions.step == 1
        if contiguous or (np.diff(positions.to_numpy()) == 1).all():
            return lo, lo + len(positions)
        return None
    rows = store_positions.get_indexer(positions)
    if (rows < 0).any() or (len(rows) > 1 and (np.diff(rows) != 1).any()):
        return None
    return int(rows[0]), int(rows[-1]) + 1


def _indexer(index: pd.Index, positions: pd.Index) -> np.ndarray:
    """``index.get_indexer(positions)``, by arithmetic when ``index`` is a unit-step range."""
    if not (isinstance(index, pd.RangeIndex) and index.step == 1):
        return index.get_indexer(positions)
    rows = positions.to_numpy() - index.start
    rows[(rows < 0) | (rows >= len(index))] = -1
    return rows


def _run_bounds(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last store row of each run of consecutive ``rows``, in order."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    return rows[np.concatenate([[0], breaks])], rows[np.concatenate([breaks, [len(rows)]]) - 1]


def _chunks_held(c_first: np.ndarray, c_last: np.ndarray) -> int:
    """How many chunks the chunk ranges ``[c_first, c_last]`` cover together (overlaps merged)."""
    order = np.argsort(c_first, kind="stable")
    lo, reach = c_first[order], np.maximum.accumulate(c_last[order])
    starts = np.flatnonzero(np.concatenate([[True], lo[1:] > reach[:-1]]))
    ends = np.concatenate([starts[1:], [len(lo)]]) - 1
    return int((reach[ends] - lo[starts] + 1).sum())


#: Most store rows read at once to gather scattered positions from the chunks between them
#: (64 MiB of float32 per track); wider spans are left to zarr's read of scattered rows.
MAX_SPAN_ROWS = 2**24


def _store_segments(store_positions: pd.Index, positions: pd.Index, chunk: int) -> list[tuple[int, int, np.ndarray | None]] | None:
    """How to read genome-wide bins ``positions`` from the store: segments ``(lo, hi, take)``, each
    the store rows ``[lo, hi)`` (``take``: the rows wanted among them, None for all), in order;
    None when some are not in the store or they are too scattered.

    - One segment for a window of consecutive rows.
    - One per run of consecutive rows (several contigs of a store with padded chunks, a list of
      regions), while the runs decode at most twice the chunks that hold the rows: a run decodes
      every chunk it touches.
    - Else one read of the rows' whole span, gathered, while the span is at most twice the chunks
      that hold the rows and :data:`MAX_SPAN_ROWS` (every 8th bin of chr21 and chr22, short regions
      within a chunk).
    - Else None: zarr's read of scattered rows.
    """
    span = _store_window(store_positions, positions)
    if span is not None:
        return [(*span, None)]
    rows = _indexer(store_positions, positions)
    if (rows < 0).any():
        return None
    first, last = _run_bounds(rows)
    c_first, c_last = first // chunk, last // chunk
    held = _chunks_held(c_first, c_last)
    if int((c_last - c_first + 1).sum()) <= 2 * held:
        return [(int(a), int(b) + 1, None) for a, b in zip(first, last)]
    lo, hi = int(rows.min()), int(rows.max()) + 1
    if hi - lo <= MAX_SPAN_ROWS and (hi - 1) // chunk - lo // chunk + 1 <= 2 * held:
        return [(lo, hi, rows - lo)]
    return None


def _read_segment(source, b_rows, a_rows, lo: int, hi: int, take) -> np.ndarray:
    """Values ``(len(b_rows), len(a_rows), n)`` of store rows ``[lo, hi)`` (at ``take`` among them),
    read track by track when gathering, so that only one track's span is in memory at a time."""
    track = _open(*source)[0]
    if take is None:
        return track.read_grid(b_rows, a_rows, lo, hi)
    out = np.empty((len(b_rows), len(a_rows), len(take)), dtype=np.float32)
    for i, b in enumerate(b_rows):
        for j, a in enumerate(a_rows):
            out[i, j] = track.read_grid([b], [a], lo, hi)[0, 0, take]
    return out


def read_selection(da: xr.DataArray, source: tuple[Path, str], window: slice | np.ndarray) -> xr.DataArray:
    """``da.isel(position=window)`` in memory, read from the store by labels and bin numbers (a
    ``window`` of integers is read as :func:`_store_segments` says, or through xarray)."""
    # index the coordinates only: a zero-strided stand-in for the data skips dask's slicing
    part = da.copy(deep=False, data=np.broadcast_to(np.float32(np.nan), da.shape)).isel(position=window)
    track, biosamples, assays, store_positions = _open(*source)
    coords = part.coords.variables
    rows = [_rows(labels, coords[dim].values, dim) for dim, labels in zip(TRACK_DIMS[:2], (biosamples, assays))]
    segments = _store_segments(store_positions, part.xindexes["position"].index, track.chunk)
    if segments is None:
        return da.isel(position=window).load()
    parts = [_read_segment(source, np.atleast_1d(rows[0]), np.atleast_1d(rows[1]), *seg) for seg in segments]
    values = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    return part.copy(deep=False, data=values[tuple(0 if np.ndim(i) == 0 else slice(None) for i in rows)])


def read_tracks(da: xr.DataArray, pairs, positions) -> np.ndarray:
    """Values of track variable ``da`` for (biosample, assay) ``pairs`` at genome-wide ``positions``.

    Reads by label: each pair's biosample and assay labels and each genome-wide bin number are
    looked up in ``da``'s coordinates (the store's chunks when ``da`` is an unmodified selection of
    a store, :func:`store_source`; ``da`` itself through xarray otherwise).

    Parameters
    ----------
    da : DataArray
        A ``(biosample, assay, position)`` track variable (``ds.signal``), any selection or result.
    pairs : list of (str, str)
        Tracks to read.
    positions : array-like of int
        Genome-wide bin numbers; ``da`` must hold every one of them.

    Returns
    -------
    ndarray
        float32, shape ``(len(pairs), len(positions))``.

    Raises
    ------
    LabelError
        A label ``da`` does not hold.
    RegionError
        A position ``da`` does not hold.
    """
    pairs = [(str(b), str(a)) for b, a in pairs]
    positions = pd.Index(np.asarray(positions, dtype=np.int64))
    out = np.empty((len(pairs), len(positions)), dtype=np.float32)
    if not pairs or not len(positions):
        return out
    held = genome_index(da).index
    missing = positions[_indexer(held, positions) < 0] if not held.equals(positions) else positions[:0]
    if len(missing):
        raise RegionError(f"{len(missing):,} of the {len(positions):,} positions asked for (first: bin {missing[0]:,}) "
                          "are not in this dataset's position axis; select a region it holds")
    for dim, wanted in (("biosample", {b for b, _ in pairs}), ("assay", {a for _, a in pairs})):
        have = pd.Index(np.atleast_1d(da.coords[dim].values).astype(object))
        label_index(have, sorted(wanted), dim)
    source = store_source(da)
    if source is not None:
        track, biosamples, assays, store_positions = _open(*source)
        segments = _store_segments(store_positions, positions, track.chunk)
        rows = _indexer(store_positions, positions) if segments is None else None
        for i, (b, a) in enumerate(pairs):
            bi, ai = _rows(biosamples, b, "biosample"), _rows(assays, a, "assay")
            if segments is None:
                out[i] = track.read_at(bi, ai, rows)
                continue
            at = 0
            for lo, hi, take in segments:
                values = _read_segment(source, [bi], [ai], lo, hi, take)[0, 0]
                out[i, at : at + len(values)] = values
                at += len(values)
        return out
    b_sel = xr.DataArray([b for b, _ in pairs], dims="track")
    a_sel = xr.DataArray([a for _, a in pairs], dims="track")
    try:
        picked = da.sel(biosample=b_sel, assay=a_sel, position=positions.to_numpy())
    except KeyError as err:
        raise LabelError(f"cannot select the tracks {pairs[:5]} from this dataset: {err}") from None
    return np.asarray(picked.transpose("track", "position").values, dtype=np.float32)
