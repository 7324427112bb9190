"""Fitted gradient-boosting trees as plain arrays: predicted without pickles, saved as tensors.

scikit-learn's ``HistGradientBoostingRegressor`` can only be saved by pickling it, and a model
file that is unpickled can run code. :class:`TreeEnsemble` keeps what prediction needs (every
tree's nodes and the baseline) as arrays, predicts with scikit-learn's own tree predictor, and
turns into a dict of tensors that ``torch.load(weights_only=True)`` reads back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..exceptions import ModelFileError

#: Rows predicted at a time: their float64 copy (a few MB) stays in the CPU's cache while every
#: tree walks it, where a larger piece is read from memory again by each tree.
PIECE_ROWS = 2**12


def _node_dtype() -> np.dtype:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    return np.dtype(PREDICTOR_RECORD_DTYPE)


def _cores(threads: int | None) -> int:
    if threads is not None:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class TreeEnsemble:
    """The trees of a fitted ``HistGradientBoostingRegressor`` (numerical features only).

    Attributes
    ----------
    nodes : numpy structured array
        Every tree's nodes, one tree after the other (scikit-learn's node record).
    starts : numpy.ndarray
        int64, ``n_trees + 1``: tree ``i`` is ``nodes[starts[i]:starts[i + 1]]``.
    baseline : float
        The prediction before the first tree.
    n_features : int

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingRegressor
    >>> X = np.random.default_rng(0).normal(size=(500, 3)); y = X[:, 0] ** 2
    >>> reg = HistGradientBoostingRegressor(max_iter=20).fit(X, y)
    >>> trees = TreeEnsemble.from_regressor(reg)
    >>> bool(np.allclose(trees.predict(X), reg.predict(X), atol=1e-5))
    True
    >>> bool(np.array_equal(TreeEnsemble.from_tensors(trees.to_tensors()).predict(X), trees.predict(X)))
    True
    """

    nodes: np.ndarray
    starts: np.ndarray
    baseline: float
    n_features: int

    @classmethod
    def from_regressor(cls, reg) -> TreeEnsemble:
        """The trees of a fitted single-output ``HistGradientBoostingRegressor``."""
        trees = [predictors[0].nodes for predictors in reg._predictors]
        if any(t["is_categorical"].any() for t in trees):
            raise ValueError("TreeEnsemble holds numerical splits only; the regressor has categorical ones")
        starts = np.cumsum([0] + [len(t) for t in trees]).astype(np.int64)
        nodes = np.concatenate(trees) if trees else np.zeros(0, dtype=_node_dtype())
        return cls(nodes, starts, float(np.asarray(reg._baseline_prediction).ravel()[0]), int(reg.n_features_in_))

    @property
    def n_trees(self) -> int:
        return len(self.starts) - 1

    def predict(self, X: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Predictions for the rows of ``X`` (n, n_features; NaN = missing), float32."""
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} feature columns, got shape {X.shape}")
        no_bitsets = np.zeros((0, 8), dtype=np.uint32)
        f_idx_map = np.zeros(self.n_features, dtype=np.uint32)
        trees = [TreePredictor(self.nodes[lo:hi], no_bitsets, no_bitsets)
                 for lo, hi in zip(self.starts[:-1], self.starts[1:])]
        out = np.full(len(X), self.baseline, dtype=np.float64)
        cores = _cores(threads)
        for s in range(0, len(X), PIECE_ROWS):
            piece = np.ascontiguousarray(X[s : s + PIECE_ROWS], dtype=np.float64)
            for tree in trees:
                out[s : s + len(piece)] += tree.predict(piece, no_bitsets, f_idx_map, cores)
        return out.astype(np.float32)

    def to_tensors(self, prefix: str = "") -> dict:
        """The ensemble as tensors (one per node field), keys starting with ``prefix``."""
        import torch  # (importing the package leaves PyTorch unloaded)

        out = {f"{prefix}node.{name}": torch.from_numpy(self.nodes[name].astype(_tensor_dtype(self.nodes.dtype[name])))
               for name in self.nodes.dtype.names}
        out[f"{prefix}starts"] = torch.from_numpy(self.starts.copy())
        out[f"{prefix}baseline"] = torch.tensor(self.baseline, dtype=torch.float64)
        out[f"{prefix}n_features"] = torch.tensor(self.n_features, dtype=torch.int64)
        return out

    @classmethod
    def from_tensors(cls, state: dict, prefix: str = "") -> TreeEnsemble:
        """The ensemble :meth:`to_tensors` wrote (ModelFileError naming a missing or odd field)."""
        dtype = _node_dtype()
        try:
            starts = state[f"{prefix}starts"].cpu().numpy().astype(np.int64)
            nodes = np.zeros(int(starts[-1]), dtype=dtype)
            for name in dtype.names:
                nodes[name] = state[f"{prefix}node.{name}"].cpu().numpy()
            baseline = float(state[f"{prefix}baseline"])
            n_features = int(state[f"{prefix}n_features"])
        except (KeyError, ValueError, IndexError) as err:
            raise ModelFileError(f"the saved trees {prefix!r} are incomplete ({type(err).__name__}: {err}); save the "
                                 "model again") from None
        if not _consistent(nodes, starts, n_features):  # bad indices would crash the tree predictor
            raise ModelFileError(f"the saved trees {prefix!r} are inconsistent; save the model again")
        return cls(nodes, starts, baseline, n_features)


def _consistent(nodes: np.ndarray, starts: np.ndarray, n_features: int) -> bool:
    """Every split names a feature and children inside its own tree."""
    if len(starts) < 1 or starts[0] != 0 or np.any(np.diff(starts) < 1) or starts[-1] != len(nodes):
        return False
    size = np.repeat(np.diff(starts), np.diff(starts))
    split = ~nodes["is_leaf"].astype(bool)
    return bool(np.all((nodes["feature_idx"][split] >= 0) & (nodes["feature_idx"][split] < n_features)
                       & (nodes["left"][split] < size[split]) & (nodes["right"][split] < size[split])))


def _tensor_dtype(dtype: np.dtype) -> np.dtype:
    """Unsigned ints wider than a byte are stored as int64 (torch's unsigned support is partial)."""
    if dtype.kind == "u" and dtype.itemsize > 1:
        return np.dtype(np.int64)
    return dtype


__all__ = ["TreeEnsemble"]
