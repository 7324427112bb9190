"""The reference Avocado downstream demo's feature sets (latent representation paper).

Two tasks, each a set of rows with one binary label and several feature sets of those rows:

- ``"FIREs"``: 3,000 genomic regions in GM12878 (E116), labelled frequently interacting region
  (FIRE) or not; feature sets ``Roadmap`` (the 24 measured Roadmap assays), ``ChromImpute``,
  ``PREDICTD``, ``AvocadoImp`` (imputations of the same 24) and ``AvocadoFac`` (Avocado's 142
  genome factors).
- ``"RNAseq"``: 16,724 genes in IMR-90 (E017), labelled expressed (RNA-seq >= 0.5) or not, with
  the same feature sets minus ``AvocadoFac`` (not in the source repository).

Files are read from ``path``, else from ``$EPITENSOR_DATA`` (the folder itself or its
``avocado_downstream/`` subfolder), else downloaded from the Avocado repository into the user
cache and checked against their sha256.

Examples
--------
>>> from epitensor.datasets import avocado_downstream
>>> features, labels = avocado_downstream("FIREs", path="../shared/data/avocado_downstream")  # doctest: +SKIP
>>> sorted(features), labels.shape                                                             # doctest: +SKIP
(['AvocadoFac', 'AvocadoImp', 'ChromImpute', 'PREDICTD', 'Roadmap'], (3000,))
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from ..exceptions import ArgumentError, DataError
from .fetch import fetch_registry
from .roadmap import BASE_URL

#: Biosample, feature sets and how labels are made, per task.
TASKS = {
    "FIREs": {"biosample": "E116", "feature_sets": ("Roadmap", "ChromImpute", "PREDICTD", "AvocadoImp", "AvocadoFac")},
    "RNAseq": {"biosample": "E017", "feature_sets": ("Roadmap", "ChromImpute", "PREDICTD", "AvocadoImp")},
}
#: Expression at or above this is "expressed" (the demo's threshold).
EXPRESSED = 0.5


def registry() -> dict[str, str]:
    """File name -> ``sha256:<hash>`` of the demo's original files."""
    text = resources.files("epitensor.data").joinpath("avocado_downstream.sha256").read_text()
    return {name: f"sha256:{digest}" for digest, name in (line.split() for line in text.splitlines() if line.strip())}


def _names(task: str) -> list[str]:
    spec = TASKS[task]
    return [f"{task}.{spec['biosample']}.{name}.npy" for name in (*spec["feature_sets"], "y")]


def _local_folder() -> Path | None:
    root = os.environ.get("EPITENSOR_DATA")
    if not root:
        return None
    for cand in (Path(root), Path(root) / "avocado_downstream"):
        if (cand / _names("FIREs")[-1]).exists():
            return cand
    return None


def fetch_avocado_downstream(cache_dir=None, progress: bool = True) -> Path:
    """Download the demo's files (sha256-verified) and return their folder.

    Files already in ``cache_dir`` with the right hash are not downloaded again.
    """
    return fetch_registry(registry(), BASE_URL, "avocado_downstream", cache_dir, progress, kind=".npy")


def avocado_downstream(task: str = "FIREs", *, path=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The feature sets and binary labels of one task of the reference downstream demo.

    Parameters
    ----------
    task : {"FIREs", "RNAseq"}
    path : str or Path, optional
        Folder with the ``.npy`` files (default: ``$EPITENSOR_DATA``, else downloaded).

    Returns
    -------
    (dict of name -> array (n_rows, n_features), labels : bool array (n_rows,))
        FIREs labels are the first 3,000 of the file (the rows the features describe), as in the
        demo; RNAseq labels are ``expression >= 0.5``.
    """
    if task not in TASKS:
        raise ArgumentError(f"task must be one of {list(TASKS)}, got {task!r}")
    folder = Path(path) if path is not None else (_local_folder() or fetch_avocado_downstream())
    arrays = {}
    for name in _names(task):
        file = folder / name
        if not file.exists():
            raise DataError(f"{file} is missing; pass path= a folder with the demo's .npy files, or path=None to download")
        try:
            arrays[name.split(".")[2]] = np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{file} is not a readable .npy file ({err}); delete it and download it again") from None
    y = arrays.pop("y")
    n_rows = {len(x) for x in arrays.values()}
    if len(n_rows) != 1:
        raise DataError(f"the {task} feature sets in {folder} have different row counts {sorted(n_rows)}")
    n = n_rows.pop()
    if len(y) < n:
        raise DataError(f"{folder}: {len(y)} labels for {n} feature rows; the label file is truncated")
    labels = y[:n] >= EXPRESSED if task == "RNAseq" else y[:n].astype(bool)
    return arrays, labels
