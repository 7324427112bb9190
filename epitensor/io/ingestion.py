"""``ingest``: a folder of bigWig or peak files and a manifest -> an epigenome tensor store.

Plan: validate everything first (manifest, files, contigs and their lengths, labels), so bad input
leaves the store as it was; then one Dask task per (track, chunk of a contig) reads, bins and
writes its own chunk of ``signal`` (chunks never straddle contigs, so tasks need no locks). When
all chunks of a (track, contig) piece are written, a task writes one small completion record for
that piece into the store's ``ingest_progress`` group (one file per piece, renamed into place, so
concurrent writers never touch the same file). The driver marks a track ``observed`` once all its
pieces are recorded. A rerun, after an interruption or a ``kill -9``, ingests only the pieces
without a record and ends with the same store as an uninterrupted run.

Peak files (narrowPeak, broadPeak, BED; :mod:`epitensor.io.peaks`) go through the same pieces,
tasks and records: a peak track's piece lists its replicate files, and its chunk task paints the
bins from the parsed peaks instead of reading a bigWig.
"""

from __future__ import annotations

import errno
import json
import numbers
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from ..chunks import ChunkFiles
from ..exceptions import (
    ArgumentError,
    DataError,
    EpitensorError,
    GenomeError,
    LabelError,
    MissingFilesWarning,
    ObjectStoreError,
    SchemaError,
    WriteError,
)
from ..genome import Genome
from ..storage_location import StoreLocation, check_bucket, locate
from ..store import (
    TRANSFORMS,
    _open_group,
    _zarr,
    check_track_chunks,
    create_store,
    label_index,
    remove_interrupted_writes,
    set_observed,
    store_path,
    sync_metadata,
)
from .bigwig import apply_transform, find_non_finite, inspect_bigwig, match_contigs, read_bins
from .manifest import fetch, is_url, read_manifest
from .peaks import PEAK_RULES, cached_peaks, check_peak_value, is_peak_file, peak_bins

#: Group of the store holding one completion record per (track, contig) piece.
PROGRESS_GROUP = "ingest_progress"


@dataclass(frozen=True)
class Piece:
    """One (track, contig) piece of an ingestion: the unit of completion records."""

    biosample: str
    assay: str
    contig: str
    source: str  # manifest path or URL
    stamp: str  # size and modification time of the local file: a changed file is ingested again
    local: str  # local file read
    file_contig: str | None  # contig name in the file; None = zero coverage
    transform: str
    check: bool  # look for NaN/inf while reading (files without a total summary)
    b: int
    a: int
    files: tuple = ()  # peak tracks: the local replicate files (empty for a bigWig track)
    peak_value: str | None = None  # peak tracks: what a bin holds (epitensor.io.peaks)
    peak_missing: str = "error"  # peak tracks: missing_chroms (a file with no row on the assembly)

    @property
    def record_name(self) -> str:
        return f"{self.b}.{self.a}.{self.contig}.json"

    def record(self) -> dict:
        """What the completion record holds; a record that differs means the piece is redone."""
        record = {
            "biosample": self.biosample,
            "assay": self.assay,
            "contig": self.contig,
            "source": self.source,
            "stamp": self.stamp,
            "file_contig": self.file_contig,
            "transform": self.transform,
        }
        if self.files:
            record["peak_value"] = self.peak_value
        return record


