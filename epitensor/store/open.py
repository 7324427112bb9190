"""Opening a store: its root group (local or on an object store) and the labelled dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ..allocator import keep_freed_memory
from ..exceptions import StoreNotFoundError
from ..genome_index import genome_index, mark_store_labels, with_genome_index
from .checked import CheckedStore
from .location import StoreLocation, access_error, check_bucket, locate
from .schema import genome_attrs, validate


def open_group(path, mode="r") -> zarr.Group:
    """The root zarr group of the epitensor store ``path`` (a folder or an object-store URL).

    Opened without consolidated metadata (another tool may have left it stale); read-only local
    groups read through :class:`~epitensor.store.checked.CheckedStore`, so damaged chunks raise.

    Raises
    ------
    StoreNotFoundError
        ``path`` does not exist, is not a zarr store or is not an epitensor store.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=1_000, seed=0)
    >>> int(open_group(ds.attrs["source"]).attrs["epitensor_schema"])
    1
    """
    location = locate(path)
    if not location.is_local:
        return _open_remote_group(location, mode)
    path = Path(path)
    if not path.exists():
        raise StoreNotFoundError(f"no epitensor store at {path}; create one with epitensor.create_store or epitensor.ingest")
    try:  # never through consolidated metadata: another tool may have left it stale
        store = CheckedStore(path, read_only=True) if mode == "r" else str(path)
        root = zarr.open_group(store, mode=mode, use_consolidated=False)
    except Exception as err:  # zarr raises several types for "not a group"
        raise StoreNotFoundError(f"{path} is not a zarr store ({err}); pass the directory made by epitensor") from None
    if "epitensor_schema" not in root.attrs:
        raise StoreNotFoundError(
            f"{path} is a zarr store but not an epitensor store (no 'epitensor_schema' attribute); "
            "create it with epitensor.create_store"
        )
    return root


def _open_remote_group(location: StoreLocation, mode: str) -> zarr.Group:
    """:func:`open_group` for an object store (read through zarr's FsspecStore)."""
    try:
        raw = location.fs.cat_file(f"{location.root}/zarr.json")
    except FileNotFoundError as err:
        check_bucket(location)  # no such bucket: ObjectStoreError
        raise StoreNotFoundError(
            f"no epitensor store at {location} (the object store says: {err}); check the bucket and prefix "
            "of the URL (and storage_options={'endpoint_url': ...} for MinIO or another S3-compatible server), "
            "or create the store with epitensor.create_store or epitensor.ingest") from None
    except Exception as err:
        raise access_error(location, err, "zarr.json") from None
    try:
        attrs = json.loads(raw).get("attributes") or {}
    except ValueError:
        attrs = {}
    if attrs.get("epitensor_creating"):
        raise StoreNotFoundError(f"{location} is a store whose creation did not finish (the process was stopped); "
                                 "run the same create_store or ingest again to create it afresh")
    try:
        root = zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode, use_consolidated=False)
    except Exception as err:
        raise StoreNotFoundError(f"{location} is not a zarr store ({err}); pass the URL of a store made by epitensor") from None
    if "epitensor_schema" not in root.attrs:
        raise StoreNotFoundError(
            f"{location} is a zarr store but not an epitensor store (no 'epitensor_schema' attribute); "
            "create it with epitensor.create_store")
    return root


def open_dataset(path, chunks=None, *, storage_options: dict | None = None) -> xr.Dataset:
    """Open an epitensor store as a lazy, dask-backed :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or Path
        The store directory, or an object-store URL such as ``s3://bucket/compendium.zarr``
        (``docs/object_storage.md``).
    chunks : dict, optional
        Dask chunks for the track variables; default: the on-disk chunks ``(1, 1, chunk_bins)``.
        Labels, ``observed`` and factor tables are read into memory (they are small).
    storage_options : dict, optional
        For a URL: options of its fsspec filesystem, e.g. ``{"endpoint_url": "http://127.0.0.1:9000",
        "key": ..., "secret": ...}``; remembered for the URL in this process.

    Returns
    -------
    xarray.Dataset
        Nothing along ``position`` is read until you compute. The genome attributes are copied
        onto every variable laid out along ``position`` so a selected DataArray keeps them.

    Raises
    ------
    StoreNotFoundError
        ``path`` does not exist or is not an epitensor store.
    ObjectStoreError
        The object store of a URL cannot be reached (no such bucket, wrong credentials or endpoint).
    SchemaError
        The store breaks the schema.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=3, n_positions=10_000, seed=0)
    >>> ds.signal.dims
    ('biosample', 'assay', 'position')
    """
    location = locate(path, storage_options)
    path = location if not location.is_local else path
    open_group(path)  # clear errors for a wrong path
    keep_freed_memory(32 << 20, 256 << 20)  # region reads allocate and free ~MB arrays: see epitensor.allocator
    # inline_array=True keeps the zarr array inside the tasks: no legacy layer, so dask culls a
    # selection without enumerating every chunk of the genome-wide array
    ds = _open_zarr(path, chunks={} if chunks is None else chunks, inline_array=True)
    small = [n for n, v in ds.variables.items() if not _along_genome(v) and not _is_big(v)]
    eager = as_unicode_labels(_open_zarr(path, chunks=None)[small].load())
    ds = ds.assign_coords({n: eager[n] for n in small if n in ds.coords})
    ds = ds.assign({n: eager[n] for n in small if n in ds.data_vars})
    if "observed" in ds.data_vars:
        ds = ds.set_coords("observed")
    for name in ds.data_vars:
        if "position" in ds[name].dims:
            ds[name].attrs.update(genome_attrs(ds.attrs))
            ds.variables[name].encoding["source"] = str(path)  # lets .epi.read go straight to zarr
    ds.attrs["source"] = str(path)
    validate(ds)
    return _index_store(ds, str(path))


