"""Similarity between biosamples, assays or positions from their learned factors.

Examples
--------
>>> import pandas as pd
>>> from epitensor.latent import factor_similarity
>>> f = pd.DataFrame([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0]], index=pd.Index(["a", "b", "c"], name="biosample"))
>>> s = factor_similarity(f, metric="cosine")
>>> s.round(2).loc["a"].tolist()
[1.0, 1.0, 0.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import ArgumentError, DataError

METRICS = ("cosine", "correlation", "euclidean")


def factor_table(factors, name: str = "factors") -> pd.DataFrame:
    """Factors as a DataFrame with labelled rows.

    Accepts ``model.factors("biosample")`` (a DataFrame), a ``(label, factor)`` DataArray such as
    ``model.genome_factors(region)`` (rows named by position, with ``chrom``/``start``/``end``
    kept as a MultiIndex when present), or a 2-D array (rows numbered).

    Examples
    --------
    >>> factor_table(np.eye(2)).index.tolist()
    [0, 1]
    """
    if isinstance(factors, pd.DataFrame):
        table = factors
    elif isinstance(factors, xr.DataArray):
        if factors.ndim != 2:
            raise DataError(f"{name}: a factor DataArray must be 2-D (label, factor), got dims {factors.dims}")
        row = factors.dims[0]
        table = pd.DataFrame(np.asarray(factors.values), index=pd.Index(factors[row].values, name=row))
    else:
        values = np.asarray(factors)
        if values.ndim != 2:
            raise DataError(f"{name}: factors must be 2-D (rows x factors), got shape {values.shape}")
        table = pd.DataFrame(values)
    if table.shape[0] < 2 or table.shape[1] < 1:
        raise DataError(f"{name}: need at least 2 rows and 1 factor column, got shape {table.shape}")
    if not np.isfinite(table.to_numpy(dtype=np.float64)).all():
        raise DataError(f"{name}: factors contain NaN or infinite values (rows not fitted?); drop those rows first")
    return table.astype(np.float64)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``x`` (rows x rows).

    Examples
    --------
    >>> pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    sq = (x**2).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))


def factor_similarity(factors, metric: str = "cosine") -> pd.DataFrame:
    """Pairwise similarity of the rows of ``factors``, labelled on both axes.

    Parameters
    ----------
    factors : DataFrame, DataArray or array
        E.g. ``model.factors("biosample")``.
    metric : {"cosine", "correlation", "euclidean"}
        Cosine of the factor vectors, Pearson correlation across factors, or the negative
        Euclidean distance (larger is more similar for every metric).

    Returns
    -------
    DataFrame
        Square, symmetric, indexed and columned by the row labels.

    Examples
    --------
    >>> f = pd.DataFrame([[1.0, 2.0, 3.0], [2.0, 4.0, 6.1], [3.0, 1.0, 0.0]], index=["x", "y", "z"])
    >>> float(factor_similarity(f, "correlation").loc["x", "y"].round(3))
    1.0
    """
    if metric not in METRICS:
        raise ArgumentError(f"metric must be one of {METRICS}, got {metric!r}")
    table = factor_table(factors)
    x = table.to_numpy()
    if metric == "euclidean":
        values = -pairwise_distances(x)
    else:
        if metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        if (norm == 0).any():
            raise DataError(f"rows {table.index[norm[:, 0] == 0].tolist()[:5]} have constant factors, so their "
                            f"{metric} similarity is undefined; use metric='euclidean'")
        x = x / norm
        values = np.clip(x @ x.T, -1, 1)
    np.fill_diagonal(values, 1.0 if metric != "euclidean" else 0.0)
    return pd.DataFrame(values, index=table.index.copy(), columns=table.index.copy())


def cluster_order(similarity: pd.DataFrame, method: str = "average") -> list:
    """Row labels in the leaf order of a hierarchical clustering of a similarity matrix.

    Examples
    --------
    >>> s = pd.DataFrame([[1, .1, .9], [.1, 1, .2], [.9, .2, 1]], index=list("abc"), columns=list("abc"))
    >>> order = cluster_order(s)
    >>> abs(order.index("a") - order.index("c"))
    1
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if similarity.shape[0] != similarity.shape[1]:
        raise DataError(f"a similarity matrix must be square, got shape {similarity.shape}")
    values = similarity.to_numpy(dtype=np.float64)
    distance = values.max() - values
    np.fill_diagonal(distance, 0)
    distance = (distance + distance.T) / 2
    leaves = leaves_list(linkage(squareform(distance, checks=False), method=method))
    return [similarity.index[i] for i in leaves]