def ingest(
    manifest,
    store,
    *,
    assembly=None,
    chroms=None,
    workers: int | None = None,
    scheduler=None,
    client=None,
    transform: str | None = None,
    missing_chroms: str = "error",
    peak_value: str = "coverage",
    missing_files: str = "error",
    cache_dir=None,
    overwrite: bool = False,
    progress: bool = True,
    storage_options: dict | None = None,
) -> Path:
    """Ingest the bigWig or peak tracks of a manifest into an epigenome tensor store (parallel, resumable).

    Parameters
    ----------
    manifest : str, Path or pandas.DataFrame
        An ENCODE2018 experiment list or a table with ``biosample``, ``assay``, ``path`` columns
        (see :func:`epitensor.io.read_manifest`). Paths are local files or URLs; URLs are
        downloaded into ``cache_dir`` first. A path ending in ``.narrowPeak``, ``.broadPeak`` or
        ``.bed`` (optionally ``.gz``) is a peak file; a track may list several peak files
        (replicates), merged as ``peak_value`` says.
    store : str or Path
        The zarr store. Created from the manifest's labels when it does not exist; otherwise the
        tracks are added to it (their labels must exist in it). May be an object-store URL such as
        ``s3://bucket/compendium.zarr`` (``docs/object_storage.md``): chunks and completion
        records are then written through zarr's FsspecStore.
    assembly : str, Path or Genome, optional
        For a new store: ``"hg19"``/``"hg38"``, a ``chrom.sizes`` file, or a :class:`Genome`.
        For an existing store it is optional and, if given, must match the store.
    chroms : list of str or str, optional
        Contigs of a new store (aliases accepted; a comma-separated string is split). Default: all
        contigs of ``assembly``. For an existing store, if given, they must be its contigs.
    workers : int, optional
        Parallel tasks for the local schedulers (default: dask's default, the number of cores).
    scheduler : {"threads", "processes", "sync"} or None
        Local Dask scheduler. Default: the active ``distributed.Client`` if there is one, else
        ``"threads"``. A chunk is read (zlib, numpy) and written (blosc, file I/O) in the task's
        own thread, mostly outside the GIL, so threads scale: on 2 cores, 2 threads ingested 432 Mb
        of tracks 1.55x faster than 1 (``benchmarks/bench_ingest.py``). ``"processes"`` or a
        ``distributed`` cluster take a second or two to start and add per-task overhead; use
        them to spread work over machines.
    client : distributed.Client, optional
        Run the tasks on this cluster (workers must see the same file system).
    transform : {"arcsinh", "none"}, optional
        Default: the store's transform, or for a new store ``"none"`` when peak coverage is
        ingested (0/1 values are not transformed; another transform is refused) and ``"arcsinh"``
        otherwise. Recorded in its attrs.
    missing_chroms : {"error", "zero"}, default "error"
        A contig absent from a bigWig file is an error (listing the file's contigs), or zero
        coverage. For a peak file: a file without a row on any contig of the assembly is an
        error, or no peaks (a store contig without peaks is always 0).
    peak_value : {"coverage", "signalValue", "pValue", "qValue"}, default "coverage"
        What a bin of a peak track holds: 1.0 where a peak overlaps the bin by >= 1 bp and 0.0
        elsewhere, or the largest value of that column (``pValue``/``qValue`` are -log10, as the
        files store them) over the peaks overlapping the bin. Replicate files are merged by the
        union of their peaks (coverage) or the largest value. Recorded in the store's ``peaks``
        attribute with these rules; see :mod:`epitensor.io.peaks`.
    missing_files : {"error", "report"}, default "error"
        A local file of the manifest that does not exist is an error naming it, or, with
        ``"report"``, left out: a track without any of its files stays unobserved, a track with
        some replicates is made of the others. Absent files are then named in a
        :class:`~epitensor.exceptions.MissingFilesWarning` and in the store's ``absent_files``
        attribute (biosample, assay, path).
    cache_dir : str or Path, optional
        Where URLs are downloaded (files already there are used as they are).
    overwrite : bool, default False
        Replace tracks that the store already holds from other sources.
    progress : bool, default True
        Show a progress bar (tqdm) over chunks.
    storage_options : dict, optional
        For a URL: options of its fsspec filesystem (credentials, ``endpoint_url``).

    Returns
    -------
    Path or StoreLocation
        The store (a :class:`~epitensor.storage_location.StoreLocation` for a URL).

    Raises
    ------
    ArgumentError
        ``workers``, ``scheduler``, ``transform``, ``missing_chroms``, ``peak_value`` or
        ``missing_files`` outside their choices, or a transform other than ``"none"`` for peak
        coverage (checked before anything is read or written).
    ManifestError
        A manifest that cannot be read, a missing column, an empty label or a track listed twice.
    DataError
        A file that is missing (without ``missing_files="report"``), empty, not a bigWig, damaged,
        or holds NaN/infinite values; a peak file with wrong columns, a coordinate that is not a
        whole number or a value that is not given (naming the file and line).
    WriteError
        The store cannot be written (a full disk, no permission).
    GenomeError
        A contig missing from a file, contig lengths of another genome build, a peak past the end
        of its contig, or a peak file without a row on a contig of the assembly.
    LabelError
        Labels absent from an existing store, or tracks it already holds (without ``overwrite``).

    Any error while the tracks are read and written (a damaged file, a full disk, an interrupt)
    erases every track left unfinished, chunks and completion records, and keeps the finished
    ones (marked ``observed``); running the same call again resumes.

    Examples
    --------
    >>> import epitensor as et
    >>> et.ingest("manifest.tsv", "compendium.zarr", assembly="hg38", chroms=["chr20", "chr21"])  # doctest: +SKIP
    PosixPath('compendium.zarr')
    >>> da = et.open_dataset("compendium.zarr").signal                                          # doctest: +SKIP
    """
    _check_arguments(workers, scheduler, transform, missing_chroms, peak_value, missing_files)
    store = store_path(locate(store, storage_options))  # a Path, or the location of an object store
    table = read_manifest(manifest)
    has_peaks = bool(table["path"].map(is_peak_file).any())
    exists = _store_exists(store)
    if exists:
        genome, transform, labels = _existing_store(store, assembly, chroms, transform)
        _check_labels(table, labels, store)
    else:
        genome, labels = _new_genome(assembly, chroms), None
        transform = transform or ("none" if has_peaks and peak_value == "coverage" else "arcsinh")
    if has_peaks:
        _check_peak_store(store, exists, transform, peak_value)
    local = _localise(table, cache_dir, progress)
    absent = _absent_files(table, local, missing_files)
    pieces = _plan_pieces(table, local, genome, transform, missing_chroms, labels, peak_value, absent)
    if exists:
        todo, redo_tracks = _pending(store, pieces, overwrite)  # reads only; may refuse
    else:
        with _writing(store):
            _create(store, table, genome, transform)
        todo, redo_tracks = pieces, set()
    # validation is over: from here on the store changes
    with _writing(store):
        _record_peak_attrs(store, table, has_peaks, peak_value, absent)
        _prepare_progress(store, todo)
        if redo_tracks:
            set_observed(store, sorted(redo_tracks), False)
    try:
        _run(store, todo, genome, workers=workers, scheduler=scheduler, client=client, progress=progress)
    except BaseException as err:  # a bad file, a full disk, Ctrl-C: no half track is left
        with _writing(store):
            _erase_incomplete(store, todo, genome)
            _mark_observed(store, pieces)  # the tracks that did finish
        if isinstance(err, EpitensorError) or not isinstance(err, Exception):
            raise
        raise EpitensorError(
            f"ingest into {store} failed ({type(err).__name__}: {err}); its unfinished tracks were "
            "erased and the finished ones kept: run the same ingest again to resume"
        ) from err
    with _writing(store):
        _mark_observed(store, pieces)
    return store


