"""The pieces of an ingestion: one (track, contig) per piece, planned and checked before anything is written."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, replace

import pandas as pd

from ..exceptions import DataError
from ..genome import Genome
from ..store import label_index
from .bigwig import find_non_finite, inspect_bigwig, match_contigs
from .peaks import cached_peaks, is_peak_file


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
    digest: str | None = None  # sha256 of the files' content, set on the pieces about to be ingested

    @property
    def local_files(self) -> tuple:
        """The local files this piece reads (a peak track's replicates, else the one bigWig)."""
        return self.files or (self.local,)

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
        if self.digest is not None:
            record["digest"] = self.digest
        return record

    def with_digest(self) -> Piece:
        """This piece with the content digest of its files, which its completion record keeps."""
        return replace(self, digest=files_digest(self.local_files, self.stamp))

    def is_recorded(self, record: dict | None) -> bool:
        """Whether the completion record ``record`` is this piece's: the same record (the content
        digest aside), or one that differs only in where the files are and their stamp while the
        files hold the content it recorded (the same files copied again, moved or touched). The
        record keeps the source it was ingested from."""
        if record is None:
            return False
        mine = {k: v for k, v in self.record().items() if k != "digest"}
        theirs = {k: v for k, v in record.items() if k != "digest"}
        if theirs == mine:
            return True
        if record.get("digest") is None:  # a record written before digests: the stamp decides
            return False
        where = ("source", "stamp")
        same = {k: v for k, v in theirs.items() if k not in where} == {k: v for k, v in mine.items() if k not in where}
        return same and record["digest"] == files_digest(self.local_files, self.stamp)


@functools.lru_cache(maxsize=1024)
def files_digest(files: tuple, stamp: str) -> str:
    """sha256 over the content of ``files`` in order (``stamp``, their sizes and modification
    times, keys the cache: a changed file is read again)."""
    h = hashlib.sha256()
    for file in files:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def plan_pieces(table, local, genome, transform, missing, labels, peak_value="coverage", absent=frozenset()) -> list[Piece]:
    """Every piece of the manifest ``table`` (its files at ``local``): bigWig files inspected and
    peak files parsed here, so a bad file is reported before the store changes."""
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


def chunks_of(piece: Piece, genome: Genome):
    """``(lo, hi, first, end)`` of each store chunk of ``piece``: bins ``[lo, hi)`` of its contig,
    the contig's first genome-wide bin and the end of the chunk on the position axis."""
    first, end = genome.contig_bins(piece.contig)
    n = end - first
    for lo in range(0, n, genome.chunk_bins):
        hi = min(lo + genome.chunk_bins, n)
        yield lo, hi, first, min(first + lo + genome.chunk_bins, genome.n_positions)


def describe(p: Piece) -> str:
    """The track of piece ``p`` and its source, for messages."""
    return f"track {p.biosample}/{p.assay} ({p.source})"
