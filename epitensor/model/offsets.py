"""The average-activity offset of the ``residual`` and ``baseline_weight`` options.

Training and prediction must use the same offset, so both the in-memory model and the stage-2
block workers call these functions.
"""

from __future__ import annotations

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
