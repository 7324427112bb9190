"""The cross-assay stack of ``cross_assay=True`` (what ``preset="auto"`` adds on small compendia).

With few biosamples per assay the network alone does worse than the average activity on held-out
tracks, and the strongest imputation measured on such compendia is
:func:`epitensor.evaluation.stacked_baseline` (issue 13): the average activity and a
ChromImpute-style regressor of the biosample's own other marks, blended per biosample by weights
fitted on every training track predicted without itself. :class:`CrossAssayStack` is that stack
inside the model, so imputations anywhere in the store, saved models and the network's blend all
use it:

- one regressor (:class:`~epitensor.evaluation.trees.TreeEnsemble`) per (biosample, assay) of the
  model whose assay has a training track in another biosample, fitted on the fit region;
- per biosample, least-squares weights of (average activity, regressor, intercept) over its
  training tracks, each predicted by its own regressor (which never saw it) and the average of
  the other biosamples. Only the 3 x 3 normal equations of each track are kept, so the weights
  without some tracks (the validation tracks, when the network's share is chosen on them) cost
  nothing. A validation track's own regressor and average never see its values; the weights of
  its biosample do, a little, through the other tracks' regressors, which read it as a feature.

The network's imputation is then blended with the stack instead of the average activity:
``(1 - baseline_weight) * network + baseline_weight * stack``.

A prediction at a position reads the stack's training tracks within :data:`PAD` bins of it (the
regressor's widest window), on the same contig, so it does not depend on how a region is sliced.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..exceptions import ModelFileError

#: Training positions drawn from each donor biosample, and boosting iterations, of each regressor.
N_TRAIN = 40_000
MAX_ITER = 100

#: Most positions predicted from one read of the training tracks (bounds the features in memory).
SPAN_BINS = 2**20


def _pad() -> int:
    from ..evaluation.stacking import WINDOWS

    return max(WINDOWS) // 2


class CrossAssayStack:
    """Regressors per (biosample, assay) and blend weights per biosample; see the module docstring.

    Build it with :meth:`fit`; :meth:`predict` gives the stack's imputations at genome-wide positions.

    Attributes
    ----------
    biosamples, assays : list of str
        The model's labels (the stack's table).
    tracks : list of (biosample, assay)
        The training tracks it learned from and reads at prediction time.
    regressors : dict
        ``(biosample, assay) -> TreeEnsemble``.
    normal : dict
        ``(biosample, assay) -> (G, r)``: the 3 x 3 and 3 normal equations of each training track
        that chose the weights.
    fitted_on : list of (start, end)
        The fit region (genome-wide positions).
    """

    def __init__(self, biosamples, assays, tracks, regressors: dict, normal: dict, fitted_on=None):
        self.biosamples, self.assays = list(biosamples), list(assays)
        self.tracks = [(str(b), str(a)) for b, a in tracks]
        self.regressors, self.normal = regressors, normal
        self.fitted_on = fitted_on  # the fit region's intervals of genome-wide positions

    def __repr__(self) -> str:
        return f"CrossAssayStack({len(self.regressors)} regressors, {len(self.normal)} tracks chose the weights)"

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, biosamples, assays, tracks, values: np.ndarray, *, seed: int = 0, threads: int | None = None,
            progress: bool = False, n_train: int | None = None, max_iter: int | None = None) -> CrossAssayStack:
        """Fit on ``values`` (``len(tracks)`` x positions, float32) of the training ``tracks``; each
        regressor draws ``n_train`` positions per donor (default :data:`N_TRAIN`) and boosts
        ``max_iter`` times (default :data:`MAX_ITER`)."""
        from ..evaluation.stacking import TrackTable, fit_regressor, leave_one_out_tracks

        n_train = N_TRAIN if n_train is None else n_train
        max_iter = MAX_ITER if max_iter is None else max_iter

        table = _table(biosamples, assays, tracks, values)
        data = TrackTable.from_values(table, _mask(biosamples, assays, tracks), biosamples, assays)
        trained = sorted((str(b), str(a)) for b, a in tracks)
        scored = set(leave_one_out_tracks(trained, []))
        pairs = [(bi, ai) for bi in range(len(biosamples)) for ai in range(len(assays))
                 if (np.delete(data.mask[:, ai], bi)).any()]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pairs), desc="cross-assay regressors", unit="track")
        regressors, normal = {}, {}
        for bi, ai in pairs:
            b, a = data.biosamples[bi], data.assays[ai]
            saved, data.mask[bi, ai] = data.mask[bi, ai], False  # a track never trains its own regressor
            try:
                trees = fit_regressor(data, bi, ai, n_train=n_train, seed=seed, max_iter=max_iter, threads=threads)
            finally:
                data.mask[bi, ai] = saved
            regressors[(b, a)] = trees
            if (b, a) in scored:
                normal[(b, a)] = _normal_equations(data, bi, ai, trees, threads)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        return cls(biosamples, assays, tracks, regressors, normal)

    # ------------------------------------------------------------------ weights
    def weights(self, biosample: str, without=()) -> np.ndarray | None:
        """(average activity, regressor, intercept) of ``biosample``
        (:func:`~epitensor.evaluation.stacking.biosample_weights` of :attr:`normal`); ``without``:
        tracks left out of the fit. None when no track is left."""
        from ..evaluation.stacking import biosample_weights

        return biosample_weights({p: v for p, v in self.normal.items() if p not in set(without)}, biosample)

    # ------------------------------------------------------------------ prediction
    def predict(self, pairs, positions, read: Callable, genome, *, without=(), threads: int | None = None) -> np.ndarray:
        """The stack's imputation of (biosample, assay) ``pairs`` at genome-wide ``positions``.

        ``read(tracks, positions)`` returns the values of the training tracks (as
        :meth:`epitensor.Avocado.read_tracks`). NaN for a pair without regressor (its assay has no
        training track in another biosample). ``without``: tracks whose values must not choose the
        weights (the network's validation tracks, while they are scored).
        """
        from ..evaluation.stacking import TrackTable

        pairs = [(str(b), str(a)) for b, a in pairs]
        positions = np.asarray(positions, dtype=np.int64)
        out = np.full((len(pairs), len(positions)), np.nan, dtype=np.float32)
        known = [i for i, p in enumerate(pairs) if p in self.regressors]
        if not known or not len(positions):
            return out
        weights = {b: self.weights(b, without) for b in {pairs[i][0] for i in known}}
        for lo, hi, where in _spans(positions, genome, _pad()):
            table = _table(self.biosamples, self.assays, self.tracks, read(self.tracks, np.arange(lo, hi)))
            data = TrackTable.from_values(table, _mask(self.biosamples, self.assays, self.tracks), self.biosamples,
                                       self.assays)
            at = positions[where] - lo
            for i in known:
                b, a = pairs[i]
                w = weights[b]
                if w is None:
                    continue
                bi, ai = self.biosamples.index(b), self.assays.index(a)
                features, offset = data.features(bi, ai, leave_out=(bi,), rows=at)
                regressed = self.regressors[(b, a)].predict(features, threads) + offset
                average = data.average(ai, leave_out=(bi,))[at]
                out[i, where] = w[0] * average + w[1] * regressed + w[2]
        return out

    # ------------------------------------------------------------------ saving
    def to_state(self) -> tuple[dict, dict]:
        """``(metadata for config.json, tensors for the weights file)``."""
        tensors = {}
        for i, trees in enumerate(self.regressors.values()):
            tensors.update(trees.to_tensors(f"cross_assay.{i}."))
        meta = {"tracks": [list(p) for p in self.tracks], "regressors": [list(p) for p in self.regressors],
                "fitted_on": [list(map(int, iv)) for iv in (self.fitted_on or [])],
                "normal": [[list(p), np.asarray(G).tolist(), np.asarray(r).tolist()] for p, (G, r) in self.normal.items()]}
        return meta, tensors

    @classmethod
    def from_state(cls, biosamples, assays, meta: dict, tensors: dict) -> CrossAssayStack:
        """The stack :meth:`to_state` wrote (ModelFileError when it is incomplete)."""
        from ..evaluation.trees import TreeEnsemble

        try:
            tracks = [(str(b), str(a)) for b, a in meta["tracks"]]
            regressors = {(str(b), str(a)): TreeEnsemble.from_tensors(tensors, f"cross_assay.{i}.")
                          for i, (b, a) in enumerate(meta["regressors"])}
            normal = {(str(p[0]), str(p[1])): (np.array(G, dtype=np.float64).reshape(3, 3),
                                               np.array(r, dtype=np.float64).reshape(3)) for p, G, r in meta["normal"]}
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"the saved cross-assay stack is malformed ({type(err).__name__}: {err}); save the "
                                 "model again") from None
        unknown = [p for p in [*tracks, *regressors] if p[0] not in biosamples or p[1] not in assays]
        if unknown:
            raise ModelFileError(f"the saved cross-assay stack names tracks outside the model's labels, e.g. "
                                 f"{unknown[:3]}; save the model again")
        return cls(biosamples, assays, tracks, regressors, normal, [list(map(int, iv)) for iv in meta.get("fitted_on", [])])


def split_state(state: dict) -> tuple[dict, dict]:
    """A weights file's state split into the network's tensors and the stack's."""
    stack = {k: v for k, v in state.items() if k.startswith("cross_assay.")}
    return {k: v for k, v in state.items() if k not in stack}, stack


def _mask(biosamples, assays, tracks) -> np.ndarray:
    mask = np.zeros((len(biosamples), len(assays)), dtype=bool)
    for b, a in tracks:
        mask[list(biosamples).index(b), list(assays).index(a)] = True
    return mask


def _table(biosamples, assays, tracks, values) -> np.ndarray:
    """``values`` of ``tracks`` as ``(biosample, assay, position)``, NaN where no track is."""
    values = np.asarray(values, dtype=np.float32)
    table = np.full((len(biosamples), len(assays), values.shape[1]), np.nan, dtype=np.float32)
    for (b, a), v in zip(tracks, values):
        table[list(biosamples).index(b), list(assays).index(a)] = v
    return table


def _normal_equations(data, bi: int, ai: int, trees, threads) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~epitensor.evaluation.stacking.blend_equations` of track (bi, ai), predicted by its own
    regressor ``trees`` and the average of the other biosamples."""
    from ..evaluation.stacking import blend_equations

    features, offset = data.features(bi, ai, leave_out=(bi,))
    return blend_equations(data.values[bi, ai], data.average(ai, leave_out=(bi,)), trees.predict(features, threads) + offset)


def _spans(positions: np.ndarray, genome, pad: int, most: int | None = None):
    """``(lo, hi, where)``: stretches of one contig covering ``positions[where]`` with ``pad`` bins each
    side (clipped to the contig); positions closer than ``2 * pad`` share a stretch, and a stretch
    covers at most ``most`` (default :data:`SPAN_BINS`) bins of positions. Every position keeps
    ``pad`` bins each side inside its stretch, so the pieces predict what one stretch would."""
    most = SPAN_BINS if most is None else most
    order = np.argsort(positions, kind="stable")
    sorted_ = positions[order]
    firsts = np.asarray(genome.first_bins, dtype=np.int64)
    contig = np.searchsorted(firsts, sorted_, side="right") - 1
    ends = np.array([genome.contig_bins(c)[1] for c in genome.contigs], dtype=np.int64)
    breaks = np.flatnonzero((np.diff(sorted_) > 2 * pad) | (np.diff(contig) != 0)) + 1
    for piece in np.split(np.arange(len(sorted_)), breaks):
        offsets = (sorted_[piece] - sorted_[piece[0]]) // most
        for part in np.split(piece, np.flatnonzero(np.diff(offsets)) + 1):
            c = contig[part[0]]
            lo = max(int(sorted_[part[0]]) - pad, int(firsts[c]))
            hi = min(int(sorted_[part[-1]]) + pad + 1, int(ends[c]))
            yield lo, hi, order[part]


__all__ = ["MAX_ITER", "N_TRAIN", "CrossAssayStack", "split_state"]