def _index_store(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Attach the indexes that carry the genome and remember the store: a
    :class:`~epitensor.genome_index.GenomeIndex` on ``position`` (every bin of the genome for a
    store made by epitensor, the saved bin numbers for a subset saved by xarray) and
    a mark on the label coordinates (:func:`~epitensor.genome_index.mark_store_labels`)."""
    ds = mark_store_labels(ds, source)
    if "position" not in ds.dims:
        return ds
    index = genome_index(ds)
    return with_genome_index(ds, index.genome, None if "position" not in ds.coords else index.index, source)


def as_unicode_labels(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every string variable (labels, summaries, categories) as a numpy unicode (``<U``) array.

    zarr-python returns its ``string`` data type as numpy's ``StringDType``, which xarray cannot
    promote against other strings or missing values: ``xr.merge``, ``xr.align(join="outer")``,
    ``reindex`` with a new label and ``combine_first`` raise ``DTypePromotionError``, ``.plot()``
    rejects it as a coordinate and ``astype(str)`` fails. ``<U`` is numpy's ordinary string dtype:
    it promotes with other strings (to the wider ``<U``) and with missing values (to ``object``),
    and it is the one string dtype xarray's ``.plot()`` accepts as a coordinate (``object`` is
    rejected there). Like any ``<U`` array it truncates a longer string assigned into it in place;
    assign a new coordinate instead (``ds.assign_coords(biosample_summary=[...])``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(coords={"assay": np.array(["H3K4me3"], dtype=np.dtypes.StringDType())})
    >>> as_unicode_labels(ds).assay.dtype
    dtype('<U7')
    """
    strings = {n: v.copy(data=np.array(v.values.tolist(), dtype=str)) for n, v in ds.variables.items()
               if v.dtype.kind == "T"}
    coords = {n: v for n, v in strings.items() if n in ds.coords}
    return ds.assign_coords(coords).assign({n: v for n, v in strings.items() if n not in coords})


def _open_zarr(path, **kwargs) -> xr.Dataset:
    # CheckedStore: a damaged chunk raises CorruptChunkError, in dask computations too (local stores;
    # on an object store zarr's crc32c codec refuses a damaged chunk)
    store = locate(path).zarr_store(read_only=True) if isinstance(path, StoreLocation) else CheckedStore(path, read_only=True)
    return xr.open_dataset(store, engine="zarr", consolidated=False, zarr_format=3, **kwargs)


def _along_genome(v) -> bool:
    """Laid out along the genome (``position``, or the coarser ``position_250bp``/``position_5kbp``
    axes of genome factors): kept lazy whatever its size."""
    return any(str(d).startswith("position") for d in v.dims)


def _is_big(v) -> bool:
    return int(np.prod(v.shape, dtype=np.int64)) > 50_000_000


def store_path(ds_or_path) -> Path | StoreLocation:
    """The store path of an opened Dataset (its ``source``) or a path given directly.

    A local store is a :class:`~pathlib.Path`; a store on an object store its
    :class:`~epitensor.store.location.StoreLocation` (with the storage_options remembered for it).

    Examples
    --------
    >>> store_path("compendium.zarr"), store_path("s3://bucket/c.zarr")
    (PosixPath('compendium.zarr'), StoreLocation('s3://bucket/c.zarr'))
    """
    if isinstance(ds_or_path, xr.Dataset | xr.DataArray):
        src = ds_or_path.attrs.get("source") or ds_or_path.encoding.get("source")
        if not src:
            raise StoreNotFoundError("this dataset was not opened from a store; pass the store path instead")
        ds_or_path = src
    location = locate(ds_or_path)
    return location.path if location.is_local else location