def _store_exists(store) -> bool:
    """Whether ``store`` holds a store (on an object store: a finished one, see create_store)."""
    if not isinstance(store, StoreLocation):
        return (store / "zarr.json").is_file()
    raw = store.read_bytes("zarr.json")
    if raw is None:
        check_bucket(store)  # no store yet: a missing bucket is named before anything is read
    return raw is not None and b"epitensor_creating" not in raw


@contextmanager
def _writing(store, what: str = ""):
    """Turn an OSError of the writes in this block (a full disk, no permission) into a WriteError."""
    try:
        yield
    except OSError as err:
        if isinstance(err, EpitensorError):
            raise
        raise _write_error(store, err, what) from err


def _write_error(store, err: OSError, what: str = "") -> WriteError:
    if err.errno == errno.ENOSPC:
        return WriteError(
            f"disk full writing {store}{what}; free some space and run the same ingest again: it "
            "keeps the tracks that finished and redoes the others (no half track is kept)"
        )
    return WriteError(
        f"cannot write {store}{what}: {err}; check that the store's folder is writable, then run the "
        "same ingest again (it keeps the tracks that finished)"
    )


#: Schedulers :func:`ingest` takes (``None``: the active distributed client, else threads).
SCHEDULERS = ("threads", "processes", "sync", "distributed")
MISSING_CHROMS = ("error", "zero")
#: What :func:`ingest` does with a manifest file that does not exist.
MISSING_FILES = ("error", "report")


