"""Two-dimensional maps of factors: UMAP when umap-learn is installed, PCA otherwise.

The paper's maps: genome factors fall along an enhancer-promoter continuum, biosample factors
cluster by anatomy. ``pip install epitensor[viz]`` adds umap-learn; without it, or with
``method="pca"``, the map is the first two principal components (deterministic, no extra package).

Examples
--------
>>> import numpy as np
>>> from epitensor.latent import embed_factors
>>> rng = np.random.default_rng(0)
>>> m = embed_factors(rng.normal(size=(30, 5)), method="pca")
>>> m.columns.tolist(), m.attrs["method"]
(['x', 'y'], 'pca')
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError
from .similarity import factor_table

METHODS = ("auto", "umap", "pca")


def umap_available() -> bool:
    """Whether umap-learn is installed (the ``viz`` extra)."""
    return importlib.util.find_spec("umap") is not None


def embed_factors(factors, method: str = "auto", *, seed: int = 0, n_neighbors: int = 15,
                  metric: str = "euclidean") -> pd.DataFrame:
    """A 2-D map of the rows of ``factors`` (biosample, assay or genome factors).

    Parameters
    ----------
    factors : DataFrame, DataArray or array
        ``model.factors("biosample")``, ``model.genome_factors(region)``, features at regions.
    method : {"auto", "umap", "pca"}
        ``"auto"`` uses UMAP when umap-learn is installed and there are more rows than
        ``n_neighbors``, else PCA; the method used is in ``result.attrs["method"]``.
    seed : int
        UMAP's random state (the same seed gives the same map).
    n_neighbors, metric
        UMAP parameters.

    Returns
    -------
    DataFrame
        Columns ``x``, ``y``, indexed like the factor rows.
    """
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    table = factor_table(factors)
    x = table.to_numpy()
    if method == "umap" and not umap_available():
        raise ArgumentError("method='umap' needs umap-learn: pip install 'epitensor[viz]' (or use method='pca')")
    use_umap = method == "umap" or (method == "auto" and umap_available() and len(x) > n_neighbors)
    if use_umap:
        try:
            import umap
        except ImportError as err:  # found but broken (e.g. a numba that does not match numpy)
            raise ArgumentError(f"method={method!r} needs a working umap-learn ({err}): pip install 'epitensor[viz]' "
                                "(or use method='pca')") from None

        xy = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), metric=metric, random_state=seed,
                       n_jobs=1).fit_transform(x)
        used = "umap"
    else:
        xy = _pca(x)
        used = "pca"
    result = pd.DataFrame(np.asarray(xy, dtype=np.float64)[:, :2], index=table.index.copy(), columns=["x", "y"])
    result.attrs["method"] = used
    return result


def _pca(x: np.ndarray) -> np.ndarray:
    """First two principal components, signs fixed so the largest loading is positive."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    xy = centred @ (vt * signs[:, None]).T
    if xy.shape[1] < 2:  # one factor: a 1-D map
        xy = np.column_stack([xy, np.zeros(len(xy))])
    return xy
