"""Figures of the latent representation: the downstream bar plot, similarity heatmaps, maps.

matplotlib is imported inside the functions, so ``import epitensor`` stays fast. Every function
draws on ``ax`` when given (else a new figure), saves to ``path`` when given, and returns the axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from .similarity import cluster_order
from .tasks import BASELINE, summarize_folds


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _save(ax, path):
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight", dpi=150)
    return ax


def plot_feature_comparison(table: pd.DataFrame, *, title: str | None = None, ax=None, path=None):
    """Mean average precision per feature set with standard-error bars (the paper's Fig. 5 style).

    ``table`` is :func:`epitensor.latent.compare_features`'s result; the majority baseline is a
    dashed line.

    Examples
    --------
    >>> import numpy as np
    >>> from epitensor.latent import compare_features
    >>> y = np.arange(120) % 3 == 0
    >>> ax = plot_feature_comparison(compare_features({"x": y[:, None] * 1.0}, y, n_folds=5))
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['x']
    """
    summary = summarize_folds(table)
    bars = summary.drop(index=BASELINE, errors="ignore")
    ax = _axes(ax, (1.2 + 0.7 * len(bars), 3.5))
    ax.bar(np.arange(len(bars)), bars["mean_average_precision"], yerr=bars["standard_error"], capsize=3,
           color="#4c72b0", edgecolor="black", linewidth=0.5)
    if BASELINE in summary.index:
        ax.axhline(summary.loc[BASELINE, "mean_average_precision"], color="grey", linestyle="--", label=BASELINE)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_xticks(np.arange(len(bars)), bars.index, rotation=45, ha="right")
    ax.set_ylabel("mean average precision")
    if title:
        ax.set_title(title)
    return _save(ax, path)


def plot_similarity(similarity: pd.DataFrame, *, cluster: bool = True, title: str | None = None, ax=None, path=None):
    """Heatmap of a similarity matrix, rows and columns in hierarchical-clustering order.

    Examples
    --------
    >>> s = pd.DataFrame([[1, .2], [.2, 1]], index=["a", "b"], columns=["a", "b"])
    >>> ax = plot_similarity(s)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['a', 'b']
    """
    order = cluster_order(similarity) if cluster else list(similarity.index)
    shown = similarity.loc[order, order]
    n = len(order)
    ax = _axes(ax, (2 + 0.25 * n, 1.5 + 0.25 * n))
    image = ax.imshow(shown.to_numpy(dtype=float), cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="similarity")
    if n <= 60:  # beyond that, labels overlap
        ax.set_xticks(np.arange(n), [str(x) for x in order], rotation=90, fontsize=7)
        ax.set_yticks(np.arange(n), [str(x) for x in order], fontsize=7)
    if title:
        ax.set_title(title)
    return _save(ax, path)


def plot_embedding(embedding: pd.DataFrame, color=None, *, title: str | None = None, ax=None, path=None,
                   point_size: float = 12):
    """Scatter a 2-D map (:func:`epitensor.latent.embed_factors`) coloured by a label column.

    Parameters
    ----------
    embedding : DataFrame with ``x``, ``y``
    color : Series or array, optional
        One value per row (aligned by index when a Series): categories get a legend, numbers a
        colour bar (e.g. biosample type, assay category, promoter/enhancer/gene body).

    Examples
    --------
    >>> m = pd.DataFrame({"x": [0, 1, 2], "y": [0, 1, 0]}, index=["a", "b", "c"])
    >>> ax = plot_embedding(m, pd.Series(["p", "q", "p"], index=["a", "b", "c"]))
    >>> sorted(t.get_text() for t in ax.get_legend().get_texts())
    ['p', 'q']
    """
    if not {"x", "y"} <= set(embedding.columns):
        raise DataError("embedding must have columns x and y (the result of embed_factors)")
    ax = _axes(ax, (4.5, 4))
    method = embedding.attrs.get("method", "")
    if color is None:
        ax.scatter(embedding["x"], embedding["y"], s=point_size, color="#4c72b0", linewidth=0)
    else:
        values = color.reindex(embedding.index) if isinstance(color, pd.Series) else pd.Series(np.asarray(color),
                                                                                             index=embedding.index)
        if len(values) != len(embedding):
            raise DataError(f"color has {len(values)} values for {len(embedding)} points; give one per row")
        if values.dtype.kind in "biuf":
            image = ax.scatter(embedding["x"], embedding["y"], c=values, s=point_size, cmap="viridis", linewidth=0)
            ax.figure.colorbar(image, ax=ax, label=values.name or "")
        else:
            for label in pd.unique(values.astype(str)):
                keep = (values.astype(str) == label).to_numpy()
                ax.scatter(embedding["x"][keep], embedding["y"][keep], s=point_size, label=label, linewidth=0)
            ax.legend(fontsize=7, frameon=False, markerscale=1.5, loc="best")
    ax.set_xlabel(f"{method.upper()} 1" if method else "x")
    ax.set_ylabel(f"{method.upper()} 2" if method else "y")
    if title:
        ax.set_title(title)
    return _save(ax, path)
