"""Track variables: creating them, and the one reader/writer of their values.

:class:`TrackArray` is the one place that chooses how a track variable's values move: whole chunks
straight to the chunk files in the calling thread (:class:`~epitensor.store.chunk_files.ChunkFiles`,
local stores of the project's layout), anything else through zarr. Region reads
(:mod:`epitensor.store.direct`), ingestion, :class:`TrackWriter` and the stage-2 workers all go
through it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

from ..exceptions import DataError, SchemaError
from ..genome import Genome
from .chunk_files import ChunkFiles
from .location import zarr_store
from .metadata import sync_metadata
from .open import open_group, store_path
from .precision import check_precision, default_precision, parse_precision, precision_of
from .schema import TRACK_VARIABLES, genome_attrs, label_index


def open_zarr_group(path, mode: str = "r+") -> zarr.Group:
    """The store's root group as zarr opens it, without the checks of :func:`open_group`.

    For writers that run after the driver has checked the store (ingestion tasks, stage-2
    workers, record writers); never through consolidated metadata.

    Examples
    --------
    >>> root = open_zarr_group("compendium.zarr")   # doctest: +SKIP
    """
    return zarr.open_group(zarr_store(path, read_only=mode == "r"), mode=mode, use_consolidated=False)


class TrackArray:
    """One ``(biosample, assay, position)`` variable of a store, read and written by track.

    The one place that picks the path of the values: the chunk files in the calling thread where
    the variable has the project's layout on a local store
    (:class:`~epitensor.store.chunk_files.ChunkFiles`), zarr otherwise. Both round written values
    to the variable's storage precision and write byte-identical chunks.

    Parameters
    ----------
    root : zarr.Group
        The store's root group (:func:`open_group` or :func:`open_zarr_group`).
    path : str, Path or StoreLocation
        The store itself (for its chunk files).
    variable : str
        ``signal``, ``imputed`` or ``held_out``.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=1_000, seed=0)
    >>> track = TrackArray.open(ds.attrs["source"], "signal", mode="r")
    >>> track.read(0, 1, 100, 110).shape
    (10,)
    """

    def __init__(self, root: zarr.Group, path, variable: str):
        self.array = root[variable]
        self.files = ChunkFiles.open(path, variable)
        self.precision = precision_of(self.array.attrs)
        self.shape = tuple(self.array.shape)
        self.chunk = int(self.array.chunks[2])

    @classmethod
    def open(cls, path, variable: str, mode: str = "r+") -> TrackArray:
        """``variable`` of the store ``path`` (opened with :func:`open_zarr_group`)."""
        return cls(open_zarr_group(path, mode), path, variable)

    def read(self, b: int, a: int, lo: int, hi: int) -> np.ndarray:
        """float32 values of positions ``[lo, hi)`` of track ``(b, a)`` (NaN where nothing is written)."""
        if self.files is not None:
            return self.files.read(int(b), int(a), lo, hi)
        return self.array[int(b), int(a), lo:hi]

    def read_pairs(self, pairs, lo: int, hi: int) -> np.ndarray:
        """Values ``(len(pairs), hi - lo)`` of the tracks ``pairs`` (rows ``(b, a)``) over ``[lo, hi)``."""
        out = np.empty((len(pairs), hi - lo), dtype=np.float32)
        for i, (b, a) in enumerate(pairs):
            out[i] = self.read(b, a, lo, hi)
        return out

    def read_grid(self, b_rows, a_rows, lo: int, hi: int) -> np.ndarray:
        """Values ``(len(b_rows), len(a_rows), hi - lo)`` of every track of the rows given."""
        if self.files is None:
            return self.array.oindex[np.asarray(b_rows), np.asarray(a_rows), lo:hi]
        out = np.empty((len(b_rows), len(a_rows), hi - lo), dtype=np.float32)
        for i, b in enumerate(b_rows):
            for j, a in enumerate(a_rows):
                out[i, j] = self.read(b, a, lo, hi)
        return out

    def read_at(self, b: int, a: int, positions) -> np.ndarray:
        """Values of track ``(b, a)`` at the scattered store rows ``positions``."""
        return self.array.oindex[int(b), int(a), np.asarray(positions)]

    def clear(self, b: int, a: int, first: int, end: int) -> None:
        """Set positions ``[first, end)`` of track ``(b, a)`` to the fill value (NaN): chunks left all
        fill value are deleted (zarr does it, whatever the layout)."""
        self.array[int(b), int(a), first:end] = np.nan

    def write(self, b: int, a: int, first: int, values) -> None:
        """Write ``values`` at positions ``[first, first + len(values))`` of track ``(b, a)``.

        A range of whole chunks (starting on a chunk, ending on one or at the end of the axis) is
        written chunk file by chunk file where the layout allows; anything else through zarr.
        """
        values = np.asarray(values)
        end = first + values.shape[0]
        size, length = self.chunk, self.shape[2]
        if self.files is None or first % size or (end % size and end != length):
            self.array[int(b), int(a), first:end] = self.precision.round(values)
            return
        for k in range(first // size, -(-end // size)):
            lo, hi = k * size, min((k + 1) * size, end)
            self.files.write(int(b), int(a), k, values[lo - first : hi - first])


def add_track_variable(path, name: str, long_name: str = "", exist_ok: bool = False, *, precision=None) -> zarr.Array:
    """Add a ``(biosample, assay, position)`` float32 variable laid out like ``signal``.

    Used for ``imputed`` and ``held_out``; every chunk starts as fill value (NaN, no bytes).

    Parameters
    ----------
    precision : str, optional
        Storage precision (:mod:`epitensor.store.precision`), recorded in the variable's attrs
        (``precision``, ``precision_bound``). Default: for a new variable
        :func:`~epitensor.store.precision.default_precision` (``imputed``: ``"quantize-2"``,
        ``|stored - x| <= 2**-8`` on the store's scale; ``"float32"`` keeps every bit); an existing variable keeps its own.

    Raises
    ------
    PrecisionError
        ``exist_ok`` and the variable exists at another precision than ``precision``.

    Examples
    --------
    >>> add_track_variable("compendium.zarr", "imputed", exist_ok=True, precision="float32")  # doctest: +SKIP
    """
    root = open_zarr_group(path)
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
        compressors=chosen.compressors(),  # Blosc, then a CRC-32C checked by every read (epitensor.store.damage)
        # the genome on the array too: xr.open_zarr(store).signal then carries it (see genome_index)
        attributes={"long_name": long_name or name, **genome_attrs(attrs), **chosen.attrs()},
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
        self.root = open_group(path, mode="r+")
        self.genome = Genome.from_attrs(self.root.attrs)
        self.biosamples = pd.Index(np.asarray(self.root["biosample"][:], dtype=object))
        self.assays = pd.Index(np.asarray(self.root["assay"][:], dtype=object))
        self._tracks: dict[str, TrackArray] = {}

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
            self.root = open_group(self.path, mode="r+")
        if variable not in self._tracks:
            self._tracks[variable] = TrackArray(self.root, self.path, variable)
        self._tracks[variable].write(b, a, first, values)

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
