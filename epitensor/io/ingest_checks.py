"""What :func:`~epitensor.io.ingest` checks before it writes: its arguments, the store it adds to,
the manifest's labels and files."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from ..exceptions import ArgumentError, DataError, GenomeError, LabelError, SchemaError
from ..genome import Genome
from ..store import TRANSFORMS, StoreLocation, check_bucket, check_track_chunks, open_group
from .peaks import check_peak_value

#: Schedulers :func:`ingest` takes (``None``: the active distributed client, else threads).
SCHEDULERS = ("threads", "processes", "sync", "distributed")


MISSING_CHROMS = ("error", "zero")


#: What :func:`ingest` does with a manifest file that does not exist.
MISSING_FILES = ("error", "report")


def check_arguments(workers, scheduler, transform, missing_chroms, peak_value="coverage", missing_files="error") -> None:
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


def store_exists(store) -> bool:
    """Whether ``store`` holds a store (on an object store: a finished one, see create_store)."""
    if not isinstance(store, StoreLocation):
        return (store / "zarr.json").is_file()
    raw = store.read_bytes("zarr.json")
    if raw is None:
        check_bucket(store)  # no store yet: a missing bucket is named before anything is read
    return raw is not None and b"epitensor_creating" not in raw


# ---------------------------------------------------------------------- validation
def new_genome(assembly, chroms) -> Genome:
    """The genome of a new store: ``assembly`` (a name, a chrom.sizes file or a Genome) on ``chroms``."""
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


def existing_store(store, assembly, chroms, transform):
    """Genome, transform and labels of the existing ``store``, checked against the arguments."""
    root = open_group(store)
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


def check_labels(table, labels, store):
    """Refuse manifest labels that the existing ``store`` does not have."""
    for kind, known in zip(("biosample", "assay"), labels):
        unknown = sorted(set(table[kind]) - set(map(str, known)))
        if unknown:
            raise LabelError(
                f"the manifest has {kind}(s) {unknown[:20]} that store {store} does not have "
                f"(its {kind}s: {list(map(str, known))[:20]}); a store's labels are fixed when it is "
                "created: ingest them into a new store"
            )


def check_peak_store(store, exists, transform, peak_value) -> None:
    """Peak coverage is stored as 0/1; a store holds one kind of peak value."""
    if peak_value == "coverage" and transform != "none":
        where = f"store {store} holds {transform!r}-transformed signal" if exists else f"transform={transform!r} was asked for"
        raise ArgumentError(
            f"{where}, but peak coverage is 0/1 and is stored untransformed: ingest peak coverage "
            "with transform='none' (or None) into a store of transform 'none', or choose a value "
            "column (peak_value='signalValue', 'pValue' or 'qValue')"
        )
    if exists:
        have = open_group(store).attrs.get("peaks")
        if have is not None and have.get("value") != peak_value:
            raise SchemaError(
                f"store {store} holds peak tracks of {have.get('value')!r}; ingest with "
                f"peak_value={have.get('value')!r}, or put {peak_value!r} tracks in another store"
            )


def absent_files(table, local, missing_files) -> set[int]:
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
