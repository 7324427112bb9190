"""Reading rows of the store's genome-factor arrays (stage 2 writes them block by block).

The model's view of these factors (which positions come from the store, which from the model) is
:mod:`epitensor.model.genome_factors`.
"""

from __future__ import annotations

import numpy as np
import zarr

from ..model.storage import _runs


def read_store_rows(root: zarr.Group, res: str, index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted, unique) of the store's ``genome_factors_{res}``, read run by run."""
    arr = root[f"genome_factors_{res}"]
    out = np.empty((len(index), arr.shape[1]), dtype=np.float32)
    for lo, hi in _runs(index):
        out[lo:hi] = arr[int(index[lo]) : int(index[hi - 1]) + 1]
    return out
