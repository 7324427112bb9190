"""Creating a store: written whole in a hidden sibling folder and moved into place (local), or
in place and marked finished by its last write (object store); growing it with new labels."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ..exceptions import LabelError, SchemaError
from ..genome import Genome
from .codecs import compressors
from .location import StoreLocation, check_bucket, locate, zarr_store
from .metadata import sync_metadata
from .open import open_group, store_path
from .schema import SCHEMA_VERSION, TRANSFORMS, _new_labels
from .tracks import add_track_variable


def create_store(
    path,
    biosamples,
    assays,
    genome: Genome,
    *,
    transform: str = "arcsinh",
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> Path:
    """Create an empty epigenome tensor store (every track unobserved).

    Parameters
    ----------
    path : str or Path
        Directory of the new zarr store, or an object-store URL such as
        ``s3://bucket/compendium.zarr`` (``docs/object_storage.md``).
    biosamples : list of str, mapping name -> summary, or DataFrame
        Biosample labels; a DataFrame needs a ``biosample`` column and may have ``biosample_summary``.
    assays : list of str, mapping name -> category, or DataFrame
        Assay labels; a DataFrame needs an ``assay`` column and may have ``assay_category``. Missing
        categories are guessed from the names (:func:`assay_category`).
    genome : Genome
        Assembly and contigs of the position axis.
    transform : {"arcsinh", "none"}, default "arcsinh"
        Transform applied to the signal values, recorded in the attributes.
    overwrite : bool, default False
        Replace an existing store at ``path``.
    storage_options : dict, optional
        For a URL: options of its fsspec filesystem (credentials, ``endpoint_url``).

    Returns
    -------
    Path or StoreLocation
        ``path`` (a :class:`~epitensor.store.location.StoreLocation` for a URL).

    Notes
    -----
    The store is written in a hidden sibling directory and renamed to ``path`` when complete, so
    a process killed while creating it leaves no half-made store at ``path``: running the same
    call (or :func:`epitensor.ingest`) again creates it afresh, and removes the killed run's
    hidden directory. An object store cannot rename: the store is written in place with an
    ``epitensor_creating`` attribute instead of ``epitensor_schema``, which its last write swaps;
    the rerun replaces such a half-made store.

    Examples
    --------
    >>> import tempfile, epitensor as et
    >>> path = create_store(tempfile.mkdtemp() + "/t.zarr", ["HepG2", "K562"], ["H3K27ac", "CTCF"],
    ...                     et.Genome.from_assembly("hg38", contigs=["chr21"]))
    >>> et.open_dataset(path).signal.shape
    (2, 2, 1868400)
    """
    location = locate(path, storage_options)
    if transform not in TRANSFORMS:
        raise SchemaError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if not location.is_local:
        return _create_remote_store(location, biosamples, assays, genome, transform, overwrite)
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise SchemaError(f"{path} already exists; pass overwrite=True to replace it or choose another path")
    b_names, b_meta = _new_labels(biosamples, "biosample")
    a_names, a_meta = _new_labels(assays, "assay")
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_unfinished_creations(path)
    building = _sibling(path, "creating")
    try:
        _write_new_store(building, b_names, b_meta, a_names, a_meta, genome, transform)
        _move_into_place(building, path)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return path


def _create_remote_store(location: StoreLocation, biosamples, assays, genome: Genome, transform: str,
                         overwrite: bool) -> StoreLocation:
    """:func:`create_store` on an object store: written in place, ``epitensor_schema`` set last."""
    b_names, b_meta = _new_labels(biosamples, "biosample")
    a_names, a_meta = _new_labels(assays, "assay")
    check_bucket(location)
    raw = location.read_bytes("zarr.json")
    attrs = {}
    if raw is not None:
        try:
            attrs = json.loads(raw).get("attributes") or {}
        except ValueError:
            attrs = {}
    elif _has_objects(location):
        attrs = {"": "objects that are not a zarr store"}
    if attrs and not attrs.get("epitensor_creating") and not overwrite:
        raise SchemaError(f"{location} already exists; pass overwrite=True to replace it or choose another URL")
    if raw is not None or attrs:
        location.delete("", recursive=True)  # an old store, or one a killed creation left half-made
    _write_new_store(location, b_names, b_meta, a_names, a_meta, genome, transform, finished=False)
    root = zarr.open_group(location.zarr_store(), mode="r+", use_consolidated=False)
    final = {k: v for k, v in root.attrs.asdict().items() if k != "epitensor_creating"}
    root.attrs.put({**final, "epitensor_schema": SCHEMA_VERSION})  # one PUT: from here on the store is complete
    return location


def _has_objects(location: StoreLocation) -> bool:
    try:
        return bool(location.call("list", "", lambda: location.fs.ls(location.root, detail=False, refresh=True)))
    except FileNotFoundError:
        return False


def _write_new_store(path, b_names, b_meta, a_names, a_meta, genome: Genome, transform: str,
                     finished: bool = True) -> None:
    """Write a complete empty store at ``path`` (a private directory, moved into place afterwards;
    on an object store, in place and marked ``epitensor_creating`` until :func:`create_store` ends)."""
    meta = xr.Dataset(
        coords={
            "biosample": ("biosample", np.array(b_names, dtype=object)),
            "assay": ("assay", np.array(a_names, dtype=object)),
            "biosample_summary": ("biosample", np.array(b_meta, dtype=object)),
            "assay_category": ("assay", np.array(a_meta, dtype=object)),
            "observed": (("biosample", "assay"), np.zeros((len(b_names), len(a_names)), dtype=bool)),
        },
        attrs={**genome.to_attrs(), "transform": transform,
               **({"epitensor_schema": SCHEMA_VERSION} if finished else {"epitensor_creating": True})},
    )
    meta.to_zarr(zarr_store(path), mode="w", consolidated=False, zarr_format=3,
                 encoding={name: {"compressors": compressors()} for name in meta.variables})
    add_track_variable(path, "signal", long_name="observed signal")
    sync_metadata(path)


# A store is built in a sibling directory ``.<name>.creating-<pid>-<hex>`` and renamed into place,
# so a process killed while creating it leaves no half-made store at ``path`` (the rerun creates it
# afresh); an old store being overwritten is first renamed to ``.<name>.replaced-<pid>-<hex>``.
_LEFTOVER_KINDS = ("creating", "replaced")


def _sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _move_into_place(built: Path, path: Path) -> None:
    """Rename the finished store ``built`` to ``path`` (replacing an empty directory or an old store)."""
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        old = _sibling(path, "replaced")
        os.rename(path, old)
        os.rename(built, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(built, path)  # POSIX rename replaces an empty directory


def _sweep_unfinished_creations(path: Path) -> None:
    """Remove the sibling directories that killed :func:`create_store` calls left for ``path``."""
    for kind in _LEFTOVER_KINDS:
        for leftover in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = leftover.name.rsplit("-", 2)[-2]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: alive, another user's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def add_labels(path, biosamples=None, assays=None) -> Path:
    """Grow a store in place with new biosample and/or assay labels (appended at the end).

    Every variable laid out along ``biosample`` or ``assay`` grows along that axis: ``signal``,
    ``imputed``, ``held_out`` (new tracks start unobserved: NaN fill, no bytes written),
    ``observed`` (False for the new rows/columns), the label and metadata coordinates, and the
    model's ``biosample_factors``/``assay_factors`` (NaN rows until a model writes them). Existing
    values are untouched. Then write the new tracks with :func:`write_track`.

    Parameters
    ----------
    path : str or Path
        An epitensor store.
    biosamples : list of str, mapping name -> summary, or DataFrame, optional
        New biosample labels (as in :func:`create_store`).
    assays : list of str, mapping name -> category, or DataFrame, optional
        New assay labels; categories are guessed from names when not given.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LabelError
        A label that the store already has, duplicated labels, or no label given.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=1_000, seed=0)
    >>> path = add_labels(ds.attrs["source"], biosamples={"E065": "Aorta"}, assays=["H3K27ac"])
    >>> grown = et.open_dataset(path)
    >>> grown.signal.shape, bool(grown.observed.sel(biosample="E065").any())
    ((4, 3, 1000), False)
    """
    if biosamples is None and assays is None:
        raise LabelError("add_labels needs biosamples=... and/or assays=...; nothing to add")
    root = open_group(path, mode="r+")
    new = {}
    for kind, values in (("biosample", biosamples), ("assay", assays)):
        if values is None:
            continue
        names, meta = _new_labels(values, kind)
        have = set(root[kind][:].tolist())
        existing = [n for n in names if n in have]
        if existing:
            raise LabelError(f"the store {path} already has {kind}(s) {existing}; labels are appended, so choose new "
                             "names (or write the tracks of an existing label with write_track)")
        new[kind] = (names, meta)
    for _, arr in list(root.arrays()):
        dims = tuple(arr.metadata.dimension_names or ())
        shape = tuple(len(new[d][0]) + n if d in new else n for d, n in zip(dims, arr.shape))
        if shape != tuple(arr.shape):
            old = tuple(arr.shape)
            arr.resize(shape)
            if arr.dtype == bool:  # the fill value of observed may not be False: set the new cells
                for axis, (n_old, n_new) in enumerate(zip(old, shape)):
                    if n_new > n_old:
                        index = [slice(None)] * len(shape)
                        index[axis] = slice(n_old, n_new)
                        arr[tuple(index)] = False
    for kind, meta_name in (("biosample", "biosample_summary"), ("assay", "assay_category")):
        if kind in new:
            names, meta = new[kind]
            n = root[kind].shape[0]
            root[kind][n - len(names):] = np.array(names, dtype=object)
            root[meta_name][n - len(names):] = np.array(meta, dtype=object)
    sync_metadata(path)
    return store_path(path)
