"""Predictions of the network for pairs of table rows at genome rows: the one path of imputation.

:meth:`epitensor.Avocado.predict` and the stage-2 block workers both call :func:`predict_rows`, so
an imputation is the same function of the weights in a notebook and on a cluster.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import AvocadoConfig
from .module import AvocadoModule
from .offsets import combine_with_average
from .training import predict_pairs, resolve_options


@torch.inference_mode()
def predict_rows(module: AvocadoModule, config: AvocadoConfig, biosample_idx, assay_idx, rows, device, *,
                 batch_size: int | None = None, average: np.ndarray | None = None) -> np.ndarray:
    """Imputations ``(n_pairs, n_positions)``, float32, of the pairs ``biosample_idx``/``assay_idx``.

    Parameters
    ----------
    rows : tuple of 3 arrays
        Genome table rows (25 bp, 250 bp, 5 kbp) of the positions.
    batch_size : int, optional
        Predictions per forward pass (default: ``max(config.batch_size, 2**16)``).
    average : array (n_pairs, n_positions), optional
        Average activity of each pair's assay, combined with the network's output as the config
        says (:func:`~epitensor.model.offsets.combine_with_average`).

    Examples
    --------
    >>> from epitensor.model import AvocadoConfig, AvocadoModule
    >>> m = AvocadoModule(2, 2, (10, 1, 1), AvocadoConfig(n_nodes=8))
    >>> rows = (np.arange(10), np.zeros(10, int), np.zeros(10, int))
    >>> predict_rows(m, m.config, [0, 1], [1, 1], rows, "cpu").shape
    (2, 10)
    """
    r = [torch.as_tensor(np.asarray(x, dtype=np.int64), device=device) for x in rows]
    bi = torch.as_tensor(np.asarray(biosample_idx, dtype=np.int64), device=device)
    ai = torch.as_tensor(np.asarray(assay_idx, dtype=np.int64), device=device)
    _, kernel = resolve_options(config, device)
    out = predict_pairs(module, bi, ai, r, batch_size or max(config.batch_size, 2**16), kernel).cpu().numpy()
    return out if average is None else combine_with_average(out, average, config)


__all__ = ["predict_rows"]
