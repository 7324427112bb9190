"""Manifests: which bigWig or peak file(s) hold which (biosample, assay) track.

Two formats are read:

* the ENCODE2018 experiment lists of the Avocado paper (``Biosample summary``, ``Assay``,
  ``Accession``, ``Download URL`` relative to the ENCODE portal), through
  :func:`epitensor.datasets.read_encode_experiments`;
* a plain table (TSV, CSV or a pandas DataFrame) with columns ``biosample``, ``assay`` and
  ``path`` (a local file or a URL), optionally ``biosample_summary`` and ``assay_category``.

URLs are downloaded into a cache folder before anything is read (:func:`fetch`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ..datasets.encode import read_encode_experiments
from ..exceptions import DownloadError, ManifestError
from .peaks import is_peak_file

#: Columns every manifest must provide (after reading the ENCODE format).
REQUIRED_COLUMNS = ("biosample", "assay", "path")
#: Optional label metadata carried into a new store.
OPTIONAL_COLUMNS = ("biosample_summary", "assay_category", "accession")
_URL = re.compile(r"^(https?|ftp|file)://", re.IGNORECASE)


def is_url(path) -> bool:
    """Whether ``path`` is a URL (http, https, ftp or file) rather than a local path.

    Examples
    --------
    >>> is_url("https://www.encodeproject.org/files/ENCFF001/@@download/ENCFF001.bigWig"), is_url("a.bw")
    (True, False)
    """
    return bool(_URL.match(str(path)))


def read_manifest(manifest, base_dir=None) -> pd.DataFrame:
    """Read a manifest of tracks into a table with ``biosample``, ``assay`` and ``path`` columns.

    Parameters
    ----------
    manifest : str, Path or pandas.DataFrame
        An ENCODE2018 experiment list (recognised by its ``Download URL`` column), a TSV/CSV file
        (separator from the extension: ``.csv`` comma, otherwise tab) or a DataFrame with columns
        ``biosample``, ``assay``, ``path`` and optionally ``biosample_summary``,
        ``assay_category``, ``accession``. Column names are matched case-insensitively.
    base_dir : str or Path, optional
        Folder that relative local paths are relative to. Default: the manifest's folder (the
        current directory for a DataFrame).

    Returns
    -------
    pandas.DataFrame
        One row per track with ``biosample``, ``assay``, ``path`` (absolute local path or URL, as
        str) and whichever optional columns were given.

    Raises
    ------
    ManifestError
        The file is empty, not UTF-8 text or not a table (naming the line); a required column is
        missing, a label is empty, or a (biosample, assay) pair is listed twice with a bigWig file
        (peak files of one track may be listed several times: they are replicates, merged by
        :func:`epitensor.ingest`).

    Notes
    -----
    Every field of a file is text: ``NA``, ``None`` or ``#E003`` are labels (there are no comment
    lines or missing-value markers); a field with only spaces is empty. Blank lines are skipped.

    Examples
    --------
    >>> import pandas as pd
    >>> t = read_manifest(pd.DataFrame({"biosample": ["H1"], "assay": ["CTCF"], "path": ["/data/H1_Ctcf.bw"]}))
    >>> t.loc[0, "path"]
    '/data/H1_Ctcf.bw'
    """
    if isinstance(manifest, pd.DataFrame):
        table, where, unit = manifest.copy(), "the manifest DataFrame", "row"
        lines = np.arange(1, len(table) + 1)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(manifest)
        if not path.is_file():
            raise ManifestError(f"manifest {path} does not exist; pass a TSV/CSV file or a pandas DataFrame")
        (table, lines), where, unit = _read_table(path), str(path), "line"
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    table.columns = [str(c).strip().lower() for c in table.columns]
    repeated = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if repeated:
        raise ManifestError(f"{where} has column(s) {repeated} more than once (names are matched case-insensitively); keep one of each")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{where} lacks column(s) {missing}; it has {list(table.columns)}. A manifest needs "
            "columns biosample, assay, path (or an ENCODE2018 table with a 'Download URL' column)"
        )
    if table.empty:
        raise ManifestError(f"{where} lists no tracks; add one row per bigWig file (biosample, assay, path)")
    keep = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in table.columns]
    table = table[keep].reset_index(drop=True)
    for col in ("biosample", "assay", "path"):
        table[col] = table[col].astype("string").str.strip()
        empty = (table[col].isna() | (table[col] == "")).to_numpy(dtype=bool)
        if empty.any():
            raise ManifestError(
                f"{where}: empty {col} in {unit}(s) {lines[empty].tolist()[:10]}; every {unit} needs a "
                "biosample, an assay and a path: fill them in or delete the row"
            )
    table = table.astype({c: object for c in table.columns})
    dup = table.duplicated(["biosample", "assay"], keep=False)
    dup &= ~table["path"].map(is_peak_file).to_numpy(dtype=bool)  # peak replicates are merged
    if dup.any():
        pairs = table.loc[dup, ["biosample", "assay", "path"]].values.tolist()[:10]
        raise ManifestError(
            f"{where} lists some (biosample, assay) tracks more than once: {pairs}. "
            "Keep one bigWig file per track (merge replicates before ingesting; replicate peak "
            "files are merged by ingest)"
        )
    if mixed := _mixed_replicates(table):
        raise ManifestError(f"{where} lists tracks {mixed[:10]} with a bigWig and peak files; a track is read from one kind of file")
    if table["path"].str.contains("\x00", regex=False).any():
        raise ManifestError(f"{where}: a path holds a NUL byte; give each file's path as plain text")
    table["path"] = [p if is_url(p) else str((base / os.path.expanduser(p)).resolve()) for p in table["path"]]
    return table


def _mixed_replicates(table: pd.DataFrame) -> list:
    """(biosample, assay) tracks listed with both a bigWig and peak files."""
    peak = table["path"].map(is_peak_file)
    kinds = peak.groupby([table["biosample"], table["assay"]]).nunique()
    return [list(t) for t in kinds.index[kinds.to_numpy() > 1]]


def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The table of a manifest file and the file line of each row (1 = the header line).

    Every field is read as text: ``NA``, ``None`` or ``#E003`` are labels like any other (no
    missing-value markers, no comments). Blank lines are skipped, a row short of fields is padded
    with empty ones (which the caller rejects for the required columns).
    """
    text = _manifest_text(path)
    if "Download URL" in text.split("\n", 1)[0]:
        try:
            table = read_encode_experiments(path).rename(columns={"url": "path"})
        except pd.errors.ParserError as err:
            raise ManifestError(f"manifest {path} cannot be read as an ENCODE2018 experiment list ({err}); is it tab-separated?") from None
        return table, np.arange(2, len(table) + 2)
    sep, kind = (",", "CSV") if path.suffix.lower() == ".csv" else ("\t", "tab-separated")
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True, strict=True)
    rows, lines = [], []
    try:
        header = next(reader)
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            extra = fields[len(header) :]
            if any(f.strip() for f in extra):
                raise ManifestError(
                    f"manifest {path} line {reader.line_num} has {len(fields)} {kind} fields but its header "
                    f"has {len(header)} ({header}); remove the extra {'commas' if sep == ',' else 'tabs'} "
                    "or quote the field that holds them"
                )
            rows.append(fields[: len(header)] + [""] * (len(header) - len(fields)))
            lines.append(reader.line_num)
    except csv.Error as err:
        raise ManifestError(
            f"manifest {path} cannot be read as a {kind} table at line {reader.line_num} ({err}); close "
            'the quote (") that is open there, or remove it'
        ) from None
    return pd.DataFrame(rows, columns=header, dtype=object), np.asarray(lines, dtype=np.int64)


