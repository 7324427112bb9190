"""Saving and loading Avocado models: a directory with ``config.json`` and ``weights-<hash>.pt``.

Crash safety: a save writes the weights to a temporary file, flushes it to disk and renames it to
``weights-<first 16 hex digits of its SHA-256>.pt``; then it writes ``config.json`` (which names
that weights file and its SHA-256) the same way. Renaming ``config.json`` into place is the single
switch from the old model to the new one: a save killed at any point leaves either the old model
(old ``config.json`` and the weights it names, still there) or the new one, never a mix. Only after
the switch are the files of the old model and the temporary files of interrupted saves removed.

A save touches only the model's own files (``config.json``, ``weights.pt``, ``weights-*.pt`` and
its hidden temporary files); other files in the directory stay. It refuses a directory that holds
other files but no model. One save at a time per directory.

Loading checks the SHA-256 of the weights and reads them with ``torch.load(weights_only=True)`` (no
pickled code is ever run). Models saved before the weights were named by hash (``weights.pt``,
format version 1) still load.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import secrets
import shutil
from pathlib import Path

import pandas as pd
import torch
import xarray as xr

from ..exceptions import ModelError, ModelFileError
from ..genome import Genome
from ..store import open_dataset
from ..version import __version__
from .config import AvocadoConfig
from .cross_assay import CrossAssayStack, split_state
from .positions import GenomeRows
from .reference import import_reference

FORMAT = "epitensor-avocado"
FORMAT_VERSION = 2
CONFIG = "config.json"
LEGACY_WEIGHTS = "weights.pt"
#: The files a save writes (and so may remove): everything else in a model directory is the user's.
OWN_FILES = re.compile(r"^(config\.json|weights\.pt|weights-[0-9a-f]{16}\.pt|\.(config\.json|weights)\.[0-9a-f]+\.tmp)$")
REQUIRED_KEYS = ("format", "config", "seed", "biosamples", "assays", "genome", "fitted_positions",
                 "training_tracks", "history")


# ---------------------------------------------------------------------- low-level writes
def _fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(folder: Path, stem: str, write) -> Path:
    """Call ``write(file)`` on a new hidden temporary file in ``folder``, flushed to disk; return its path."""
    tmp = folder / f".{stem}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- the model directory
def _read_config(path: Path) -> dict:
    """The parsed ``config.json`` of the model directory ``path`` (ModelFileError if it is not one)."""
    file = path / CONFIG
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{file} is not valid JSON ({err}); the model is damaged: delete {file} and save the "
                             "model again, or restore the directory from a backup") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{file} is not the configuration of an epitensor Avocado model (no \"format\": "
                             f"\"{FORMAT}\"); pass a directory written by model.save(path)")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{file} lacks the key(s) {missing}; the model is damaged or was edited: save it again")
    return meta


def _weights_file(path: Path, meta: dict) -> tuple[Path, str | None]:
    """The weights file ``config.json`` names and its recorded SHA-256 (None for format version 1)."""
    entry = meta.get("weights")
    if entry is None:
        return path / LEGACY_WEIGHTS, None
    if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and OWN_FILES.match(entry["file"])
            and isinstance(entry.get("sha256"), str)):
        raise ModelFileError(f"{path / CONFIG} has an invalid \"weights\" entry {entry!r}; the model is damaged: save it again")
    return path / entry["file"], entry["sha256"]


def _check_target(path: Path) -> None:
    """Refuse to save into ``path`` unless it is missing, a model directory, or holds only a model's files."""
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{path} is a file, not a model directory; choose another path for model.save")
    if not path.exists():
        return
    if (path / CONFIG).exists():  # a model, possibly damaged (then the save repairs it), or someone else's file
        try:
            meta = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        if not (isinstance(meta, dict) and meta.get("format") == FORMAT):
            raise ModelFileError(f"refusing to save into {path}: its {CONFIG} is not an epitensor model's; remove "
                                 f"{path / CONFIG} or choose another directory")
        return
    # without a config.json only a save's leftovers (hashed weights, temporary files) are the model's
    foreign = sorted(p.name for p in path.iterdir() if not OWN_FILES.match(p.name) or p.name == LEGACY_WEIGHTS)
    if foreign:
        raise ModelFileError(f"{path} is not an epitensor model directory and holds other files ({foreign[:5]}); "
                             "save the model into a new or empty directory")


def _sweep(path: Path, keep: str) -> None:
    """Remove the model's own files other than ``config.json`` and ``keep`` (old weights, temp files)."""
    for p in path.iterdir():
        if p.name not in (CONFIG, keep) and OWN_FILES.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)


