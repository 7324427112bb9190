"""The epigenome tensor on disk: a zarr v3 store read and written through xarray.

Schema (see ``docs/ARCHITECTURE.md``):

* ``signal (biosample, assay, position)``: float32, NaN where a track is not observed, chunks
  ``(1, 1, chunk_bins)`` so an unobserved track writes no bytes and each writer owns its chunks.
* ``observed (biosample, assay)``: bool, the truth about which tracks exist.
* Coordinates ``biosample`` and ``assay`` (unique strings), ``biosample_summary`` and
  ``assay_category`` beside them.
* Attributes: ``assembly``, ``bin_size``, ``chunk_bins``, the contig table (``contigs``,
  ``contig_lengths``, ``contig_first_bins``), ``transform`` and ``epitensor_schema``.

``position`` has no coordinate variable on disk: a genome-wide store never materialises a
124-million-entry index. :func:`open_dataset` indexes it with a
:class:`~epitensor.genome_index.GenomeIndex` (a range, with lazy ``chrom``/``start``/``end``); a
subset saved by xarray stores its bin numbers, which reopen the same way (``docs/data_model.md``).

Labels for any Zarr v3 client
    The label arrays use zarr-python's variable-length ``string`` data type, which the Zarr v3
    core specification does not define (tensorstore, for one, cannot read it). The subgroup
    ``labels_utf8`` therefore holds each of them again in core types only: ``labels_utf8/<name>``
    is a ``uint8 (<name>, utf8_byte)`` array whose row ``i`` is the UTF-8 encoding of label ``i``,
    zero-padded on the right (decode with ``bytes(row).rstrip(b"\\0").decode()``). Being in a
    subgroup, these arrays are invisible to ``xr.open_zarr``. :func:`create_store`,
    :func:`add_labels` and :func:`sync_metadata` keep them equal to the labels. Opened datasets hold
    labels as numpy unicode (``<U``) arrays (:func:`as_unicode_labels`).

Consolidated metadata
    Stores made by :func:`create_store` have none. A store written by ``xarray.Dataset.to_zarr``
    with xarray's defaults carries a copy of every node's metadata in its root ``zarr.json``
    (``consolidated_metadata``); readers that trust it (``xr.open_zarr``, ``zarr.open_group``)
    see only what the copy lists. The policy: **a store that has consolidated metadata keeps it
    current**: every project write that adds, removes or resizes arrays or groups ends with
    :func:`sync_metadata`, which reconsolidates such a store (and leaves other stores without).
    The project's own reads never use the copy (:func:`_open_group` opens the hierarchy itself),
    so a copy made stale by someone else cannot mislead it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.core.sync import sync as zarr_sync

from .allocator import keep_freed_memory
from .chunks import CheckedStore, compressors
from .exceptions import DataError, LabelError, SchemaError, StoreNotFoundError
from .genome import Genome
from .genome_index import genome_index, mark_store_labels, with_genome_index
from .precision import check_precision, default_precision, parse_precision, precision_of
from .storage_location import StoreLocation, access_error, check_bucket, locate

SCHEMA_VERSION = 1
#: Variables laid out along the genome-wide position axis, stored in (1, 1, chunk_bins) chunks.
TRACK_VARIABLES = ("signal", "imputed", "held_out")
TRANSFORMS = ("arcsinh", "none")
ASSAY_CATEGORIES = ("histone", "tf", "accessibility", "rna", "other")
_HISTONE_PREFIXES = ("H2A", "H2B", "H3", "H4")
#: Label arrays (variable-length strings) and the subgroup holding them as core-typed UTF-8 bytes.
LABEL_ARRAYS = ("biosample", "assay", "biosample_summary", "assay_category")
LABEL_BYTES_GROUP = "labels_utf8"


def assay_category(assay: str) -> str:
    """Best-guess category of an assay from its ENCODE/Roadmap name.

    Examples
    --------
    >>> [assay_category(a) for a in ["H3K27ac", "ChIP-seq_CTCF_signal_p-value", "DNase-seq", "CAGE_plus"]]
    ['histone', 'tf', 'accessibility', 'rna']
    """
    name = assay.removeprefix("ChIP-seq_").upper()
    if name.startswith(_HISTONE_PREFIXES) or name.startswith("H2AFZ"):
        return "histone"
    if name.startswith(("DNASE", "ATAC", "MNASE", "FAIRE")):
        return "accessibility"
    if any(k in name for k in ("RNA-SEQ", "CAGE", "RAMPAGE", "RNA_SEQ")):
        return "rna"
    if assay.startswith("ChIP-seq_") or assay.isupper():
        return "tf"
    return "other"


def _labels(values, kind: str, meta_name: str, default) -> tuple[list[str], list[str]]:
    """Normalise labels given as a list, a mapping label -> metadata, or a DataFrame."""
    if isinstance(values, pd.DataFrame):
        if kind not in values.columns:
            raise LabelError(f"the {kind} table needs a column named {kind!r}; it has {list(values.columns)}")
        names = values[kind].astype(str).tolist()
        meta = values[meta_name].astype(str).tolist() if meta_name in values.columns else [default(n) for n in names]
    elif isinstance(values, Mapping):
        names = [str(k) for k in values]
        meta = [str(v) for v in values.values()]
    elif isinstance(values, str) or not isinstance(values, Sequence | np.ndarray | pd.Index):
        raise LabelError(f"{kind}s must be a list of names, a mapping or a DataFrame; got {type(values).__name__}")
    else:
        names = [str(v) for v in values]
        meta = [default(n) for n in names]
    if not names:
        raise LabelError(f"at least one {kind} is needed")
    dup = pd.Index(names)[pd.Index(names).duplicated()].unique().tolist()
    if dup:
        raise LabelError(f"{kind} labels must be unique; duplicated: {dup}. Merge or rename those rows.")
    if any(not n.strip() for n in names):
        raise LabelError(f"{kind} labels must be non-empty strings")
    if any("\0" in t for t in names + meta):
        raise LabelError(f"{kind} labels and their {meta_name} must not contain NUL characters ('\\0'); remove them")
    return names, meta


def _new_labels(values, kind: str) -> tuple[list[str], list[str]]:
    """Labels and metadata of new biosamples (summaries) or assays (checked categories)."""
    if kind == "biosample":
        return _labels(values, "biosample", "biosample_summary", lambda n: n)
    names, categories = _labels(values, "assay", "assay_category", assay_category)
    bad = sorted({c for c in categories if c not in ASSAY_CATEGORIES})
    if bad:
        raise LabelError(f"unknown assay categories {bad}; use one of {ASSAY_CATEGORIES}")
    return names, categories


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
        ``path`` (a :class:`~epitensor.storage_location.StoreLocation` for a URL).

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
        return bool(location._call("list", "", lambda: location.fs.ls(location.root, detail=False, refresh=True)))
    except FileNotFoundError:
        return False


def _zarr(path, read_only: bool = False):
    """What zarr opens for the store ``path``: the path string (local) or zarr's FsspecStore (URL)."""
    if isinstance(path, str | os.PathLike) and not isinstance(path, StoreLocation) and "://" not in os.fspath(path):
        return str(path)
    return locate(path).zarr_store(read_only=read_only)


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
    meta.to_zarr(_zarr(path), mode="w", consolidated=False, zarr_format=3,
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
    root = zarr.open_group(_zarr(path), mode="r+", use_consolidated=False)
    _write_label_bytes(root)
    if has_consolidated_metadata(path):
        with warnings.catch_warnings():  # "consolidated metadata is not part of the v3 spec": we know
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(_zarr(path), zarr_format=3)


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


def add_track_variable(path, name: str, long_name: str = "", exist_ok: bool = False, *, precision=None) -> zarr.Array:
    """Add a ``(biosample, assay, position)`` float32 variable laid out like ``signal``.

    Used for ``imputed`` and ``held_out``; every chunk starts as fill value (NaN, no bytes).

    Parameters
    ----------
    precision : str, optional
        Storage precision (:mod:`epitensor.precision`), recorded in the variable's attrs
        (``precision``, ``precision_bound``). Default: for a new variable
        :func:`~epitensor.precision.default_precision` (``imputed``: ``"quantize-2"``,
        ``|stored - x| <= 2**-8`` on the store's scale; ``"float32"`` keeps every bit); an existing variable keeps its own.

    Raises
    ------
    PrecisionError
        ``exist_ok`` and the variable exists at another precision than ``precision``.

    Examples
    --------
    >>> add_track_variable("compendium.zarr", "imputed", exist_ok=True, precision="float32")  # doctest: +SKIP
    """
    root = zarr.open_group(_zarr(path), mode="r+", use_consolidated=False)
    if name in root:
        if exist_ok:
            check_precision(path, name, root[name].attrs, precision)
            return root[name]
        raise SchemaError(f"store {path} already has a variable {name!r}")
    chosen = default_precision(name) if precision is None else parse_precision(precision)
    attrs = dict(root.attrs)
    shape = (root["biosample"].shape[0], root["assay"].shape[0], Genome.from_attrs(attrs).n_positions)
    arr = root.create_array(
        name,
        shape=shape,
        chunks=(1, 1, int(attrs["chunk_bins"])),
        dtype="float32",
        fill_value=np.nan,
        dimension_names=("biosample", "assay", "position"),
        compressors=chosen.compressors(),  # Blosc, then a CRC-32C checked by every read (epitensor.chunks)
        # the genome on the array too: xr.open_zarr(store).signal then carries it (see genome_index)
        attributes={"long_name": long_name or name, **_genome_attrs(attrs), **chosen.attrs()},
    )
    return arr


def check_track_chunks(root: zarr.Group, path, variables=TRACK_VARIABLES) -> None:
    """Refuse to write into track variables not stored in ``(1, 1, L)`` chunks.

    Parallel writers (ingestion, stage-2 blocks) own whole chunks of one track each; a store that
    xarray wrote with other chunks can be read, trained on and scored, but writing into it from
    several workers would rewrite one chunk from two places.

    Raises
    ------
    SchemaError
        Naming the variable, its chunks and how to rewrite the store.
    """
    for name in variables:
        if name in root and tuple(root[name].chunks[:2]) != (1, 1):
            raise SchemaError(
                f"{name} in store {path} is stored in {tuple(root[name].chunks)} chunks; epitensor writes tracks "
                "into (1, 1, L) chunks so that each writer owns its chunks. Rewrite the store with "
                f"ds.chunk({{'biosample': 1, 'assay': 1}}).to_zarr(new_path, encoding={{'{name}': "
                "{'chunks': (1, 1, 40000)}}) or ingest into a store made by epitensor.create_store")


def _open_group(path, mode="r") -> zarr.Group:
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
    """:func:`_open_group` for an object store (read through zarr's FsspecStore)."""
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


def label_index(labels, wanted, kind: str) -> np.ndarray:
    """Integer positions of ``wanted`` labels, with an error listing the known labels."""
    index = pd.Index(np.asarray(labels, dtype=object))
    wanted_list = [wanted] if isinstance(wanted, str) else list(wanted)
    pos = index.get_indexer(wanted_list)
    if (pos < 0).any():
        unknown = [w for w, p in zip(wanted_list, pos) if p < 0]
        known = ", ".join(map(str, index[:40])) + (" ..." if len(index) > 40 else "")
        raise LabelError(f"unknown {kind}(s) {unknown}; known {kind}s: {known}")
    return pos


class TrackWriter:
    """Writes tracks into an open store, resolving labels and the genome once.

    Use it to write many tracks; :func:`write_track` writes one.

    Parameters
    ----------
    path : str or Path
        An epitensor store.

    Examples
    --------
    >>> writer = TrackWriter("compendium.zarr")                     # doctest: +SKIP
    >>> writer.write("HepG2", "H3K27ac", values, contig="chr21")    # doctest: +SKIP
    >>> writer.mark_observed([("HepG2", "H3K27ac")])                # doctest: +SKIP
    """

    def __init__(self, path):
        self.path = store_path(path)
        self.root = _open_group(path, mode="r+")
        self.genome = Genome.from_attrs(self.root.attrs)
        self.biosamples = pd.Index(np.asarray(self.root["biosample"][:], dtype=object))
        self.assays = pd.Index(np.asarray(self.root["assay"][:], dtype=object))

    def write(self, biosample: str, assay: str, values, contig: str | None = None, variable: str = "signal") -> None:
        """Write ``values`` for one contig (or the whole axis) of one track; see :func:`write_track`."""
        b = label_index(self.biosamples, biosample, "biosample")[0]
        a = label_index(self.assays, assay, "assay")[0]
        values = np.asarray(values)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
            raise DataError(f"track {biosample}/{assay}: values must be a 1-D numeric array, got {values.dtype} with shape {values.shape}")
        first, end = (0, self.genome.n_positions) if contig is None else self.genome.contig_bins(contig)
        if values.shape[0] != end - first:
            where = contig or "the whole genome axis"
            raise DataError(f"track {biosample}/{assay}: expected {end - first:,} bins for {where}, got {values.shape[0]:,}")
        values = values.astype(np.float32)
        inside = genome_mask(self.genome, first, end)
        if not np.isfinite(values[inside]).all():
            raise DataError(f"track {biosample}/{assay}: values contain NaN or infinite numbers; clean them (NaN coverage is 0)")
        values[~inside] = np.nan  # padding between contigs never holds data
        if variable not in self.root:
            add_track_variable(self.path, variable)
            sync_metadata(self.path)
            self.root = _open_group(self.path, mode="r+")
        arr = self.root[variable]
        arr[b, a, first:end] = precision_of(arr.attrs).round(values)

    def mark_observed(self, pairs, value: bool = True) -> None:
        """Set ``observed`` for (biosample, assay) ``pairs``."""
        pairs = list(pairs)
        if not pairs:
            return
        b = label_index(self.biosamples, [p[0] for p in pairs], "biosample")
        a = label_index(self.assays, [p[1] for p in pairs], "assay")
        obs = self.root["observed"][:]
        obs[b, a] = value
        self.root["observed"][:] = obs


def write_track(path, biosample: str, assay: str, values, contig: str | None = None, *, variable: str = "signal", mark_observed: bool = True) -> None:
    """Write one track (or one contig of it) into the store and mark it observed.

    Parameters
    ----------
    path : str or Path
        An epitensor store.
    biosample, assay : str
        Labels of the track; both must exist in the store.
    values : array-like of float
        Binned, transformed values: ``n_bins(contig)`` values for one contig, or ``n_positions``
        values for the whole axis when ``contig`` is None (padding between contigs is ignored).
        Must be finite.
    contig : str, optional
        Contig the values cover.
    variable : str, default "signal"
        Track variable to write (``signal`` or ``held_out``).
    mark_observed : bool, default True
        Set ``observed[biosample, assay]`` (only for ``signal``).

    Raises
    ------
    LabelError
        Unknown biosample or assay (the message lists the known ones).
    DataError
        Wrong length, non-numeric, NaN or infinite values.

    Examples
    --------
    >>> import numpy as np, tempfile, epitensor as et
    >>> g = et.Genome.single_contig("pilot", 1000)
    >>> path = et.create_store(tempfile.mkdtemp() + "/s.zarr", ["E003"], ["H3K4me3"], g)
    >>> write_track(path, "E003", "H3K4me3", np.ones(1000), "pilot")
    >>> bool(et.open_dataset(path).observed.sel(biosample="E003", assay="H3K4me3"))
    True
    """
    writer = TrackWriter(path)
    writer.write(biosample, assay, values, contig, variable)
    if mark_observed and variable == "signal":
        writer.mark_observed([(biosample, assay)])


def genome_mask(genome: Genome, first: int, end: int) -> np.ndarray:
    """Boolean mask of positions ``[first, end)`` that lie inside a contig (not alignment padding)."""
    mask = np.zeros(end - first, dtype=bool)
    for c in genome.contigs:
        lo, hi = genome.contig_bins(c)
        lo, hi = max(lo, first), min(hi, end)
        if lo < hi:
            mask[lo - first : hi - first] = True
    return mask


def set_observed(path, pairs, value: bool = True) -> None:
    """Set ``observed`` for (biosample, assay) ``pairs`` of a store."""
    TrackWriter(path).mark_observed(pairs, value)


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
    _open_group(path)  # clear errors for a wrong path
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
            ds[name].attrs.update(_genome_attrs(ds.attrs))
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


def _genome_attrs(attrs) -> dict:
    keys = ("assembly", "bin_size", "chunk_bins", "contigs", "contig_lengths", "contig_first_bins", "transform")
    return {k: attrs[k] for k in keys if k in attrs}


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the epitensor schema; return it unchanged.

    Raises
    ------
    SchemaError
        Naming the first broken rule and how to fix it.
    """
    problems = _schema_problems(ds)
    if problems:
        raise SchemaError("dataset breaks the epitensor schema: " + "; ".join(problems))
    return ds


def _schema_problems(ds) -> list[str]:
    if not isinstance(ds, xr.Dataset):
        return [f"expected an xarray.Dataset, got {type(ds).__name__}"]
    problems = []
    if "signal" not in ds.variables:
        return ["no 'signal' variable (create stores with epitensor.create_store)"]
    sig = ds["signal"]
    if sig.dims != ("biosample", "assay", "position"):
        problems.append(f"signal must have dims (biosample, assay, position), has {sig.dims}")
    if sig.dtype != np.float32:
        problems.append(f"signal must be float32, is {sig.dtype}")
    for dim in ("biosample", "assay"):
        if dim not in ds.coords:
            problems.append(f"missing {dim!r} coordinate of labels")
        elif dim not in ds.dims:
            label = ds[dim].values.item()
            problems.append(f"{dim!r} is a scalar coordinate ({dim}={label!r}), not a dimension: keep the dimension "
                            f"by selecting with a list, ds.sel({dim}=[{label!r}]) (ds.expand_dims({dim!r}) alone leaves "
                            f"'observed' and the other coordinates without it)")
        elif not ds.indexes[dim].is_unique:
            dup = ds.indexes[dim][ds.indexes[dim].duplicated()].tolist()
            problems.append(f"{dim} labels are not unique: {dup}")
    if "observed" not in ds.variables:
        problems.append("missing the 'observed (biosample, assay)' mask")
    elif ds["observed"].dims != ("biosample", "assay") or ds["observed"].dtype != bool:
        problems.append(f"observed must be bool with dims (biosample, assay), is {ds['observed'].dtype} {ds['observed'].dims}")
    try:
        Genome.from_attrs(ds.attrs)
    except Exception as err:
        return problems + [str(err)]
    if "position" in sig.dims:
        try:
            genome_index(ds)  # positions known: an index, saved bin numbers, or the whole axis
        except SchemaError as err:
            problems.append(str(err))
    if ds.attrs.get("transform") not in TRANSFORMS:
        problems.append(f"attribute 'transform' must be one of {TRANSFORMS}, is {ds.attrs.get('transform')!r}")
    return problems


def store_path(ds_or_path) -> Path | StoreLocation:
    """The store path of an opened Dataset (its ``source``) or a path given directly.

    A local store is a :class:`~pathlib.Path`; a store on an object store its
    :class:`~epitensor.storage_location.StoreLocation` (with the storage_options remembered for it).

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
    root = _open_group(path, mode="r+")
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
