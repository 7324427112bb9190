"""The average-activity offset of the ``residual`` and ``baseline_weight`` options.

Training and prediction must use the same offset, so both the in-memory model and the stage-2
block workers call these functions.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .config import AvocadoConfig


def leave_one_out_mean(values: np.ndarray, track_assay: np.ndarray, n_assays: int) -> np.ndarray:
    """Per-entry mean of the other training tracks of the same assay (0 where there is none).

    Examples
    --------
    >>> leave_one_out_mean(np.array([[1.0], [3.0], [5.0]]), np.array([0, 0, 1]), 2).ravel().tolist()
    [3.0, 1.0, 0.0]
    """
    sums = np.zeros((n_assays, values.shape[1]), dtype=np.float64)
    np.add.at(sums, track_assay, values)
    counts = np.bincount(track_assay, minlength=n_assays)[track_assay][:, None]
    others = sums[track_assay] - values
    return np.where(counts > 1, others / np.maximum(counts - 1, 1), 0.0).astype(np.float32)


def offset_applies(config: AvocadoConfig, n_training_tracks: int) -> bool:
    """Whether an assay's average activity is part of its predictions.

    Under ``residual`` an assay with a single training track was trained on its raw signal (its
    leave-one-out mean is 0), so its predictions must not add its average back.
    """
    return n_training_tracks > 0 and (config.baseline_weight > 0 or not config.residual or n_training_tracks > 1)


def combine_with_average(pred: np.ndarray, average: np.ndarray, config: AvocadoConfig) -> np.ndarray:
    """The network's output turned into an imputation: add the average back under ``residual``,
    then shrink toward it by ``baseline_weight``. Identity when neither option is set."""
    w = config.baseline_weight
    if not (config.residual or w > 0):
        return pred
    return (1 - w) * (pred + average if config.residual else pred) + w * average


def uses_average(config: AvocadoConfig) -> bool:
    """Whether imputations add the average activity (``residual`` or ``baseline_weight`` > 0)."""
    return bool(config.residual or config.baseline_weight > 0)


def offset_pairs(config: AvocadoConfig, training_tracks, assays) -> list[tuple[str, str]]:
    """The training tracks (in their order) whose mean is the average activity of ``assays``.

    Examples
    --------
    >>> offset_pairs(AvocadoConfig(residual=True), [("A", "x"), ("B", "x"), ("A", "y")], ["x", "y"])
    [('A', 'x'), ('B', 'x')]
    """
    counts = Counter(a for _, a in training_tracks)
    wanted = set(assays)
    return [(b, a) for b, a in training_tracks if a in wanted and offset_applies(config, counts[a])]


def average_activity(values: np.ndarray, track_assay: np.ndarray, assays, config: AvocadoConfig) -> np.ndarray:
    """Mean of the training tracks of each of ``assays`` (table rows): ``(len(assays), n_positions)``.

    ``values`` holds the training tracks (rows), ``track_assay`` the assay row of each; an assay
    whose offset does not apply (:func:`offset_applies`) gets zeros.

    Examples
    --------
    >>> average_activity(np.array([[1.0], [3.0]]), np.array([0, 0]), [0, 1], AvocadoConfig()).ravel().tolist()
    [2.0, 0.0]
    """
    out = np.zeros((len(assays), values.shape[1]), dtype=np.float32)
    for k, a in enumerate(assays):
        sel = track_assay == a
        if offset_applies(config, int(sel.sum())):
            out[k] = values[sel].mean(axis=0)
    return out
