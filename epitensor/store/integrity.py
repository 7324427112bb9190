"""Checking every chunk of a store, like ``git fsck``: :func:`check_store` and ``epitensor check``.

Reads already refuse damaged chunks (:mod:`epitensor.store.damage`: checksums, Blosc headers, required
chunks), but only those they touch. :func:`check_store` reads every chunk file of every array and
lists what is damaged, so a store copied, restored from a backup or written on a failing disk can
be verified before a long training run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from ..exceptions import ArgumentError, CorruptChunkError
from .checked import WHOLE_TRACKS, required_chunks
from .chunk_files import ChunkFiles
from .damage import MISSING, ChunkDamage, ChunkLayout, track_of
from .location import is_remote
from .open import open_group
from .schema import LABEL_ARRAYS, TRACK_VARIABLES

COLUMNS = ["variable", "biosample", "assay", "chunk", "problem"]


def check_store(path, progress: bool = True) -> pd.DataFrame:
    """Verify every chunk of every array of a store; return the damaged ones.

    Each chunk file must pass its checksum (or, in stores written before checksums, its Blosc
    header check), decode, and hold a whole chunk. Chunks that must exist must be there: every
    chunk that overlaps a contig of an observed ``signal`` track or a written ``held_out`` track,
    and every chunk of the label arrays. A deleted ``observed`` chunk cannot be told from an
    all-False one (zarr writes none), nor a deleted genome-factor chunk from unfitted positions.

    Parameters
    ----------
    path : str or Path
        An epitensor store.
    progress : bool, default True
        Show a progress bar (tqdm) over chunk files on stores with many of them.

    Returns
    -------
    pandas.DataFrame
        One row per damaged chunk: ``variable``, ``biosample`` and ``assay`` (labels of the track,
        None for arrays that are not tracks), ``chunk`` (the chunk file, relative to the store)
        and ``problem``. Empty when the store is intact.

    Raises
    ------
    StoreNotFoundError
        ``path`` is not an epitensor store.
    ArgumentError
        ``path`` is an object-store URL (only local stores are checked).

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=3, n_assays=2, n_positions=2_000, seed=0)
    >>> et.check_store(ds.attrs["source"], progress=False).empty
    True
    """
    if is_remote(path):
        raise ArgumentError(f"check_store reads the chunk files of a local store; {path} is on an object store. "
                            "Copy it to a local folder first (e.g. `aws s3 sync`), or read it: zarr's crc32c "
                            "codec refuses a damaged chunk there")
    root = Path(os.fspath(path))
    open_group(root)  # clear errors for a wrong path
    arrays = _arrays(root)
    rows = []
    files = [(name, f) for name in arrays for f in _chunk_files(root / name)]
    checks = {name: _ArrayCheck(root, name, meta) for name, meta in arrays.items()}
    from tqdm.auto import tqdm

    for name, file in tqdm(files, desc="checking chunks", unit="chunk", disable=not progress or len(files) < 2_000):
        problem = checks[name].problem(file)
        if problem:
            rows.append(_row(root, name, file.relative_to(root).as_posix(), problem))
    for name, key, problem in _missing_chunks(root, arrays):
        rows.append(_row(root, name, key, problem))
    return pd.DataFrame(rows, columns=COLUMNS)


def _arrays(root: Path) -> dict[str, dict]:
    """Array path (relative to the store) -> its zarr.json, for every array of the store."""
    out = {}
    for meta_file in sorted(root.rglob("zarr.json")):
        try:
            meta = json.loads(meta_file.read_bytes())
        except (OSError, ValueError):
            continue
        if meta.get("node_type") == "array":
            out[meta_file.parent.relative_to(root).as_posix()] = meta
    return out


def _chunk_files(folder: Path):
    chunks = folder / "c"
    if chunks.is_dir():
        yield from sorted(f for f in chunks.rglob("*") if f.is_file() and not f.name.endswith(".partial"))


def _coords(folder: Path, file: Path) -> tuple[int, ...] | None:
    parts = file.relative_to(folder / "c").parts
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


class _ArrayCheck:
    """Checks the chunk files of one array (its layout and readers opened once)."""

    def __init__(self, root: Path, name: str, meta: dict):
        self.root, self.name = root, name
        self.layout = ChunkLayout(meta)
        self.files = ChunkFiles.open(root, name) if len(meta.get("shape", ())) == 3 else None
        self._array = None

    def problem(self, file: Path) -> str | None:
        """What is wrong with one chunk file, or None."""
        coords = _coords(self.root / self.name, file)
        if coords is None:
            return None  # not a chunk of the default key encoding: leave it to zarr
        raw = file.read_bytes()
        try:
            self.layout.payload(raw)
        except ChunkDamage as err:
            return str(err)
        try:
            if self.files is not None:
                self.files.decode(*coords, raw)
            else:
                if self._array is None:
                    self._array = zarr.open_array(str(self.root), path=self.name, mode="r")
                array = self._array
                if len(coords) != array.ndim or any(c >= n for c, n in zip(coords, array.cdata_shape)):
                    return None  # outside the grid (left by a shrink): never read
                array.blocks[coords]
        except Exception as err:  # CorruptChunkError from ChunkFiles, codec errors from zarr
            return getattr(err, "problem", None) or f"it does not decode ({err})"
        return None


def _missing_chunks(root: Path, arrays: dict[str, dict]):
    """``(array, key, problem)`` of every chunk that must exist and does not."""
    for name in WHOLE_TRACKS:
        rule = required_chunks(root, name) if name in arrays else None
        if rule is not None:
            try:
                yield from _missing_track_chunks(root, name, rule)
            except CorruptChunkError:
                pass  # observed is damaged, and reported: which tracks are observed is unknown
    yield from _missing_label_chunks(root, arrays)


def _missing_track_chunks(root: Path, name: str, rule):
    array = zarr.open_array(str(root), path=name, mode="r")
    n_b, n_a, _ = array.shape
    ks = np.flatnonzero(rule.inside)
    for b in range(n_b):
        for a in range(n_a):
            folder = (root / name / array.metadata.encode_chunk_key((b, a, 0))).parent
            names = {e.name for e in os.scandir(folder) if e.is_file()} if folder.is_dir() else set()
            if not names and name != "signal":
                continue  # an absent track
            for k in ks:
                if str(k) not in names and rule.required(b, a, int(k)):
                    yield name, f"{name}/{array.metadata.encode_chunk_key((b, a, int(k)))}", MISSING


def _missing_label_chunks(root: Path, arrays: dict[str, dict]):
    for name in LABEL_ARRAYS:
        if name not in arrays:
            continue
        array = zarr.open_array(str(root), path=name, mode="r")
        for coords in np.ndindex(*array.cdata_shape):
            key = f"{name}/{array.metadata.encode_chunk_key(coords)}"
            if (root / key).is_file():
                continue
            yield name, key, "the file is missing (labels are never empty)"


def _row(root: Path, name: str, key: str, problem: str) -> dict:
    biosample, assay = (track_of(root, key) or (None, None)) if name in TRACK_VARIABLES else (None, None)
    return {"variable": name, "biosample": biosample, "assay": assay, "chunk": key, "problem": problem}
