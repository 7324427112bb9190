"""Saving and loading Avocado models: a directory with ``config.json`` and ``weights.pt``.

Written to a temporary sibling directory and renamed into place, so a crash never leaves a half
model. Weights are loaded with ``torch.load(weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch

from ..exceptions import ModelError
from .config import AvocadoConfig
from .positions import GenomeRows

FORMAT_VERSION = 1


def save_model(model, path) -> Path:
    """Write ``model`` to the directory ``path`` atomically (replacing an existing model there)."""
    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": "epitensor-avocado",
        "format_version": FORMAT_VERSION,
        "epitensor_version": __version__,
        "torch_version": torch.__version__,
        "config": model.config.to_dict(),
        "seed": model.seed,
        "biosamples": model.biosamples,
        "assays": model.assays,
        "genome": model.genome.to_attrs(),
        "fitted_positions": model.fitted_positions.intervals(),
        "training_tracks": [list(p) for p in model.training_tracks],
        "history": model.history.to_dict(orient="list"),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        state = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
        torch.save(state, tmp / "weights.pt")
        old = None
        if path.exists():
            if not (path / "config.json").exists() and any(path.iterdir()):
                raise ModelError(f"{path} exists and is not a saved epitensor model; choose another directory")
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model(cls, path, ds, device="auto"):
    """Rebuild a saved model against the store ``ds`` (checked for matching labels and genome)."""
    from .model import check_compatible, open_dataset

    path = Path(path)
    if not (path / "config.json").exists() or not (path / "weights.pt").exists():
        raise ModelError(f"{path} is not a saved epitensor model (needs config.json and weights.pt); save one with model.save(path)")
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != "epitensor-avocado":
        raise ModelError(f"{path}/config.json is not an epitensor Avocado model")
    import xarray as xr

    ds = ds if isinstance(ds, xr.Dataset) else open_dataset(ds)
    check_compatible({"biosample": meta["biosamples"], "assay": meta["assays"]}, meta["genome"], ds)
    options = dict(meta["config"])
    preset = options.pop("preset")
    model = cls(ds, preset=preset, device=device, seed=meta["seed"], biosamples=meta["biosamples"],
                assays=meta["assays"], **{k: v for k, v in options.items() if k in AvocadoConfig.__dataclass_fields__})
    rows = GenomeRows.from_intervals(meta["fitted_positions"])
    model.module.set_genome_tables(rows.n_rows)
    model._rows = rows
    state = torch.load(path / "weights.pt", weights_only=True, map_location=model.device)
    model.module.load_state_dict(state)
    model.training_tracks = [tuple(p) for p in meta["training_tracks"]]
    model.history = pd.DataFrame(meta["history"])
    return model
