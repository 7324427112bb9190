"""Derived metadata kept equal to the arrays: core-typed label copies and consolidated metadata.

Labels for any Zarr v3 client
    The label arrays use zarr-python's variable-length ``string`` data type, which the Zarr v3
    core specification does not define (tensorstore, for one, cannot read it). The subgroup
    ``labels_utf8`` therefore holds each of them again in core types only: ``labels_utf8/<name>``
    is a ``uint8 (<name>, utf8_byte)`` array whose row ``i`` is the UTF-8 encoding of label ``i``,
    zero-padded on the right (decode with ``bytes(row).rstrip(b"\\0").decode()``). Being in a
    subgroup, these arrays are invisible to ``xr.open_zarr``. :func:`~epitensor.store.create_store`,
    :func:`~epitensor.store.add_labels` and :func:`sync_metadata` keep them equal to the labels.

Consolidated metadata
    Stores made by :func:`~epitensor.store.create_store` have none. A store written by
    ``xarray.Dataset.to_zarr`` with xarray's defaults carries a copy of every node's metadata in
    its root ``zarr.json`` (``consolidated_metadata``); readers that trust it (``xr.open_zarr``,
    ``zarr.open_group``) see only what the copy lists. The policy: **a store that has consolidated
    metadata keeps it current**: every project write that adds, removes or resizes arrays or groups
    ends with :func:`sync_metadata`, which reconsolidates such a store (and leaves other stores
    without). The project's own reads never use the copy (:func:`~epitensor.store.open_group` opens
    the hierarchy itself), so a copy made stale by someone else cannot mislead it.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path

import numpy as np
import zarr
from zarr.core.sync import sync as zarr_sync

from .location import StoreLocation, locate, zarr_store
from .schema import LABEL_ARRAYS, LABEL_BYTES_GROUP


# ---------------------------------------------------------------------- derived metadata
def sync_metadata(path) -> None:
    """Bring a store's derived metadata up to date after a write that changed its arrays.

    Every project write that adds, removes or resizes arrays or groups, or changes labels, calls
    this afterwards (on the driver, once the change is complete). It rewrites the core-typed label
    copies in ``labels_utf8`` where they differ from the labels, and reconsolidates the metadata of a
    store that carries consolidated metadata (one written by ``xarray.Dataset.to_zarr`` with its
    defaults), so ``xr.open_zarr`` sees the new variables. Stores without consolidated metadata are
    left without. Cheap: it reads only metadata and the label arrays.

    Parameters
    ----------
    path : str or Path
        An epitensor store.

    Examples
    --------
    >>> import zarr, epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=1_000, seed=0)
    >>> ds.to_zarr("copy.zarr", mode="w")                            # doctest: +SKIP
    >>> zarr.open_group("copy.zarr", mode="r+").create_group("mine")  # doctest: +SKIP
    >>> et.store.sync_metadata("copy.zarr")                          # doctest: +SKIP
    """
    root = zarr.open_group(zarr_store(path), mode="r+", use_consolidated=False)
    _write_label_bytes(root)
    if has_consolidated_metadata(path):
        with warnings.catch_warnings():  # "consolidated metadata is not part of the v3 spec": we know
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(zarr_store(path), zarr_format=3)


def has_consolidated_metadata(path) -> bool:
    """Whether the root ``zarr.json`` of the store carries consolidated metadata."""
    try:
        if isinstance(path, StoreLocation) or "://" in os.fspath(path):
            root = json.loads(locate(path).read_bytes("zarr.json") or b"{}")
        else:
            root = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return root.get("consolidated_metadata") is not None


def label_bytes(labels) -> np.ndarray:
    """Labels as a ``uint8 (n, width)`` matrix of zero-padded UTF-8 bytes (width at least 1).

    Examples
    --------
    >>> label_bytes(["E003", "Gewebe ä"]).shape
    (2, 9)
    """
    encoded = [str(t).encode("utf-8") for t in labels]
    out = np.zeros((len(encoded), max([1, *map(len, encoded)])), dtype=np.uint8)
    for i, b in enumerate(encoded):
        out[i, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    return out


def _write_label_bytes(root: zarr.Group) -> None:
    """Make ``labels_utf8/<name>`` equal to the label array ``<name>`` for every label array."""
    if LABEL_BYTES_GROUP not in root:
        root.create_group(LABEL_BYTES_GROUP, attributes={
            "description": "the label arrays of the root group as uint8 UTF-8 bytes (Zarr v3 core data types)"})
    group = root[LABEL_BYTES_GROUP]
    labels, copies = _read_arrays(root, LABEL_ARRAYS), _read_arrays(group, LABEL_ARRAYS)
    for name in LABEL_ARRAYS:
        if labels[name] is None:
            continue
        wanted = label_bytes(labels[name])
        if copies[name] is not None:
            if tuple(copies[name].shape) == wanted.shape and np.array_equal(copies[name], wanted):
                continue
            del group[name]
        arr = group.create_array(
            name, shape=wanted.shape, chunks=wanted.shape, dtype="uint8", fill_value=0, compressors=None,
            dimension_names=(name, "utf8_byte"),
            attributes={"labels_of": name, "encoding": "utf-8, zero-padded on the right; row i is label i of "
                        f"the root array {name!r}"})
        arr[:] = wanted


def _read_arrays(group: zarr.Group, names) -> dict[str, np.ndarray | None]:
    """The values of the small arrays ``names`` of ``group`` (None for those it lacks), read
    concurrently: on an object store, a few round trips instead of three per array."""
    async def read_one(name):
        try:
            arr = await group._async_group.getitem(name)
        except KeyError:
            return name, None
        if not isinstance(arr, zarr.AsyncArray):
            return name, None
        return name, np.asarray(await arr.getitem(tuple(slice(None) for _ in arr.shape)))

    async def read_all():
        return dict(await asyncio.gather(*(read_one(n) for n in names)))

    return zarr_sync(read_all())


def remove_interrupted_writes(path) -> int:
    """Delete the temporary files a killed writer left inside a store; return how many.

    zarr's local store writes each chunk to ``<chunk>.<uuid>.partial`` and renames it into place,
    so a process killed mid-write (``kill -9``, a lost worker) can leave such a file behind. The
    chunk it was meant to replace is intact and every reader ignores the leftover, but it takes
    disk space and makes the store differ from one written without interruption. Resuming runs
    (ingestion, stage-2 fitting, imputation) call this before they write.

    Examples
    --------
    >>> import epitensor as et
    >>> et.store.remove_interrupted_writes("compendium.zarr")  # doctest: +SKIP
    0
    """
    location = locate(path)
    if not location.is_local:
        return 0  # an object store has no temporary files: an object is PUT whole or not at all
    removed = 0
    for leftover in location.path.rglob("*.partial"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
