"""Reading a region of a store variable straight from the store, without building a dask graph.

A DataArray that is a store variable and has only been indexed since it was opened
(``ds.signal.sel(biosample="HepG2", assay="H3K27ac")``) holds exactly the values on disk. For a
small read, such as 1 Mb of a few tracks while browsing, dask's graph optimisation and scheduler
take longer than the read itself. :func:`store_source` recognises such arrays from their dask
graph, and :func:`read_store_bins` reads their chunk files in the calling thread
(:mod:`epitensor.chunks`; through zarr for other layouts). Anything else (arithmetic,
transposes, in-memory data) is read through dask as usual by the caller.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from .chunks import ChunkFiles
from .store import label_index

TRACK_DIMS = ("biosample", "assay", "position")
_OPENED_PREFIX = "open_dataset-"  # how xarray names the dask array of a variable it opened
_cache: dict[tuple[str, str], tuple] = {}


def store_source(da: xr.DataArray) -> tuple[Path, str] | None:
    """``(store, variable)`` when ``da`` reads a store variable unchanged, else None.

    True when ``da`` is dask-backed, came from :func:`epitensor.open_dataset`, is laid out
    ``(biosample, assay, position)`` (scalar selections dropping dimensions allowed) and its graph
    holds nothing but the opened array and indexing.
    """
    source = da.encoding.get("source")
    graph = getattr(da.variable._data, "dask", None)
    if source is None or graph is None:
        return None
    opened = [name for name in graph.layers if name.startswith(_OPENED_PREFIX)]
    if len(opened) != 1 or any(not name.startswith("getitem-") for name in graph.layers if name != opened[0]):
        return None
    if list(da.dims) != [d for d in TRACK_DIMS if d in da.dims] or any(d not in da.coords for d in TRACK_DIMS[:2]):
        return None
    extra = [k for k, v in da.coords.variables.items() if "position" in v.dims and k not in ("position", "chrom", "start", "end")]
    if extra:  # coordinates a user attached along position: let xarray carry them
        return None
    variable = opened[0][len(_OPENED_PREFIX) :].rsplit("-", 1)[0]
    return Path(source), variable


def _open(store: Path, variable: str) -> tuple[zarr.Array, ChunkFiles | None, pd.Index, pd.Index]:
    """The zarr array, its chunk files and the store's labels, cached until the array's metadata changes."""
    key = (os.fspath(store), variable)
    stamp = os.stat(store / variable / "zarr.json").st_mtime_ns  # add_labels rewrites it
    hit = _cache.get(key)
    if hit is None or hit[0] != stamp:
        root = zarr.open_group(key[0], mode="r")
        labels = [pd.Index(np.asarray(root[dim][:], dtype=object)) for dim in TRACK_DIMS[:2]]
        hit = _cache[key] = (stamp, root[variable], ChunkFiles.open(store, variable), *labels)
    return hit[1:]


def read_store_bins(da: xr.DataArray, source: tuple[Path, str], lo: int, hi: int) -> np.ndarray:
    """Values of ``da`` at genome-wide positions ``[lo, hi)``, shaped like ``da`` along them."""
    array, files, biosamples, assays = _open(*source)
    index = []
    for dim, labels in zip(TRACK_DIMS[:2], (biosamples, assays)):
        wanted = da.coords.variables[dim].values
        if wanted.ndim == 0 and labels.is_unique and wanted.item() in labels:
            index.append(labels.get_loc(wanted.item()))  # the common case, one track: no array work
        else:
            found = label_index(labels, np.atleast_1d(wanted).tolist(), dim)
            index.append(int(found[0]) if wanted.ndim == 0 else found)
    if files is not None:  # chunk files read in this thread (see epitensor.chunks)
        b_idx, a_idx = (np.atleast_1d(i) for i in index)
        values = np.stack([np.stack([files.read(int(b), int(a), lo, hi) for a in a_idx]) for b in b_idx])
    else:
        values = array.oindex[np.atleast_1d(index[0]), np.atleast_1d(index[1]), lo:hi]
    return values[tuple(0 if isinstance(i, int) else slice(None) for i in index)]
