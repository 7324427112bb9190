"""Where a store lives: a local folder or a prefix of an object store (S3, GCS, ... through fsspec).

Every function that takes a store (``open_dataset``, ``ingest``, ``fit_genome`` ...) turns it into
a :class:`StoreLocation` once, with :func:`locate`. The location answers whether the store is
local, gives zarr the store object to open (the path itself for a local folder, zarr's own
:class:`zarr.storage.FsspecStore` for a URL) and reads, writes, lists and deletes the few small
objects the project keeps beside the arrays (stage-2 block markers, ingestion records).

Local folders keep their direct paths (chunk files written in the calling thread,
:mod:`epitensor.store.chunk_files`); object stores go through zarr. On an object store a small object is
written with one PUT, which is atomic: a reader sees the whole object or none, so a record written
after its data (every chunk PUT has returned) proves the data are durable.

``storage_options`` (credentials, ``endpoint_url`` of a MinIO or moto server, ...) go to fsspec's
filesystem (for S3: :class:`s3fs.S3FileSystem`). They are remembered per URL in this process, so a
dataset opened with them can be passed on (``ds.attrs["source"]`` holds the URL) and a location
shipped to Dask workers carries them (it pickles with its options). See ``docs/object_storage.md``.

Examples
--------
>>> loc = locate("compendium.zarr")
>>> loc.is_local, str(loc)
(True, 'compendium.zarr')
>>> locate("s3://bucket/compendium.zarr").is_local
False
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..exceptions import ObjectStoreError

#: storage_options given for each URL in this process (see :func:`locate`).
_OPTIONS: dict[str, dict] = {}
_LOCATIONS: dict[tuple, StoreLocation] = {}


def is_remote(store) -> bool:
    """True when ``store`` is a URL of an object store (``s3://``, ``gs://``, ``memory://`` ...).

    Examples
    --------
    >>> is_remote("s3://bucket/a.zarr"), is_remote("/data/a.zarr"), is_remote("file:///data/a.zarr")
    (True, False, False)
    """
    if isinstance(store, StoreLocation):
        return not store.is_local
    text = os.fspath(store) if isinstance(store, os.PathLike) else store
    return isinstance(text, str) and "://" in text and not text.startswith("file://")


class StoreLocation:
    """A store's address, parsed once: a local folder (``path``) or an object-store URL (``url``).

    Use :func:`locate` to make one. It pickles with its ``storage_options`` (Dask workers open the
    store from it) and prints as the path or URL it was given.

    Parameters
    ----------
    store : str or path-like
        A local folder, ``file://`` URL or an fsspec URL such as ``s3://bucket/compendium.zarr``.
    storage_options : dict, optional
        Passed to the fsspec filesystem of a URL (credentials, ``endpoint_url``, ...).

    Examples
    --------
    >>> loc = StoreLocation("s3://bucket/c.zarr", {"endpoint_url": "http://127.0.0.1:9000"})
    >>> loc.url, loc.key("genome_fit/factors")
    ('s3://bucket/c.zarr', 's3://bucket/c.zarr/genome_fit/factors')
    """

    def __init__(self, store, storage_options: dict | None = None):
        text = os.fspath(store)
        if text.startswith("file://"):
            text = text[len("file://") :]
        self.is_local = not is_remote(text)
        self.url = text.rstrip("/") if not self.is_local else text
        self.path = Path(text) if self.is_local else None
        self.storage_options = dict(storage_options or {})
        self._fs = None
        self._zarr_stores: dict[bool, object] = {}

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StoreLocation({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StoreLocation) and (self.path, self.url) == (other.path, other.url)

    def __hash__(self) -> int:
        return hash(self.url)

    def resolve(self) -> StoreLocation | Path:
        """The absolute path of a local store, the location itself for a URL (as ``Path.resolve``)."""
        return self.path.resolve() if self.is_local else self

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"{self.url} is on an object store, not a local path")
        return str(self.path)

    def __getstate__(self) -> dict:
        return {"url": self.url, "storage_options": self.storage_options, "is_local": self.is_local}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"], state["storage_options"])

    # ------------------------------------------------------------------ zarr
    def zarr_store(self, read_only: bool = False):
        """What zarr opens: the folder as a string (local) or a :class:`~zarr.storage.FsspecStore`."""
        if self.is_local:
            return str(self.path)
        self._connect()  # clear errors for a missing extra or bad options
        # zarr's own filesystem instance (asynchronous, on zarr's event loop); this location's
        # ``fs`` is a separate synchronous one for the small objects
        store = self._zarr_stores.get(read_only)
        if store is None:
            store = self._zarr_stores[read_only] = _v3_store_class().from_url(
                self.url, storage_options=self._fs_options(), read_only=read_only)
        return store

    def _fs_options(self) -> dict:
        """``storage_options`` with defaults for the small objects of a store: on S3, whole-object
        reads without s3fs's size request first (its concurrent download is for files over 50 MB)."""
        if self.url.split("://", 1)[0] in ("s3", "s3a"):
            return {"max_concurrency": 1, **self.storage_options}
        return self.storage_options

    def _connect(self) -> None:
        if self._fs is None:
            import fsspec

            try:
                fs, root = fsspec.core.url_to_fs(self.url, **self._fs_options())
            except ImportError as err:
                raise ObjectStoreError(
                    f"cannot open {self.url}: {err}. Install the object-store extra: pip install 'epitensor[s3]' "
                    "(s3fs; gcsfs for gs://)") from None
            except Exception as err:  # bad storage_options
                raise access_error(self, err) from None
            self._fs, self._root = fs, root.rstrip("/")

    @property
    def fs(self):
        """The fsspec filesystem of an object-store URL (created once per location)."""
        self._connect()
        return self._fs

    @property
    def root(self) -> str:
        """The store's path inside its filesystem (``bucket/prefix``)."""
        self._connect()
        return self._root

    def key(self, name: str) -> str:
        """Full path or URL of the object ``name`` (relative to the store)."""
        return str(self.path / name) if self.is_local else f"{self.url}/{name}"

    def _remote(self, name: str) -> str:
        return f"{self.root}/{name}".rstrip("/")

    # ------------------------------------------------------------------ small objects
    def read_bytes(self, name: str) -> bytes | None:
        """The bytes of object ``name``, or None when there is none."""
        try:
            if self.is_local:
                return (self.path / name).read_bytes()
            return self.call("read", name, lambda: self.fs.cat_file(self._remote(name)))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, name: str = "zarr.json") -> bool:
        """Whether object ``name`` exists (a file, for a local store)."""
        if self.is_local:
            return (self.path / name).is_file()
        return self.read_bytes(name) is not None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write object ``name`` whole: readers see the old object or the new one, never a part.

        Local: a hidden temporary file in the same folder, renamed into place. Object store: one PUT.
        """
        if self.is_local:
            target = self.path / name
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
            return
        self.call("write", name, lambda: self.fs.pipe_file(self._remote(name), data))

    def list(self, prefix: str) -> list[str]:
        """Names of every object under ``prefix`` (a folder of the store), relative to it, sorted.

        Object stores list freshly (no cached listing): objects written by other processes count.
        """
        if self.is_local:
            folder = self.path / prefix
            if not folder.is_dir():
                return []
            return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        base = self._remote(prefix)
        self.fs.invalidate_cache(base)
        try:
            found = self.call("list", prefix, lambda: self.fs.find(base))
        except FileNotFoundError:
            return []
        return sorted(f[len(base) + 1 :] for f in found if f.startswith(base + "/"))

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """Bytes of each of ``names`` that exists (fetched concurrently from an object store)."""
        if self.is_local or not names:
            return {n: b for n in names if (b := self.read_bytes(n)) is not None}
        got = self.call("read", names[0], lambda: self.fs.cat([self._remote(n) for n in names], on_error="omit"))
        base = len(self.root) + 1
        return {k[base:]: v for k, v in got.items() if isinstance(v, bytes)}

    def delete(self, name: str, recursive: bool = False) -> None:
        """Delete object ``name`` (with ``recursive``, everything under the prefix); absent is fine."""
        if self.is_local:
            target = self.path / name
            if recursive and target.is_dir():
                import shutil

                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
            return
        try:
            self.call("delete", name, lambda: self.fs.rm(self._remote(name), recursive=recursive))
        except FileNotFoundError:
            pass

    def call(self, what: str, name: str, fn):
        """Run an object-store call; errors other than a missing object become ObjectStoreError."""
        try:
            return fn()
        except FileNotFoundError:
            raise
        except Exception as err:
            raise access_error(self, err, f"{what} {name}") from err


#: Zarr v2 metadata keys: epitensor stores are Zarr v3, so an object store is never asked for them.
_V2_KEYS = (".zgroup", ".zarray", ".zattrs", ".zmetadata")
_V3_STORE = []


def _v3_store_class():
    """zarr's FsspecStore, told that a Zarr v3 store has no v2 metadata objects.

    Opening a group or array without ``zarr_format`` makes zarr look for the v2 keys too; on an
    object store each absent key costs a HEAD and a listing (four times the requests of the open
    itself). An epitensor store is always Zarr v3, so these keys are answered as absent at once.
    """
    if not _V3_STORE:
        from zarr.storage import FsspecStore

        class V3FsspecStore(FsspecStore):
            async def get(self, key, prototype=None, byte_range=None):
                if key.endswith(_V2_KEYS):
                    return None
                return await super().get(key, prototype, byte_range)

            async def exists(self, key):
                if key.endswith(_V2_KEYS):
                    return False
                return await super().exists(key)

        _V3_STORE.append(V3FsspecStore)
    return _V3_STORE[0]


def access_error(location: StoreLocation, err: Exception, what: str = "") -> ObjectStoreError:
    """The error for an object store that cannot be reached, read or written (bucket, credentials)."""
    detail = f"{type(err).__name__}: {err}".strip()
    where = f" ({what})" if what else ""
    options = sorted(location.storage_options)
    return ObjectStoreError(
        f"cannot access the object store at {location.url}{where}: {detail}. Check that the bucket exists and "
        "that the credentials can read and write it (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "storage_options={'key': ..., 'secret': ...}), and for MinIO or another S3-compatible server pass "
        f"storage_options={{'endpoint_url': 'http://host:9000'}} (storage_options given: {options}); see "
        "docs/object_storage.md")


def zarr_store(path, read_only: bool = False):
    """What zarr opens for the store ``path``: the path string (local) or zarr's FsspecStore (URL).

    Examples
    --------
    >>> zarr_store("compendium.zarr")
    'compendium.zarr'
    """
    if isinstance(path, str | os.PathLike) and not isinstance(path, StoreLocation) and "://" not in os.fspath(path):
        return str(path)
    return locate(path).zarr_store(read_only=read_only)


def locate(store, storage_options: dict | None = None) -> StoreLocation:
    """The :class:`StoreLocation` of ``store`` (a path, URL or location).

    ``storage_options`` given for a URL are remembered for it in this process; a later call with
    the URL alone (for instance from ``ds.attrs["source"]``) gets them back.

    Examples
    --------
    >>> locate("s3://b/c.zarr", {"anon": True}) is not None, locate("s3://b/c.zarr").storage_options
    (True, {'anon': True})
    """
    if isinstance(store, StoreLocation):
        if storage_options is None or storage_options == store.storage_options:
            return store
        store = store.url
    if not is_remote(store):
        return StoreLocation(store)
    url = os.fspath(store).rstrip("/")
    if storage_options is not None:
        _OPTIONS[url] = dict(storage_options)
    options = _OPTIONS.get(url, {})
    key = (url, repr(sorted(options.items())))
    if key not in _LOCATIONS:  # one per URL and options: its filesystem and zarr stores are reused
        _LOCATIONS[key] = StoreLocation(url, options)
    return _LOCATIONS[key]


def check_bucket(location: StoreLocation) -> None:
    """Raise ObjectStoreError unless the bucket (or top-level container) of a URL can be reached.

    Local stores pass unchecked (their folder is made when needed).
    """
    if location.is_local:
        return
    bucket = location.root.split("/", 1)[0]
    try:
        found = location.fs.exists(bucket)
    except Exception as err:  # refused connection, bad credentials, ...
        raise access_error(location, err, f"bucket {bucket!r}") from err
    if not found:
        raise access_error(location, FileNotFoundError(f"the bucket {bucket!r} does not exist"),
                           "create the bucket first, or fix its name in the URL")