def _check_arguments(workers, scheduler, transform, missing_chroms, peak_value="coverage", missing_files="error") -> None:
    """Reject bad arguments before anything is read or written."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        raise ArgumentError(f"workers must be a whole number of at least 1 (or None for one per core), got {workers!r}")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ArgumentError(f"scheduler must be one of {list(SCHEDULERS)} or None (the active distributed client, else threads), got {scheduler!r}")
    if transform is not None and transform not in TRANSFORMS:
        raise ArgumentError(f"transform must be one of {list(TRANSFORMS)} or None (the store's own, arcsinh for a new store), got {transform!r}")
    if missing_chroms not in MISSING_CHROMS:
        raise ArgumentError(
            f"missing_chroms must be one of {list(MISSING_CHROMS)} (a contig absent from a file is an error, "
            f"or zero coverage), got {missing_chroms!r}"
        )
    check_peak_value(peak_value)
    if missing_files not in MISSING_FILES:
        raise ArgumentError(
            f"missing_files must be one of {list(MISSING_FILES)} (a file that does not exist is an error, "
            f"or reported and its track left unobserved), got {missing_files!r}"
        )


# ---------------------------------------------------------------------- validation
def _new_genome(assembly, chroms) -> Genome:
    chroms = _split_chroms(chroms)
    if assembly is None:
        raise GenomeError("the store does not exist yet: pass assembly='hg38' (or 'hg19', a chrom.sizes file or a Genome) to create it")
    if isinstance(assembly, Genome):
        return assembly if chroms is None else assembly.subset(chroms)
    if str(assembly) in ("hg19", "hg38"):
        return Genome.from_assembly(str(assembly), contigs=chroms)
    path = Path(assembly)
    if path.is_file():
        return Genome.from_chrom_sizes(path.name.split(".")[0], path, contigs=chroms)
    raise GenomeError(f"unknown assembly {assembly!r}: use 'hg19', 'hg38', a chrom.sizes file or a Genome")


def _split_chroms(chroms):
    if isinstance(chroms, str):
        chroms = [c.strip() for c in chroms.split(",") if c.strip()]
    return None if chroms is None else list(chroms)


def _existing_store(store, assembly, chroms, transform):
    root = _open_group(store)
    check_track_chunks(root, store, ("signal",))
    genome = Genome.from_attrs(root.attrs)
    have = root.attrs.get("transform")
    if transform is not None and transform != have:
        raise SchemaError(f"store {store} holds {have!r}-transformed signal; ingest with transform={have!r} (or None)")
    name = assembly.assembly if isinstance(assembly, Genome) else assembly
    if name is not None and str(name) in ("hg19", "hg38") and str(name) != genome.assembly:
        raise GenomeError(f"store {store} is on {genome.assembly}, not {name}; use files and a store of one assembly")
    wanted = _split_chroms(chroms)
    if wanted is not None and [genome.resolve(c) for c in wanted] != list(genome.contigs):
        raise GenomeError(
            f"store {store} has contigs {list(genome.contigs)}; a track is always ingested over all of "
            f"them, so chroms={wanted} cannot be used with it (leave chroms out)"
        )
    labels = (list(root["biosample"][:]), list(root["assay"][:]))
    return genome, have, labels


def _check_labels(table, labels, store):
    for kind, known in zip(("biosample", "assay"), labels):
        unknown = sorted(set(table[kind]) - set(map(str, known)))
        if unknown:
            raise LabelError(
                f"the manifest has {kind}(s) {unknown[:20]} that store {store} does not have "
                f"(its {kind}s: {list(map(str, known))[:20]}); a store's labels are fixed when it is "
                "created: ingest them into a new store"
            )


def _check_peak_store(store, exists, transform, peak_value) -> None:
    """Peak coverage is stored as 0/1; a store holds one kind of peak value."""
    if peak_value == "coverage" and transform != "none":
        where = f"store {store} holds {transform!r}-transformed signal" if exists else f"transform={transform!r} was asked for"
        raise ArgumentError(
            f"{where}, but peak coverage is 0/1 and is stored untransformed: ingest peak coverage "
            "with transform='none' (or None) into a store of transform 'none', or choose a value "
            "column (peak_value='signalValue', 'pValue' or 'qValue')"
        )
    if exists:
        have = _open_group(store).attrs.get("peaks")
        if have is not None and have.get("value") != peak_value:
            raise SchemaError(
                f"store {store} holds peak tracks of {have.get('value')!r}; ingest with "
                f"peak_value={have.get('value')!r}, or put {peak_value!r} tracks in another store"
            )


def _absent_files(table, local, missing_files) -> set[int]:
    """Rows of the manifest whose local file does not exist (an error unless reported)."""
    rows = {i for i, file in enumerate(local) if not os.path.exists(file)}
    if rows and missing_files == "error":
        i = min(rows)
        raise DataError(
            f"{local[i]} ({table['biosample'][i]}/{table['assay'][i]}) does not exist"
            + (f" (and {len(rows) - 1} more of the manifest's files)" if len(rows) > 1 else "")
            + "; check the path in the manifest, or pass missing_files='report' to leave the "
            "tracks without a file unobserved"
        )
    return rows


def _record_peak_attrs(store, table, has_peaks, peak_value, absent) -> None:
    """Write the store's ``peaks`` rules and its ``absent_files`` (this manifest's tracks replace
    their old entries), and warn about the absent files."""
    root = zarr.open_group(_zarr(store), mode="r+", use_consolidated=False)
    update = {}
    if has_peaks:
        update["peaks"] = {"value": peak_value, **PEAK_RULES}
    tracks = set(zip(table["biosample"], table["assay"]))
    old = [e for e in root.attrs.get("absent_files", []) if (e["biosample"], e["assay"]) not in tracks]
    new = [{"biosample": table["biosample"][i], "assay": table["assay"][i], "path": table["path"][i]} for i in sorted(absent)]
    if new or old or "absent_files" in root.attrs:
        update["absent_files"] = old + new
    if update:
        root.attrs.update(update)
        sync_metadata(store)
    if new:
        shown = "; ".join(f"{e['biosample']}/{e['assay']}: {e['path']}" for e in new[:10])
        warnings.warn(
            f"{len(new)} file(s) of the manifest do not exist and were left out ({shown}"
            f"{' ...' if len(new) > 10 else ''}); tracks without any file stay unobserved. "
            f"The list is in the store's attrs['absent_files']",
            MissingFilesWarning,
            stacklevel=3,
        )


def _localise(table, cache_dir, progress) -> list[str]:
    urls = sorted({p for p in table["path"] if is_url(p)})
    got = {}
    if urls:
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=min(4, len(urls))) as pool:
            for url, path in tqdm(zip(urls, pool.map(lambda u: fetch(u, cache_dir), urls)), total=len(urls), desc="download", disable=not progress):
                got[url] = str(path)
    return [got.get(p, p) for p in table["path"]]


def _plan_pieces(table, local, genome, transform, missing, labels, peak_value="coverage", absent=frozenset()) -> list[Piece]:
    if labels is None:
        b_names, a_names = list(pd.unique(table["biosample"])), list(pd.unique(table["assay"]))
    else:
        b_names, a_names = labels
    b_idx = label_index(b_names, list(table["biosample"]), "biosample")
    a_idx = label_index(a_names, list(table["assay"]), "assay")
    pieces = []
    replicates: dict[tuple, list[int]] = {}
    for i, path in enumerate(table["path"]):
        if is_peak_file(path):
            replicates.setdefault((table["biosample"][i], table["assay"][i]), []).append(i)
    for rows in replicates.values():
        pieces += _plan_peak_track(table, local, genome, transform, missing, peak_value, [i for i in rows if i not in absent], int(b_idx[rows[0]]), int(a_idx[rows[0]]))
    for i, (row, file, b, a) in enumerate(zip(table.itertuples(index=False), local, b_idx, a_idx)):
        if i in absent or is_peak_file(row.path):
            continue
        info = inspect_bigwig(file)
        if info.finite is False:
            where = find_non_finite(file)
            at = f" (first at {where[0]}:{where[1]:,}, value {where[2]})" if where else ""
            raise DataError(f"{file} ({row.biosample}/{row.assay}) holds NaN or infinite values{at}; a track must hold finite numbers. Fix or regenerate the file")
        names = match_contigs(info, genome, missing)
        st = os.stat(file)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        for contig in genome.contigs:
            pieces.append(Piece(row.biosample, row.assay, contig, row.path, stamp, file, names[contig], transform, info.finite is None, int(b), int(a)))
    return pieces


def _plan_peak_track(table, local, genome, transform, missing, peak_value, rows, b, a) -> list[Piece]:
    """The pieces of one peak track made of the replicate files of manifest ``rows`` (every file
    parsed here, so a bad line is reported before the store changes)."""
    if not rows:  # every file of the track is absent (and reported)
        return []
    files = tuple(local[i] for i in sorted(rows, key=lambda i: table["path"][i]))
    for file in files:
        cached_peaks(file, genome, peak_value, missing)  # validates; the chunk tasks reuse the parse
    sources = " + ".join(sorted(table["path"][i] for i in rows))
    stamp = " + ".join(f"{st.st_size}:{st.st_mtime_ns}" for st in map(os.stat, files))
    biosample, assay = table["biosample"][rows[0]], table["assay"][rows[0]]
    return [
        Piece(biosample, assay, contig, sources, stamp, files[0], contig, transform, False, b, a, files, peak_value, missing)
        for contig in genome.contigs
    ]


def _create(store, table, genome, transform):
    def labels(kind, meta):
        cols = [kind] + ([meta] if meta in table.columns else [])
        return table[cols].drop_duplicates(kind).reset_index(drop=True)

    create_store(store, labels("biosample", "biosample_summary"), labels("assay", "assay_category"), genome, transform=transform)


# ---------------------------------------------------------------------- completion records
def _progress_dir(store) -> Path:
    return Path(store) / PROGRESS_GROUP


def _prepare_progress(store, todo):
    root = zarr.open_group(_zarr(store), mode="r+", use_consolidated=False)
    if PROGRESS_GROUP not in root:
        root.create_group(PROGRESS_GROUP)
        sync_metadata(store)
    location = locate(store)
    if location.is_local:  # an object store has no temporary files: one PUT per record
        for leftover in _progress_dir(store).glob(".*.tmp"):  # from a run killed mid-write
            leftover.unlink()
        remove_interrupted_writes(store)
    for p in todo:  # a stale record must not survive a piece that is redone
        location.delete(f"{PROGRESS_GROUP}/{p.record_name}")


def completed_pieces(store) -> dict[str, dict]:
    """Completion records of a store: file name -> record (biosample, assay, contig, source, ...)."""
    location = locate(store)
    if not location.is_local:  # one fresh listing, records fetched concurrently
        names = [f"{PROGRESS_GROUP}/{n}" for n in location.list(PROGRESS_GROUP) if n.endswith(".json") and "/" not in n
                 and n != "zarr.json"]
        out = {}
        for name, raw in sorted(location.read_many(names).items()):
            try:
                out[name.rpartition("/")[2]] = json.loads(raw)
            except ValueError:
                continue  # an unreadable record counts as not complete
        return out
    folder = _progress_dir(store)
    if not folder.is_dir():
        return {}
    out = {}
    for file in sorted(folder.glob("*.json")):
        if file.name == "zarr.json":
            continue
        try:
            out[file.name] = json.loads(file.read_text())
        except (OSError, ValueError):
            continue  # an unreadable record counts as not complete
    return out


def _pending(store, pieces, overwrite):
    done = completed_pieces(store)
    root = zarr.open_group(_zarr(store, read_only=True), mode="r")
    observed = root["observed"][:]
    by_track: dict[tuple, list[Piece]] = {}
    for p in pieces:
        by_track.setdefault((p.biosample, p.assay), []).append(p)
    todo, redo, clash = [], set(), []
    for track, ps in by_track.items():
        current = [done.get(p.record_name) == p.record() for p in ps]
        if all(current):
            continue
        if observed[ps[0].b, ps[0].a]:
            if not overwrite:
                clash.append(track)
                continue
            redo.add(track)
        todo.extend(p for p, ok in zip(ps, current) if not ok)
    if clash:
        raise LabelError(
            f"store {store} already holds track(s) {clash[:10]} from other files or settings; pass "
            "overwrite=True to replace them, or leave them out of the manifest"
        )
    return todo, redo


def _erase_incomplete(store, todo, genome):
    """Remove every piece (chunks and records) of the tracks this run left incomplete."""
    done = completed_pieces(store)
    incomplete = {(p.b, p.a) for p in todo if done.get(p.record_name) != p.record()}
    arr = zarr.open_array(_zarr(store), path="signal", mode="r+")
    for p in todo:
        if (p.b, p.a) in incomplete:
            locate(store).delete(f"{PROGRESS_GROUP}/{p.record_name}")
            for lo, _, first, end in _chunks_of(p, genome):
                arr[p.b, p.a, first + lo : end] = np.nan  # all-NaN chunks are deleted by zarr


def _write_record(store, piece: dict, *chunks_done) -> str:
    p = Piece(**piece)
    try:  # whole or not at all, after every chunk of the piece is stored (a rename; on an object store one PUT)
        locate(store).write_bytes(f"{PROGRESS_GROUP}/{p.record_name}", json.dumps(p.record(), sort_keys=True).encode())
    except ObjectStoreError:  # already names the store and the fix
        raise
    except OSError as err:
        raise _write_error(store, err, f" ({_track(p)}, {p.contig})") from err
    return p.record_name


def _track(p: Piece) -> str:
    return f"track {p.biosample}/{p.assay} ({p.source})"




def _read_failed(p: Piece, lo_bin: int, hi_bin: int, bin_size: int, err: Exception) -> EpitensorError:
    where = f"{p.contig}:{lo_bin * bin_size:,}-{hi_bin * bin_size:,}"
    if isinstance(err, EpitensorError):  # already says what is wrong with the file
        return type(err)(f"{_track(p)}: {err}")
    return DataError(
        f"{p.local} ({_track(p)}): cannot read {where} ({type(err).__name__}: {err}); the file is "
        "damaged (truncated or corrupt). Download or regenerate it; nothing of this track is kept"
    )


def _mark_observed(store, pieces):
    done = completed_pieces(store)
    by_track: dict[tuple, bool] = {}
    for p in pieces:
        ok = done.get(p.record_name) == p.record()
        by_track[(p.biosample, p.assay)] = by_track.get((p.biosample, p.assay), True) and ok
    set_observed(store, [t for t, ok in by_track.items() if ok], True)


# ---------------------------------------------------------------------- tasks
def _ingest_chunk(store: str, shape: tuple, piece: dict, lo_bin: int, hi_bin: int, first_pos: int, chunk_end: int, length: int, bin_size: int, genome: Genome | None = None) -> int:
    """Read bins ``[lo_bin, hi_bin)`` of one piece and write its whole store chunk."""
    p = Piece(**piece)
    try:
        if p.files:  # a peak track: its replicate files painted onto the bins
            bins = peak_bins(p.files, genome, p.contig, lo_bin, hi_bin, peak_value=p.peak_value, missing_chroms=p.peak_missing)
            values = apply_transform(bins, p.transform)
        else:
            values = read_bins(p.local, p.file_contig, length, lo_bin, hi_bin, bin_size=bin_size, transform=p.transform, check=p.check)
    except Exception as err:  # pyBigWig's RuntimeError, zlib, OSError ...: one error naming the track
        raise _read_failed(p, lo_bin, hi_bin, bin_size, err) from err
    out = np.full(chunk_end - (first_pos + lo_bin), np.nan, dtype=np.float32)
    out[: values.shape[0]] = values
    try:
        arr, files = _signal_array(store, shape)
        if files is not None:  # the whole chunk, written in this thread (see epitensor.chunks)
            files.write(p.b, p.a, (first_pos + lo_bin) // files.chunk, out)
        else:
            arr[p.b, p.a, first_pos + lo_bin : chunk_end] = out
    except OSError as err:
        raise _write_error(store, err, f" ({_track(p)}, {p.contig})") from err
    return hi_bin - lo_bin


_ARRAYS: dict[tuple, tuple[zarr.Array, ChunkFiles | None]] = {}


def _signal_array(store: str, shape: tuple) -> tuple[zarr.Array, ChunkFiles | None]:
    """The store's ``signal`` array and its chunk files, opened once per worker process (opening
    costs as much as a write)."""
    key = (store, tuple(shape))
    found = _ARRAYS.get(key)
    if found is None:
        arr = zarr.open_array(_zarr(store), path="signal", mode="r+")
        if tuple(arr.shape) != tuple(shape):
            raise SchemaError(f"store {store} changed while ingesting: signal has shape {arr.shape}, expected {shape}")
        _ARRAYS.clear()  # keep one store's array per process
        found = _ARRAYS[key] = (arr, ChunkFiles.open(store, "signal"))
    return found


def _chunks_of(piece: Piece, genome: Genome):
    first, end = genome.contig_bins(piece.contig)
    n = end - first
    for lo in range(0, n, genome.chunk_bins):
        hi = min(lo + genome.chunk_bins, n)
        yield lo, hi, first, min(first + lo + genome.chunk_bins, genome.n_positions)


def _graph(store, todo, genome):
    from dask import delayed

    chunk_tasks, record_tasks = [], []
    length = {c: genome.length(c) for c in genome.contigs}
    shape = tuple(zarr.open_array(_zarr(store, read_only=True), path="signal", mode="r").shape)
    target = store if isinstance(store, StoreLocation) else str(store)  # what the tasks open
    for j, p in enumerate(todo):
        spec = asdict(p)
        mine = [
            delayed(_ingest_chunk, pure=False)(target, shape, spec, lo, hi, first, end, length[p.contig], genome.bin_size, genome if p.files else None, dask_key_name=f"ingest-chunk-{j}-{lo}")
            for lo, hi, first, end in _chunks_of(p, genome)
        ]
        chunk_tasks += mine
        record_tasks.append(delayed(_write_record, pure=False)(target, spec, *mine, dask_key_name=f"ingest-record-{j}"))
    return chunk_tasks, record_tasks


def _active_client():
    if "distributed" not in sys.modules:  # no client can exist; importing distributed costs ~1 s
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _run(store, todo, genome, *, workers, scheduler, client, progress):
    if not todo:
        return
    from tqdm import tqdm

    if client is None and scheduler in (None, "distributed"):
        client = _active_client()
    total = sum(1 for p in todo for _ in _chunks_of(p, genome))
    with tqdm(total=total, desc="ingest", unit="chunk", disable=not progress) as bar:
        for batch in _batches(todo, genome):
            chunk_tasks, record_tasks = _graph(store, batch, genome)
            if client is not None:
                _run_distributed(client, chunk_tasks, record_tasks, bar)
            else:
                _run_local(record_tasks, scheduler or "threads", workers, bar)


#: Most chunk tasks in one Dask graph: a genome-wide compendium (thousands of tracks x 3,000
#: chunks) runs as a sequence of graphs of this size, so the scheduler's memory stays bounded.
BATCH_CHUNKS = 20_000


def _batches(todo, genome):
    batch, size = [], 0
    for p in todo:
        n = sum(1 for _ in _chunks_of(p, genome))
        if batch and size + n > BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += n
    if batch:
        yield batch


def _run_local(record_tasks, scheduler, workers, bar):
    import dask
    from dask.callbacks import Callback

    class _Bar(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if str(key).startswith("ingest-chunk"):
                bar.update(1)

    kwargs = {"num_workers": workers} if workers else {}
    if scheduler == "threads":
        # our own pool, shut down (waiting for running tasks) before returning or raising, so
        # nothing is still writing when a failed run cleans up after itself
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, _Bar():
            dask.compute(*record_tasks, scheduler="threads", pool=pool)
        return
    with _Bar():  # the processes scheduler shuts its pool down itself
        dask.compute(*record_tasks, scheduler=scheduler, **kwargs)


def _run_distributed(client, chunk_tasks, record_tasks, bar):
    from distributed import as_completed

    futures = client.compute(chunk_tasks + record_tasks)
    first_error = None
    for future in as_completed(futures):
        if future.status == "error":
            first_error = first_error or future
        elif str(future.key).startswith("ingest-chunk"):
            bar.update(1)
    if first_error is not None:
        first_error.result()  # raises the task's error
