"""Training data from tracks: label pairs as table rows, the checks of a training set, its tensors.

:class:`~epitensor.Avocado` (stage 1 and extension) and the stage-2 block workers read the values
of their tracks each their own way (by label from a dataset, by index from a store) and build the
training tensors here, so the targets are the same everywhere.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..exceptions import DataError, ModelError
from ..store import label_index
from .config import AvocadoConfig
from .offsets import leave_one_out_mean
from .training import TrainingData, build_training_data


def as_labels(labels) -> list[str]:
    """``labels`` as a list of str (one str is one label).

    Examples
    --------
    >>> as_labels("E003"), as_labels(["E003", "E004"])
    (['E003'], ['E003', 'E004'])
    """
    return [labels] if isinstance(labels, str) else [str(x) for x in labels]


def pair_indices(pairs, biosamples, assays) -> np.ndarray:
    """Rows ``(n, 2)`` of the (biosample, assay) ``pairs`` in the label lists ``biosamples``/``assays``.

    Raises LabelError for a label missing from the lists.

    Examples
    --------
    >>> pair_indices([("B1", "x"), ("B0", "y")], ["B0", "B1"], ["x", "y"]).tolist()
    [[1, 0], [0, 1]]
    """
    pairs = [(str(b), str(a)) for b, a in pairs]
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    b = label_index(biosamples, [p[0] for p in pairs], "biosample")
    a = label_index(assays, [p[1] for p in pairs], "assay")
    return np.stack([b, a], axis=1).astype(np.int64)


def resolve_pairs(model, ds, pairs) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """(store indices, model indices, labels) of the (biosample, assay) pairs to impute.

    ``pairs``: ``"unobserved"`` (every pair of the model's labels the store ``ds`` lacks: the
    completion of the tensor), ``"all"`` or a list of (biosample, assay).

    Raises
    ------
    ModelError
        ``pairs`` is another string.
    LabelError
        A pair whose labels the store or the model lacks.
    """
    if isinstance(pairs, str):
        if pairs not in ("unobserved", "all"):
            raise ModelError(f"pairs must be 'unobserved', 'all' or a list of (biosample, assay), got {pairs!r}")
        obs = ds["observed"].sel(biosample=model.biosamples, assay=model.assays).values
        labels = [(b, a) for (i, b), (j, a) in itertools.product(enumerate(model.biosamples), enumerate(model.assays))
                  if pairs == "all" or not obs[i, j]]
    else:
        labels = [(str(b), str(a)) for b, a in pairs]
    store = pair_indices(labels, ds.biosample.values, ds.assay.values)
    return store, pair_indices(labels, model.biosamples, model.assays), labels


def pairs_to_impute(model, ds, pairs) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """:func:`resolve_pairs` for an imputation: ModelError when no pair is left (e.g. "unobserved"
    of a complete store), so nothing is opened for writing."""
    in_store, in_model, labels = resolve_pairs(model, ds, pairs)
    if not labels:
        raise ModelError(f"no (biosample, assay) pair to impute for pairs={pairs!r}")
    return in_store, in_model, labels


def observed_pairs(observed, biosamples, assays) -> list[tuple[str, str]]:
    """The (biosample, assay) pairs marked True in the ``observed`` matrix (rows ``biosamples``).

    Examples
    --------
    >>> observed_pairs(np.array([[True, False], [False, True]]), ["B0", "B1"], ["x", "y"])
    [('B0', 'x'), ('B1', 'y')]
    """
    return [(biosamples[i], assays[j]) for i, j in zip(*np.nonzero(np.asarray(observed)))]


def training_pairs(tracks, observed: list[tuple[str, str]], biosamples, assays) -> list[tuple[str, str]]:
    """The tracks to train on: ``tracks`` (default ``observed``), checked to be observed and to give
    every biosample and assay of the model a track."""
    if tracks is None:
        pairs = list(observed)
    else:
        pairs = [(str(b), str(a)) for b, a in tracks]
        for b, a in pairs:
            label_index(biosamples, b, "biosample"), label_index(assays, a, "assay")
        missing = [p for p in pairs if p not in set(observed)]
        if missing:
            raise ModelError(f"tracks {missing[:10]} are not observed in the store, so they cannot be trained on; "
                             "pass observed tracks only (ds.epi.tracks())")
    if not pairs:
        raise DataError("the training set is empty: no observed track among the model's biosamples and assays")
    no_b = sorted(set(biosamples) - {b for b, _ in pairs})
    no_a = sorted(set(assays) - {a for _, a in pairs})
    if no_b or no_a:
        raise ModelError(
            f"no observed training track for biosample(s) {no_b} and assay(s) {no_a}: their factors cannot be "
            "learned. Restrict the model with Avocado(ds, biosamples=[...], assays=[...]) or add tracks")
    return pairs


def training_data(values, biosample, assay, rows, config: AvocadoConfig, *, n_assays: int, device, seed: int,
                  track_names, validation_fraction: float, known_average=None) -> TrainingData:
    """The training tensors of tracks: their ``values`` (n_tracks, n_positions) on the device.

    Under ``config.residual`` the targets are the differences from the average activity: the
    leave-one-out mean of the other tracks of the same assay, or, for the tracks of the mask of
    ``known_average = (mask, average)``, the given average (what imputation adds back).

    Parameters
    ----------
    biosample, assay : array (n_tracks,)
        Table rows of each track's biosample and assay (:func:`pair_indices`).
    rows : tuple of 3 arrays
        Genome table rows of the positions.
    """
    values = np.asarray(values, dtype=np.float32)
    assay = np.asarray(assay, dtype=np.int64)
    if config.residual and np.isfinite(values).all():
        baseline = leave_one_out_mean(values, assay, n_assays)
        if known_average is not None:
            mask, average = known_average
            baseline[mask] = average
        values = values - baseline
    return build_training_data(values, biosample, assay, rows, device=device, validation_fraction=validation_fraction,
                               seed=seed, track_names=track_names)


def check_store_tracks(ds, tracks, what: str) -> None:
    """Raise ModelError naming the (biosample, assay) ``tracks`` that the store ``ds`` does not hold.

    ``what`` says what reads them: stage 2 (every training track in every block), or imputation with
    the average-activity offset (the training tracks of the imputed assays); without them the results
    would silently be NaN.
    """
    if not tracks:
        return
    obs = ds["observed"]
    store_b, store_a = {str(x) for x in ds.biosample.values}, {str(x) for x in ds.assay.values}
    missing = [(b, a) for b, a in tracks if b not in store_b or a not in store_a
               or not bool(obs.sel(biosample=b, assay=a).values)]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        source = ds.attrs.get("source")
        raise ModelError(f"the store{f' {source}' if source else ''} does not hold the model's training track(s) "
                         f"{missing[:5]}{more}, which {what} reads; use the store the model was trained on (or one "
                         "holding these tracks)")


__all__ = ["as_labels", "check_store_tracks", "observed_pairs", "pair_indices", "training_data", "training_pairs"]