def _manifest_text(path: Path) -> str:
    """A manifest's text (UTF-8, with or without a byte-order mark) with its line ends as ``\\n``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"manifest {path} cannot be read ({err.strerror or err}); check its permissions") from None
    if not raw.strip():
        raise ManifestError(f"manifest {path} is empty; write a header line (biosample, assay, path) and one line per track")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ManifestError(
            f"manifest {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); save it as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8 old.tsv > new.tsv)"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ManifestError(f"manifest {path} holds a NUL byte on line {line}; is it a text file? A manifest is a TSV or CSV table")
    return text.replace("\r\n", "\n")


def default_cache_dir() -> Path:
    """Folder that downloaded bigWig files are kept in: ``pooch.os_cache("epitensor")/bigwig``."""
    import pooch

    return Path(pooch.os_cache("epitensor")) / "bigwig"


def fetch(url: str, cache_dir=None, retries: int = 3, backoff: float = 2.0, timeout: float = 120.0) -> Path:
    """Download ``url`` into ``cache_dir`` (kept by file name) and return the local path.

    A file already in the cache is not downloaded again, so a folder of files you downloaded
    yourself can be passed as ``cache_dir``. The download goes to a temporary name and is renamed
    when complete, so an interrupted download never leaves a truncated file behind.

    Parameters
    ----------
    url : str
        http(s), ftp or file URL.
    cache_dir : str or Path, optional
        Default :func:`default_cache_dir`.
    retries : int, default 3
        Further attempts after a failed one, waiting ``backoff * 2**attempt`` seconds between them.
    backoff : float, default 2.0
    timeout : float, default 120
        Seconds without data before an attempt fails.

    Raises
    ------
    DownloadError
        Every attempt failed.

    Examples
    --------
    >>> fetch("https://www.encodeproject.org/files/ENCFF324BPE/@@download/ENCFF324BPE.bigWig")  # doctest: +SKIP
    PosixPath('.../epitensor/bigwig/ENCFF324BPE.bigWig')
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = os.path.basename(urlparse(url).path) or re.sub(r"[^A-Za-z0-9._-]", "_", url)
    target = cache / name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    last = None
    for attempt in range(retries + 1):
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out, length=1 << 20)
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = err
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(
        f"could not download {url} after {retries + 1} attempts ({last}); check the address and "
        f"your connection, or download the file yourself into {cache} (it will be used as is)"
    )