def _sweep_legacy_copies(path: Path) -> None:
    """Remove the sibling directories ``.NAME.tmp-*`` / ``.NAME.old-*`` left by saves of earlier epitensor
    versions killed part-way (each held nothing but a ``config.json`` and a ``weights.pt``)."""
    for p in path.parent.glob(f".{path.name}.*"):
        if re.fullmatch(rf"\.{re.escape(path.name)}\.(tmp-.+|old-\d+)", p.name) and p.is_dir() \
                and {c.name for c in p.iterdir()} <= {CONFIG, LEGACY_WEIGHTS}:
            shutil.rmtree(p, ignore_errors=True)


def save_model(model, path) -> Path:
    """Write ``model`` to the directory ``path`` (replacing a model there) so that a crash leaves the old or
    the new model; see the module docstring for the procedure."""
    path = Path(path)
    _check_target(path)
    if not path.exists():
        path.mkdir(parents=True)
        _fsync_dir(path.parent)
    state = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
    stack_meta = None
    if model.stack is not None:
        stack_meta, stack_tensors = model.stack.to_state()
        state.update(stack_tensors)
    tmp = _write_temp(path, "weights", lambda f: torch.save(state, f))
    digest = _sha256(tmp)
    weights = f"weights-{digest[:16]}.pt"
    os.replace(tmp, path / weights)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epitensor_version": __version__,
        "torch_version": torch.__version__,
        "weights": {"file": weights, "sha256": digest},
        "config": model.config.to_dict(),
        "seed": model.seed,
        "biosamples": model.biosamples,
        "assays": model.assays,
        "genome": model.genome.to_attrs(),
        "fitted_positions": model.fitted_positions.intervals(),
        "training_tracks": [list(p) for p in model.training_tracks],
        "validation_tracks": [list(p) for p in model.validation_tracks],
        "history": model.history.to_dict(orient="list"),
    }
    if stack_meta is not None:
        config["cross_assay"] = stack_meta
    text = json.dumps(config, indent=1).encode("utf-8")
    tmp = _write_temp(path, CONFIG, lambda f: f.write(text))
    os.replace(tmp, path / CONFIG)  # the switch: from here on the directory holds the new model
    _fsync_dir(path)
    _sweep(path, keep=weights)
    _sweep_legacy_copies(path)
    return path


# ---------------------------------------------------------------------- loading
def _load_state(file: Path, sha256: str | None, device) -> dict:
    """The state dict in ``file``, checked against its SHA-256, read with ``weights_only=True``."""
    if not file.is_file():
        raise ModelFileError(f"{file} is missing (config.json names it); the model is incomplete: save it again")
    if sha256 is not None and _sha256(file) != sha256:
        raise ModelFileError(f"{file} is damaged (its SHA-256 differs from the one config.json records); save the "
                             "model again or restore it from a backup")
    try:
        state = torch.load(file, weights_only=True, map_location=device)
    except pickle.UnpicklingError:
        # torch's message advises weights_only=False, which would run the file's code: never pass it on
        raise ModelFileError(f"{file} holds objects other than tensors, which epitensor refuses to load (loading "
                             "them could run code); use weights written by model.save") from None
    except Exception as err:  # truncated zip, not a torch file, ...
        raise ModelFileError(f"{file} is not a readable torch weights file ({type(err).__name__}); it is truncated or "
                             "damaged: save the model again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{file} does not hold a state dict of tensors; use weights written by model.save")
    return state


def check_compatible(model_labels: dict, genome_attrs: dict, ds: xr.Dataset) -> None:
    """Raise ModelError naming how the store ``ds`` differs from what a saved model needs."""
    for kind in ("biosample", "assay"):
        have = {str(x) for x in ds[kind].values}
        missing = [x for x in model_labels[kind] if x not in have]
        if missing:
            raise ModelError(f"the store lacks the model's {kind}(s) {missing[:20]}; load the model against the store it was "
                             "trained on (or one that has these labels)")
    try:
        Genome.from_attrs(genome_attrs).check_same(Genome.from_attrs(ds.attrs), "the model's and the store's genomes")
    except Exception as err:
        raise ModelError(str(err)) from None


