"""``ingest``: a folder of bigWig or peak files and a manifest -> an epigenome tensor store.

Plan: validate everything first (manifest, files, contigs and their lengths, labels), so bad input
leaves the store as it was; then one Dask task per (track, chunk of a contig) reads, bins and
writes its own chunk of ``signal`` (chunks never straddle contigs, so tasks need no locks). When
all chunks of a (track, contig) piece are written, a task writes one small completion record for
that piece into the store's ``ingest_progress`` group (one file per piece, renamed into place, so
concurrent writers never touch the same file). The driver marks a track ``observed`` once all its
pieces are recorded. A rerun, after an interruption or a ``kill -9``, ingests only the pieces
without a record and ends with the same store as an uninterrupted run.

Modules: :mod:`~epitensor.io.ingest_checks` (arguments, existing stores, labels, files),
:mod:`~epitensor.io.pieces` (planning), :mod:`~epitensor.io.progress` (completion records),
:mod:`~epitensor.io.ingest_tasks` (the tasks) and :mod:`~epitensor.io.ingest_run` (running them
with Dask).

Peak files (narrowPeak, broadPeak, BED; :mod:`epitensor.io.peaks`) go through the same pieces,
tasks and records: a peak track's piece lists its replicate files, and its chunk task paints the
bins from the parsed peaks instead of reading a bigWig.
"""


from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..exceptions import EpitensorError, MissingFilesWarning
from ..store import create_store, locate, open_zarr_group, set_observed, store_path, sync_metadata
from . import ingest_run
from .ingest_checks import (
    absent_files,
    check_arguments,
    check_labels,
    check_peak_store,
    existing_store,
    new_genome,
    store_exists,
)
from .ingest_tasks import writing
from .manifest import fetch, is_url, read_manifest
from .peaks import PEAK_RULES, is_peak_file
from .pieces import plan_pieces
from .progress import erase_incomplete, mark_observed, pending, prepare_progress


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
        own thread, mostly outside the GIL, so threads scale (``benchmarks/bench_ingest.py``
        measures by how much). ``"processes"`` or a ``distributed`` cluster take a second or two
        to start and add per-task overhead; use them to spread work over machines.
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
        Replace tracks that the store already holds from other sources. A file with the content a
        track was ingested from is the same source wherever it now lies and whatever its
        modification time (copied again, moved or touched): its pieces are not ingested again.
    progress : bool, default True
        Show a progress bar (tqdm) over chunks.
    storage_options : dict, optional
        For a URL: options of its fsspec filesystem (credentials, ``endpoint_url``).

    Returns
    -------
    Path or StoreLocation
        The store (a :class:`~epitensor.store.StoreLocation` for a URL).

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
    check_arguments(workers, scheduler, transform, missing_chroms, peak_value, missing_files)
    store = store_path(locate(store, storage_options))  # a Path, or the location of an object store
    table = read_manifest(manifest)
    has_peaks = bool(table["path"].map(is_peak_file).any())
    exists = store_exists(store)
    if exists:
        genome, transform, labels = existing_store(store, assembly, chroms, transform)
        check_labels(table, labels, store)
    else:
        genome, labels = new_genome(assembly, chroms), None
        transform = transform or ("none" if has_peaks and peak_value == "coverage" else "arcsinh")
    if has_peaks:
        check_peak_store(store, exists, transform, peak_value)
    local = _localise(table, cache_dir, progress)
    absent = absent_files(table, local, missing_files)
    pieces = plan_pieces(table, local, genome, transform, missing_chroms, labels, peak_value, absent)
    if exists:
        todo, redo_tracks = pending(store, pieces, overwrite)  # reads only; may refuse
    else:
        with writing(store):
            _create(store, table, genome, transform)
        todo, redo_tracks = [p.with_digest() for p in pieces], set()
    # validation is over: from here on the store changes
    with writing(store):
        _record_peak_attrs(store, table, has_peaks, peak_value, absent)
        prepare_progress(store, todo)
        if redo_tracks:
            set_observed(store, sorted(redo_tracks), False)
    try:
        ingest_run.run(store, todo, genome, workers=workers, scheduler=scheduler, client=client, progress=progress)
    except BaseException as err:  # a bad file, a full disk, Ctrl-C: no half track is left
        with writing(store):
            erase_incomplete(store, todo, genome)
            mark_observed(store, pieces)  # the tracks that did finish
        if isinstance(err, EpitensorError) or not isinstance(err, Exception):
            raise
        raise EpitensorError(
            f"ingest into {store} failed ({type(err).__name__}: {err}); its unfinished tracks were "
            "erased and the finished ones kept: run the same ingest again to resume"
        ) from err
    with writing(store):
        mark_observed(store, pieces)
    return store


def _localise(table, cache_dir, progress) -> list[str]:
    urls = sorted({p for p in table["path"] if is_url(p)})
    got = {}
    if urls:
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=min(4, len(urls))) as pool:
            for url, path in tqdm(zip(urls, pool.map(lambda u: fetch(u, cache_dir), urls)), total=len(urls), desc="download", disable=not progress):
                got[url] = str(path)
    return [got.get(p, p) for p in table["path"]]


def _create(store, table, genome, transform):
    def labels(kind, meta):
        cols = [kind] + ([meta] if meta in table.columns else [])
        return table[cols].drop_duplicates(kind).reset_index(drop=True)

    create_store(store, labels("biosample", "biosample_summary"), labels("assay", "assay_category"), genome, transform=transform)


def _record_peak_attrs(store, table, has_peaks, peak_value, absent) -> None:
    """Write the store's ``peaks`` rules and its ``absent_files`` (this manifest's tracks replace
    their old entries), and warn about the absent files."""
    root = open_zarr_group(store)
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
