"""The frozen part of a trained model, shipped to stage-2 workers, and its fingerprint.

With the network and the biosample/assay factors frozen, a worker needs only their weights, the
config and the training tracks' rows (in the store and in the model's tables) to fit or impute a
block; :class:`FrozenModel` is that, small and picklable. Its :func:`fingerprint` names the model
whose genome factors a block's completion marker records.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from ..exceptions import ModelError
from .config import AvocadoConfig
from .data import pair_indices
from .module import GENOME_TABLES, AvocadoModule

_INIT_LOCK = threading.Lock()  # the threaded local scheduler shares torch's global RNG


def frozen_state(module: AvocadoModule) -> dict[str, np.ndarray]:
    """The module's weights without the genome tables, as float32 numpy arrays."""
    return {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()
            if k.split(".")[0] not in GENOME_TABLES}


def fingerprint(config: dict, state: dict) -> str:
    """Short hash of a model's config and frozen weights.

    Examples
    --------
    >>> len(fingerprint({"n_nodes": 8}, {"w": np.zeros(3)}))
    24
    """
    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps(config, sort_keys=True).encode())
    for k in sorted(state):
        h.update(k.encode())
        h.update(np.ascontiguousarray(state[k], dtype=np.float32).tobytes())
    return h.hexdigest()


class FingerprintCache:
    """The fingerprint of a module's frozen part, computed again only after a parameter changed in place."""

    def __init__(self):
        self._key, self._value = None, ""

    def __call__(self, module: AvocadoModule, config: AvocadoConfig) -> str:
        """The fingerprint of ``module`` with ``config`` (cached until a parameter changes in place)."""
        key = tuple((id(p), p._version) for p in module.parameters())
        if key != self._key:
            self._key, self._value = key, fingerprint(config.to_dict(), frozen_state(module))
        return self._value


@dataclass
class FrozenModel:
    """The frozen part of a trained model, small and picklable: shipped to each worker once.

    Attributes
    ----------
    config : dict
        :class:`AvocadoConfig` fields.
    n_biosamples, n_assays : int
    state : dict of str -> ndarray
        Network and biosample/assay weights (no genome tables).
    training_store, training_model : ndarray (n_tracks, 2)
        (biosample, assay) indices of the training tracks in the store and in the model's tables.
    fingerprint : str
        Hash of the config and ``state``: identifies the model whose genome factors a marker holds.
    """

    config: dict
    n_biosamples: int
    n_assays: int
    state: dict
    training_store: np.ndarray
    training_model: np.ndarray
    fingerprint: str = field(default="")

    @classmethod
    def from_model(cls, model, store_biosamples, store_assays) -> FrozenModel:
        """The frozen part of the :class:`~epitensor.Avocado` ``model``, its tracks indexed in a store's labels."""
        state = frozen_state(model.module)
        pairs = model.training_tracks
        if not pairs:
            raise ModelError("the model has no training tracks; fit it (stage 1) before fitting genome factors")
        store = pair_indices(pairs, store_biosamples, store_assays)
        own = pair_indices(pairs, model.biosamples, model.assays)
        frozen = cls(model.config.to_dict(), len(model.biosamples), len(model.assays), state, store, own)
        frozen.fingerprint = fingerprint(frozen.config, state)
        return frozen

    @property
    def avocado_config(self) -> AvocadoConfig:
        """The config as an :class:`AvocadoConfig`."""
        return AvocadoConfig.from_dict(self.config)

    def module(self, n_rows, seed: int, device) -> AvocadoModule:
        """The frozen network with fresh genome tables of ``n_rows`` rows, initialised from ``seed``."""
        with _INIT_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = AvocadoModule(self.n_biosamples, self.n_assays, tuple(n_rows), self.avocado_config)
        missing, unexpected = module.load_state_dict({k: torch.from_numpy(v) for k, v in self.state.items()}, strict=False)
        if unexpected or any(k.split(".")[0] not in GENOME_TABLES for k in missing):
            raise ModelError(f"frozen model state does not fit the network (missing {missing}, unexpected {unexpected})")
        module = module.to(device)
        for name, p in module.named_parameters():
            p.requires_grad_(name.split(".")[0] in GENOME_TABLES)
        return module.eval()


__all__ = ["FingerprintCache", "FrozenModel", "fingerprint", "frozen_state"]