def load_model(cls, path, ds, device="auto"):
    """Rebuild a saved model against the store ``ds`` (checked for matching labels and genome)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise ModelFileError(f"{path} is not a saved epitensor model (it has no {CONFIG}); pass the directory "
                             "written by model.save(path)")
    meta = _read_config(path)
    file, sha256 = _weights_file(path, meta)
    ds = ds if isinstance(ds, xr.Dataset) else open_dataset(ds)
    try:
        labels = {"biosample": list(meta["biosamples"]), "assay": list(meta["assays"])}
        options = dict(meta["config"])
        preset = options.pop("preset")
        rows = GenomeRows.from_intervals(meta["fitted_positions"])
        tracks = [(str(b), str(a)) for b, a in meta["training_tracks"]]
        held = [(str(b), str(a)) for b, a in meta.get("validation_tracks", [])]
        history = pd.DataFrame(meta["history"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path / CONFIG} is malformed ({type(err).__name__}: {err}); save the model again") from None
    check_compatible(labels, meta["genome"], ds)
    model = cls(ds, preset=preset, device=device, seed=meta["seed"], biosamples=labels["biosample"],
                assays=labels["assay"], **{k: v for k, v in options.items() if k in AvocadoConfig.__dataclass_fields__})
    model.reset_genome_factors(rows)
    state, stack = split_state(_load_state(file, sha256, model.device))
    if "cross_assay" in meta:
        model.stack = CrossAssayStack.from_state(model.biosamples, model.assays, meta["cross_assay"], stack)
    try:
        model.module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelFileError(f"{file} does not fit the model {path / CONFIG} describes ({first}); save the model "
                             "again") from None
    model.training_tracks = tracks
    model.validation_tracks = held
    model.history = history
    return model


class PersistenceMixin:
    """:meth:`save`, :meth:`load` and :meth:`from_reference` of :class:`~epitensor.Avocado`."""

    def save(self, path) -> None:
        """Save to a directory: ``config.json`` (labels, genome, hyper-parameters, versions, fitted
        positions, history, and the name and SHA-256 of the weights file) and ``weights-<hash>.pt``
        (state dict).

        Crash-safe: killed at any point, the directory holds the old model or the new one (renaming
        ``config.json`` into place is the switch); the next save removes what a killed one left. Only
        the model's own files are replaced: other files in the directory stay, and a directory that
        holds other files but no model is refused (:class:`~epitensor.exceptions.ModelFileError`).

        Examples
        --------
        >>> model.save("model/")                 # doctest: +SKIP
        >>> et.Avocado.load("model/", ds)        # doctest: +SKIP
        """
        save_model(self, path)

    @classmethod
    def load(cls, path, ds, device="auto"):
        """Load a model saved with :meth:`save`, checked against the store ``ds``.

        Raises
        ------
        ModelFileError
            ``path`` is not a model, or its files are damaged: ``config.json`` not JSON or lacking keys,
            weights truncated, not matching their recorded SHA-256, or holding objects other than
            tensors (never unpickled: weights are read with ``torch.load(weights_only=True)``).
        ModelError
            The store lacks labels of the model or has another genome (the message names the difference).
        """
        return load_model(cls, path, ds, device)

    @classmethod
    def from_reference(cls, json_path, h5_path, ds, *, region=None, transform: str = "arcsinh", device="auto",
                       seed: int | None = 0):
        """Import a model of the reference Avocado (Keras): the ``NAME.json`` and ``NAME.h5`` of its ``model.save(NAME)``.

        Read with h5py (``pip install 'epitensor[reference]'``), never TensorFlow. The result is a
        fitted model like any other: it imputes the reference's predictions (float32, same function),
        saves with :meth:`save`, loads with :meth:`load`, and can be trained further. See
        :mod:`epitensor.model.reference` for how the layers and positions correspond.

        Parameters
        ----------
        json_path, h5_path : str or Path
            The reference's hyper-parameters and weights.
        ds : xarray.Dataset or path
            The store. It must hold every celltype and assay of the model (matched by name, in any
            order; the model keeps the reference's order); it may hold more.
        region : str or tuple, optional
            Where the reference's positions lie: its position ``i`` is bin ``i`` of ``region``
            (default: the store's first contig). It must start on a multiple of 5 kbp and hold at
            least ``n_genomic_positions`` bins; the model covers the first ``n_genomic_positions``.
        transform : {"arcsinh", "none"}, default "arcsinh"
            The scale of the signal the reference model was trained on (arcsinh for the published
            models); it must be the store's ``transform``, as neither network transforms its output.
        device : str, default "auto"
            As in :class:`Avocado`. Predictions stay float32 (``config.autocast=False``) on every device.
        seed : int or None, default 0
            Seed of further training.

        Raises
        ------
        ReferenceModelError
            The json is not a reference model's, or the h5 is not HDF5, lacks layers, or holds weights
            that do not fit the json (the message names the file and what is wrong).
        ModelError
            The store lacks celltypes or assays of the model, holds signal on another scale than
            ``transform``, or ``region`` does not fit its positions.

        Examples
        --------
        >>> model = et.Avocado.from_reference("avocado.json", "avocado.h5", "roadmap.zarr", region="pilot")  # doctest: +SKIP
        >>> model.impute("E065", "H3K27me3", region="pilot:0-1,000,000")                                   # doctest: +SKIP
        >>> model.save("imported-model/")                                                                  # doctest: +SKIP
        """
        return import_reference(cls, json_path, h5_path, ds, region=region, transform=transform, device=device, seed=seed)


__all__ = ["FORMAT", "FORMAT_VERSION", "PersistenceMixin", "check_compatible", "load_model", "save_model"]
