"""The ENCODE peaks compendium: peak calls of 6 cell lines x 200 assays on hg19 chr21 and chr22.

ENCODE and Roadmap Epigenomics peak calls (TF ChIP-seq, histone ChIP-seq, DNase-seq, FAIRE-seq)
collected by the TargetFinder repository (github.com/shwhalen/targetfinder, GPL-3.0), one folder
per cell line with a ``filenames.csv`` (columns ``name``, ``filename``, ``source``, ``accession``)
and the peak files. 17 listed files are absent from that repository; they are reported and their
tracks stay unobserved (7 assays have no file at all and are left out of the store). About 68% of
the (cell line, assay) tracks are missing: ENCODE's missingness pattern, for imputing TF binding in
a held-out cell line (the ENCODE-DREAM setting of the Avocado paper).

The shared copy (``../shared/data/encode_peaks``) holds the rows of each file on chr21 and chr22;
a download fetches the original genome-wide files, keeps those rows and checks their sha256
against the registry shipped with epitensor (``epitensor/data/encode_peaks.sha256``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import shutil
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import pandas as pd
import xarray as xr

from ..exceptions import DownloadError, MissingFilesWarning
from ..genome import Genome
from ..store import open_dataset, open_zarr_group, sync_metadata

#: The six cell lines.
CELL_LINES = ("GM12878", "HUVEC", "HeLa-S3", "IMR90", "K562", "NHEK")
#: Contigs of the compendium (hg19).
CONTIGS = ("chr21", "chr22")
#: TargetFinder commit the files are downloaded from (its data folders are unchanged after it).
_COMMIT = "71786e9661c9c00a1ad88366a5066df93633e663"
BASE_URL = f"https://github.com/shwhalen/targetfinder/raw/{_COMMIT}/"


def registry() -> dict[str, str]:
    """``{cell}/filenames.csv`` or ``{cell}/{filename}.gz`` -> sha256 (of the csv as is, of a peak
    file's decompressed rows on chr21 and chr22).

    Examples
    --------
    >>> len([k for k in registry() if k.endswith("filenames.csv")])
    6
    """
    text = resources.files("epitensor.data").joinpath("encode_peaks.sha256").read_text()
    return {name: digest for digest, name in (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))}


def find_local_copy() -> Path | None:
    """Folder of a local copy of the compendium: ``EPITENSOR_DATA`` (the folder itself or a data
    folder with an ``encode_peaks`` subfolder), else ``../shared/data/encode_peaks`` beside the
    current directory or its parents, else None."""
    candidates = []
    root = os.environ.get("EPITENSOR_DATA")
    if root:
        candidates += [Path(root), Path(root) / "encode_peaks"]
    here = Path.cwd().resolve()
    candidates += [p / "shared" / "data" / "encode_peaks" for p in (here, *here.parents)]
    for cand in candidates:
        if (cand / CELL_LINES[0] / "filenames.csv").is_file():
            return cand
    return None


def encode_peaks_manifest(path) -> pd.DataFrame:
    """The manifest of a copy of the compendium: one row per listed file.

    Parameters
    ----------
    path : str or Path
        Folder with one subfolder per cell line, each with ``filenames.csv`` and the ``.gz`` files.

    Returns
    -------
    pandas.DataFrame
        Columns ``biosample`` (cell line), ``assay``, ``path`` (``{cell}/{filename}.gz``, absolute),
        ``accession``, ``source``, ``exists``.

    Examples
    --------
    >>> m = encode_peaks_manifest("../shared/data/encode_peaks")  # doctest: +SKIP
    >>> len(m), int(m.exists.sum())                               # doctest: +SKIP
    (402, 385)
    """
    folder = Path(path)
    rows = []
    for cell in CELL_LINES:
        listing = folder / cell / "filenames.csv"
        if not listing.is_file():
            raise DownloadError(f"{listing} does not exist; {folder} is not a copy of the ENCODE peaks compendium (a folder per cell line: {list(CELL_LINES)})")
        for row in csv.DictReader(io.StringIO(listing.read_text())):
            file = (folder / cell / f"{row['filename']}.gz").resolve()
            rows.append({"biosample": cell, "assay": row["name"], "path": str(file), "accession": row["accession"], "source": row["source"], "exists": file.is_file()})
    return pd.DataFrame(rows)


def fetch_encode_peaks(cache_dir=None, progress: bool = True) -> Path:
    """Download the compendium (chr21 and chr22 rows of each file, sha256-checked) and return its folder.

    Files already in ``cache_dir`` are not downloaded again.

    Parameters
    ----------
    cache_dir : str or Path, optional
        Default: the user cache (``pooch.os_cache("epitensor")/encode_peaks``).
    progress : bool, default True
        Show a progress bar over files.

    Raises
    ------
    DownloadError
        A file that cannot be downloaded, or whose chr21/chr22 rows fail their sha256 check.

    Examples
    --------
    >>> fetch_encode_peaks()  # doctest: +SKIP
    PosixPath('.../epitensor/encode_peaks')
    """
    import pooch
    from tqdm import tqdm

    from ..io.manifest import fetch

    cache = Path(cache_dir) if cache_dir else Path(pooch.os_cache("epitensor")) / "encode_peaks"
    wanted = registry()
    cache.mkdir(parents=True, exist_ok=True)
    for name in tqdm(sorted(wanted), desc="encode_peaks", disable=not progress):
        target = cache / name
        if target.is_file():
            continue
        cell, file = name.split("/")
        remote = f"{cell}/peaks/{file}"
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            try:
                raw = Path(fetch(BASE_URL + remote, cache_dir=tmp, retries=2)).read_bytes()
                text = raw if name.endswith(".csv") else _rows_on_contigs(gzip.decompress(raw))
            except (OSError, EOFError) as err:  # DownloadError (an OSError) or a damaged gzip
                reason = str(err).split(";")[0]
                raise DownloadError(f"{reason}; check the network, or point EPITENSOR_DATA at a copy of the compendium (path=... works too)") from None
        if hashlib.sha256(text).hexdigest() != wanted[name]:
            raise DownloadError(f"{BASE_URL}{remote} does not match its sha256 in epitensor's registry; the source changed or the download is damaged: try again, or use a local copy (path=...)")
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.part")
        part.write_bytes(text if name.endswith(".csv") else gzip.compress(text, mtime=0))
        os.replace(part, target)
    return cache


def _rows_on_contigs(text: bytes) -> bytes:
    """The lines of a peak file on :data:`CONTIGS`, in the file's order."""
    keep = tuple(f"{c}\t".encode() for c in CONTIGS)
    return b"".join(line for line in text.splitlines(keepends=True) if line.startswith(keep))


def encode_peaks(
    store=None,
    *,
    path=None,
    peak_value: str = "coverage",
    chroms=CONTIGS,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Build (or reopen) a store of the ENCODE peaks compendium: 6 cell lines x 200 assays.

    Parameters
    ----------
    store : str or Path, optional
        Where to write the zarr store; default: a new temporary directory. An existing store is
        completed where an earlier build stopped (a finished one is reopened as it is).
    path : str or Path, optional
        A copy of the compendium (a folder per cell line). Default: :func:`find_local_copy`
        (``EPITENSOR_DATA`` or ``../shared/data/encode_peaks``), else a download
        (:func:`fetch_encode_peaks`). Local files are read without hash checks.
    peak_value : {"coverage", "signalValue", "pValue", "qValue"}, default "coverage"
        What a bin holds (see :func:`epitensor.ingest`). ``signalValue`` is given by every file;
        ``pValue`` and ``qValue`` are not (-1) in many, which is an error naming the file.
    chroms : sequence of str, default ("chr21", "chr22")
        Contigs of the store (a subset of chr21 and chr22).
    overwrite : bool, default False
        Rebuild an existing store from scratch.
    workers : int, optional
        Threads of the ingest.
    progress : bool, default False
        Show progress bars.

    Returns
    -------
    xarray.Dataset
        The opened store (genome hg19, the chosen contigs). ``ds.attrs["absent_files"]`` lists the
        listed files that do not exist (biosample, assay, path), also named in a
        :class:`~epitensor.exceptions.MissingFilesWarning`; their tracks are unobserved.

    Examples
    --------
    >>> ds = encode_peaks(path="../shared/data/encode_peaks")  # doctest: +SKIP
    >>> ds.signal.shape, len(ds.attrs["absent_files"])          # doctest: +SKIP
    ((6, 200, 4012183), 17)
    """
    from ..io.ingestion import ingest

    folder = Path(path) if path is not None else (find_local_copy() or fetch_encode_peaks(progress=progress))
    table = encode_peaks_manifest(folder)
    with_files = set(table.loc[table.exists, "assay"])
    left_out = table[~table.assay.isin(with_files)]  # assays without any file: no label
    store = Path(store) if store is not None else Path(tempfile.mkdtemp(prefix="epitensor-encode-peaks-")) / "encode_peaks.zarr"
    if overwrite and store.exists():
        shutil.rmtree(store)
    exists = (store / "zarr.json").is_file()
    genome = Genome.from_assembly("hg19", contigs=list(chroms))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingFilesWarning)
        ingest(table[table.assay.isin(with_files)].drop(columns="exists"), store, assembly=None if exists else genome,
               peak_value=peak_value, missing_files="report", workers=workers, progress=progress)
    for w in caught:
        if not issubclass(w.category, MissingFilesWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    root = open_zarr_group(store)
    absent = list(root.attrs.get("absent_files", []))
    known = {(e["biosample"], e["assay"], e["path"]) for e in absent}
    absent += [{"biosample": r.biosample, "assay": r.assay, "path": r.path} for r in left_out.itertuples() if (r.biosample, r.assay, r.path) not in known]
    root.attrs["absent_files"] = absent
    sync_metadata(store)
    if absent:
        warnings.warn(
            f"{len(absent)} file(s) listed in the ENCODE peaks compendium do not exist in {folder} (they are absent "
            "from the source repository too); their tracks are unobserved. See ds.attrs['absent_files']",
            MissingFilesWarning,
            stacklevel=2,
        )
    return open_dataset(store)
