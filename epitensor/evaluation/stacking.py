"""A ChromImpute-style baseline: a track predicted from the biosample's own other marks.

* :func:`cross_assay` - for a (biosample, assay) track, a gradient-boosting regressor of how the
  track departs from the assay's average activity. Its features are the biosample's observed
  tracks of the other assays and their departures from *their* average activities, at each bin
  and in 275 bp and 2 kb windows around it, plus the assay's average activity and its windows.
  It is trained on the other biosamples where the assay is observed (their average activity
  leaves them out) and applied to the target biosample, as ChromImpute (Ernst & Kellis 2015)
  does with its cross-assay features. On peak calls (``kind="peaks"``) it learns the peak
  coverage itself, with small trees and training bins drawn near peaks.
* :func:`stacked_baseline` - the average activity and :func:`cross_assay` blended by weights
  fitted on *validation* tracks, never on the tracks being imputed: by default every training
  track predicted with itself left out, and one set of weights per biosample (how far a
  biosample follows the average of the others is a property of the biosample).

With few biosamples (the Roadmap sample: 5 x 5), :func:`stacked_baseline` is the strongest
imputation the project has measured; ``experiments/stacking_experiment.py`` compares it with the
default Avocado fit.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import xarray as xr

from ..arguments import check_integer
from ..exceptions import ArgumentError, LabelError
from .baselines import training_mask
from .trees import TreeEnsemble

LONG_NAMES = {"cross_assay": "cross-assay regression (ChromImpute-style)",
              "stacked": "average activity and cross-assay regression, stacked on validation tracks"}

#: Windows (in bins) of the regressor's smoothed features: 275 bp and 2,025 bp around the bin.
WINDOWS = (11, 81)

#: What the tracks hold (``kind`` of :func:`cross_assay`), and the leaves of each boosted tree for it.
LEAVES = {"signal": 63, "peaks": 7}

#: ``kind="peaks"``: bins this close to a peak of the assay (in the donor or the average of the other
#: donors) are "near" it, and half of each donor's training bins are drawn from them.
NEAR_PEAK_BINS = 40


def _windowed(x: np.ndarray) -> list[np.ndarray]:
    """``x`` and its means over each of :data:`WINDOWS` around every position. Where ``x`` has NaN
    (a store's bins between contigs, unmeasured stretches), a window's mean is over the finite
    values in it (NaN when there are none): a running mean would carry one NaN to every later
    position."""
    from scipy.ndimage import uniform_filter1d

    finite = np.isfinite(x)
    if finite.all():
        return [x] + [uniform_filter1d(x, w, mode="nearest") for w in WINDOWS]
    values, present = np.where(finite, x, 0).astype(np.float32), finite.astype(np.float32)
    out = [x]
    for w in WINDOWS:
        total, count = uniform_filter1d(values, w, mode="nearest"), uniform_filter1d(present, w, mode="nearest")
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(count > 0.5 / w, total / count, np.nan).astype(np.float32))
    return out


def _read(signal: xr.DataArray) -> np.ndarray:
    """``signal`` ``(biosample, assay, position)`` in memory as float32: from the store's chunk files
    when it is an unmodified store selection (:func:`epitensor.store.store_source`), else through xarray."""
    from ..store import read_selection, store_source

    source = store_source(signal)
    if source is not None:  # a new array already
        return read_selection(signal, source, slice(None)).values.astype(np.float32, copy=False)
    return np.array(signal.values, dtype=np.float32)  # a copy: the caller masks it in place


class TrackTable:
    """The training tracks of a signal region in memory: ``values[b, a]``, NaN where not training."""

    def __init__(self, signal: xr.DataArray, train):
        self.signal = signal.transpose("biosample", "assay", "position")
        self.mask = training_mask(self.signal, train).values
        self.biosamples = [str(b) for b in self.signal.biosample.values]
        self.assays = [str(a) for a in self.signal.assay.values]
        self.values = _read(self.signal)
        self.values[~self.mask] = np.nan

    @classmethod
    def from_values(cls, values: np.ndarray, mask: np.ndarray, biosamples, assays) -> TrackTable:
        """Tracks already in memory: ``values[b, a]`` (float32, NaN where ``mask`` is False)."""
        tracks = cls.__new__(cls)
        tracks.signal, tracks.mask, tracks.values = None, np.asarray(mask, dtype=bool).copy(), values
        tracks.biosamples, tracks.assays = [str(b) for b in biosamples], [str(a) for a in assays]
        return tracks

    def index(self, biosample, assay) -> tuple[int, int]:
        try:
            return self.biosamples.index(str(biosample)), self.assays.index(str(assay))
        except ValueError:
            raise LabelError(f"track ({biosample!r}, {assay!r}) is not in the signal's labels; use labels of "
                             f"signal.biosample and signal.assay") from None

    def average(self, a: int, leave_out) -> np.ndarray:
        keep = self.mask[:, a].copy()
        keep[list(leave_out)] = False
        if not keep.any():
            return np.full(self.values.shape[2], np.nan, dtype=np.float32)
        rows = [b for b in np.argsort(self.biosamples, kind="stable") if keep[b]]  # summed in label order
        return self.values[rows, a].mean(axis=0)

    def features(self, b: int, a: int, leave_out, rows=slice(None), kind: str = "signal") -> tuple[np.ndarray, np.ndarray]:
        """The regressor's features of track (b, a) and the offset it predicts from, at the positions
        ``rows`` (windows are taken over every position first). ``kind="signal"``: each other mark
        and its departure from its average activity; the offset is the average activity of ``a``
        without ``leave_out`` (0 where no other biosample has ``a``). ``kind="peaks"``: each other
        mark; offset 0 (the regressor predicts the coverage itself)."""
        cols = []
        per_mark = (1 + len(WINDOWS)) * (2 if kind == "signal" else 1)
        absent = [np.full(self.values.shape[2], np.nan, dtype=np.float32)] * per_mark
        for other in np.argsort(self.assays, kind="stable"):  # by label: the object's order does not matter
            if other == a:
                continue
            if not self.mask[b, other]:
                cols += absent
                continue
            own = self.values[b, other]
            cols += _windowed(own)
            if kind == "signal":
                cols += _windowed(own - self.average(other, leave_out=(b,)))
        average = self.average(a, leave_out)
        cols += _windowed(average)
        offset = np.nan_to_num(average[rows], nan=0.0) if kind == "signal" else np.zeros(len(cols[0][rows]), np.float32)
        return np.stack([c[rows] for c in cols], axis=1), offset


def training_bins(values: np.ndarray, average: np.ndarray | None, n_train: int, kind: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, weights)``: the positions a donor track ``values`` trains on, and their sample weights.

    ``kind="signal"``: ``n_train`` positions drawn uniformly where ``values`` is finite, weight 1
    (``average`` is not read and may be None).
    ``kind="peaks"``: peaks cover a few percent of the genome, so half of them are drawn from the
    positions within :data:`NEAR_PEAK_BINS` of a peak (``values`` or ``average`` above 0) and half
    from the rest; each half is weighted by its share of the positions, so the weighted sample has
    the genome's proportions while the trees see many more bins around peaks.
    """
    rows = np.flatnonzero(np.isfinite(values))
    if kind == "signal" or len(rows) <= n_train:
        rows = rng.choice(rows, size=min(n_train, len(rows)), replace=False)
        return rows, np.ones(len(rows))
    from scipy.ndimage import maximum_filter1d

    peak = (np.nan_to_num(values) > 0) | (np.nan_to_num(average) > 0)
    near = maximum_filter1d(peak, 2 * NEAR_PEAK_BINS + 1)[rows]
    pools = [rows[near], rows[~near]]
    k = min(len(pools[0]), n_train // 2)
    k = max(k, n_train - len(pools[1]))
    drawn = [rng.choice(pools[0], size=k, replace=False), rng.choice(pools[1], size=n_train - k, replace=False)]
    weights = [np.full(len(d), len(p) / max(len(d), 1)) for d, p in zip(drawn, pools)]
    return np.concatenate(drawn), np.concatenate(weights)


def fit_regressor(tracks: TrackTable, b: int, a: int, *, n_train: int, seed: int, max_iter: int,
                  threads: int | None, kind: str = "signal") -> TreeEnsemble:
    """The regressor of track (b, a), learned from the donor biosamples where ``a`` is a training
    track (never ``b``), as a :class:`TreeEnsemble`: how ``a`` departs from its average activity
    (``kind="signal"``), or its peak coverage (``kind="peaks"``); see :func:`cross_assay`."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    donors = [d for d in np.argsort(tracks.biosamples, kind="stable") if tracks.mask[d, a] and d != b]  # by label
    if not donors:
        raise LabelError(f"cross_assay: assay {tracks.assays[a]!r} has no training track in a biosample other than "
                         f"{tracks.biosamples[b]!r}, so there is nothing to learn it from")
    rng = np.random.default_rng(seed)
    X, y, weights = [], [], []
    for d in donors:
        target = tracks.values[d, a]
        near = tracks.average(a, leave_out=(d, b)) if kind == "peaks" else None  # only the peaks' draw reads it
        rows, w = training_bins(target, near, n_train, kind, rng)
        features, offset = tracks.features(d, a, leave_out=(d, b), rows=rows, kind=kind)
        X.append(features)
        y.append(target[rows] - offset)
        weights.append(w)
    X = np.concatenate(X)
    X[:, np.isnan(X).all(axis=0)] = 0.0  # an assay no donor has: constant, so no tree splits on it
    reg = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=LEAVES[kind],
                                        random_state=seed)
    with threadpool_limits(threads, user_api="openmp"):  # None: scikit-learn's own choice
        reg.fit(X, np.concatenate(y), sample_weight=None if kind == "signal" else np.concatenate(weights))
    return TreeEnsemble.from_regressor(reg)


def _predict(tracks: TrackTable, b: int, a: int, *, threads: int | None, kind: str, **options) -> np.ndarray:
    trees = fit_regressor(tracks, b, a, threads=threads, kind=kind, **options)
    features, offset = tracks.features(b, a, leave_out=(b,), kind=kind)
    return trees.predict(features, threads) + offset


def _threads(threads) -> int | None:
    """``threads`` checked: None (scikit-learn's choice) or a count >= 1 (else ModelError)."""
    return None if threads is None else check_integer(threads, "threads", 1)


def _labelled(signal: xr.DataArray, predictions: dict, name: str) -> xr.DataArray:
    """``(biosample, assay, position)`` NaN except at the predicted tracks."""
    sig = signal.transpose("biosample", "assay", "position")
    out = np.full(sig.shape, np.nan, dtype=np.float32)
    biosamples = [str(b) for b in sig.biosample.values]
    assays = [str(a) for a in sig.assay.values]
    for (b, a), values in predictions.items():
        out[biosamples.index(b), assays.index(a)] = values
    coords = {k: v for k, v in sig.coords.items() if set(v.dims) <= {"biosample", "assay", "position"}
              and k != "observed"}
    attrs = {k: v for k, v in signal.attrs.items() if not k.startswith("precision")}  # the signal's storage
    attrs["long_name"] = LONG_NAMES[name]
    return xr.DataArray(out, dims=sig.dims, coords=coords, attrs=attrs, name=name)


def _pairs(tracks: TrackTable, pairs) -> list[tuple[str, str]]:
    pairs = [(str(b), str(a)) for b, a in pairs]
    for p in pairs:
        tracks.index(*p)
    return pairs


def _regress(tracks: TrackTable, pairs, **options) -> dict:
    """The regressor's prediction of each of ``pairs``: ``(biosample, assay) -> values``."""
    predictions = {}
    for b, a in pairs:
        bi, ai = tracks.index(b, a)
        saved = tracks.mask[bi, ai]
        tracks.mask[bi, ai] = False  # a track never trains its own prediction
        try:
            predictions[(b, a)] = _predict(tracks, bi, ai, **options)
        finally:
            tracks.mask[bi, ai] = saved
    return predictions


def cross_assay(signal: xr.DataArray, pairs, train=None, *, n_train: int = 150_000, seed: int = 0,
                max_iter: int = 200, threads: int | None = None, kind: str = "signal") -> xr.DataArray:
    """Predict each of ``pairs`` from its biosample's other marks (a ChromImpute-style regressor).

    Parameters
    ----------
    signal : DataArray
        ``(biosample, assay, position)`` signal of the region to predict, e.g.
        ``ds.signal.epi.region("chr21")``; it is read into memory.
    pairs : list of (biosample, assay)
        The tracks to predict. A track in ``train`` is left out of its own prediction.
    train : DataArray or array of bool (biosample, assay), optional
        Training tracks; default: the ``observed`` coordinate.
    n_train : int
        Positions drawn (seeded) from each donor biosample to train the regressor of a track.
    seed : int
    max_iter : int
        Boosting iterations (scikit-learn's ``HistGradientBoostingRegressor``; it stops early on
        its own 10% validation split).
    threads : int, optional
        OpenMP threads of the boosting (default: scikit-learn's, one per core). On a machine shared
        with other work, ``threads=1`` can be many times faster: OpenMP threads spin while they
        wait for a core. The predictions do not depend on it.
    kind : {"signal", "peaks"}
        What the tracks hold. ``"signal"`` (default): continuous signal such as ChIP-seq fold
        enrichment; the regressor learns how the track departs from the assay's average activity,
        from the other marks and their own departures, with trees of 63 leaves. ``"peaks"``: peak
        calls ingested as coverage (0 outside peaks, as in :func:`epitensor.datasets.encode_peaks`);
        it learns the coverage itself from the other
        marks and the average, with trees of 7 leaves (larger trees learn how the donor lines' peak
        calls differ, which does not carry to another line), and half of each donor's ``n_train``
        positions are drawn near the assay's peaks (:func:`training_bins`).

    Returns
    -------
    DataArray
        ``(biosample, assay, position)`` float32, NaN except at ``pairs``. Named ``cross_assay``.

    Raises
    ------
    LabelError
        A pair not in the signal's labels, or whose assay has no training track elsewhere.
    ModelError
        ``threads`` is not a whole number >= 1.
    ArgumentError
        ``kind`` is not ``"signal"`` or ``"peaks"``.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=6_000, missing=0.0, seed=0)
    >>> pred = et.evaluation.cross_assay(ds.signal, [("B00", "H3K27ac")], n_train=2_000, max_iter=20)
    >>> pred.sel(biosample="B00", assay="H3K27ac").shape, bool(pred.sel(biosample="B01").isnull().all())
    ((6000,), True)
    """
    kind = _kind(kind, "cross_assay")
    tracks = TrackTable(signal, train)
    predictions = _regress(tracks, _pairs(tracks, pairs), n_train=n_train, seed=seed, max_iter=max_iter,
                           threads=_threads(threads), kind=kind)
    return _labelled(signal, predictions, "cross_assay")


def _kind(kind, what: str) -> str:
    if kind not in LEAVES:
        raise ArgumentError(f"{what}: kind must be 'signal' (continuous signal) or 'peaks' (peak coverage), got {kind!r}")
    return kind


def leave_one_out_tracks(trained, pairs) -> list[tuple[str, str]]:
    """Training tracks (not among ``pairs``) whose biosample and assay both keep another training track."""
    per_b = Counter(b for b, _ in trained)
    per_a = Counter(a for _, a in trained)
    return [p for p in trained if p not in pairs and per_b[p[0]] > 1 and per_a[p[1]] > 1]


def blend_equations(value: np.ndarray, average: np.ndarray, regressed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(X'X, X'y)`` of one validation track for ``value ~ w_average * average + w_cross_assay *
    regressed + intercept`` over its positions where ``value`` and ``average`` are finite: what
    :func:`blend_weights` sums over tracks."""
    keep = np.isfinite(value) & np.isfinite(average)
    X = np.stack([average[keep], regressed[keep], np.ones(keep.sum())], axis=1).astype(np.float64)
    return X.T @ X, X.T @ value[keep].astype(np.float64)


def blend_weights(equations: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Least-squares (average activity, cross-assay, intercept) weights of the tracks whose
    :func:`blend_equations` are ``equations``."""
    return np.linalg.lstsq(sum(G for G, _ in equations), sum(r for _, r in equations), rcond=None)[0]


def biosample_weights(equations: dict, biosample: str, per_biosample: bool = True) -> np.ndarray | None:
    """The blend weights of ``biosample`` from ``equations`` (``(biosample, assay) -> (X'X, X'y)``):
    its own tracks' when ``per_biosample`` and it has at least :data:`MIN_TRACKS_PER_BIOSAMPLE`,
    else every track's (pooled). None when ``equations`` is empty."""
    own = [v for p, v in equations.items() if p[0] == biosample]
    use = own if per_biosample and len(own) >= MIN_TRACKS_PER_BIOSAMPLE else list(equations.values())
    return blend_weights(use) if use else None


def _named(w: np.ndarray) -> dict:
    return {"average_activity": float(w[0]), "cross_assay": float(w[1]), "intercept": float(w[2])}


#: Fewest validation tracks of a biosample that give it weights of its own (else the pooled ones).
MIN_TRACKS_PER_BIOSAMPLE = 2


def stacked_baseline(signal: xr.DataArray, pairs, train=None, *, validation_tracks="leave-one-out",
                     weights: str = "biosample", n_train: int = 150_000, seed: int = 0,
                     max_iter: int = 200, threads: int | None = None, kind: str = "signal") -> xr.DataArray:
    """The average activity and :func:`cross_assay`, blended by weights chosen on validation tracks.

    Each validation track is predicted both ways without itself, and the weights ``w_average``,
    ``w_cross_assay`` and an intercept are the least squares fit of those predictions to its
    values. The same weights then blend the predictions of ``pairs`` (made from every training
    track). The tracks being imputed never choose the weights.

    Parameters
    ----------
    signal, pairs, train, n_train, seed, max_iter, threads, kind
        As for :func:`cross_assay`.
    validation_tracks : "leave-one-out", int or list of (biosample, assay)
        ``"leave-one-out"`` (default): every training track whose biosample and assay keep other
        training tracks, each predicted with only itself left out (one regressor per track: the
        cost grows with the number of training tracks, so this suits small compendia). A count or
        a list: those training tracks are held out *together* (a count picks a Latin-square-like
        spread, as :func:`epitensor.model.validation.choose_validation_tracks` does).
    weights : {"biosample", "pooled"}
        ``"biosample"`` (default): one set of weights per biosample, fitted on that biosample's
        validation tracks (how closely a biosample follows the others' average is a property of
        the biosample); a biosample with fewer than :data:`MIN_TRACKS_PER_BIOSAMPLE` of them gets
        the pooled weights. ``"pooled"``: one set for all.

    Returns
    -------
    DataArray
        ``(biosample, assay, position)`` float32, NaN except at ``pairs``, named ``stacked``, with
        ``attrs["stack_weights"]`` (per biosample of ``pairs``: ``{"average_activity": w,
        "cross_assay": w, "intercept": c}``), ``attrs["pooled_weights"]`` (the weights of all the
        validation tracks together: what ``weights="pooled"`` uses) and ``attrs["validation_tracks"]``.

    Raises
    ------
    LabelError
        As :func:`cross_assay`; or no training track can serve for validation.
    ArgumentError
        ``weights``, ``validation_tracks`` or ``kind`` is not one of the choices.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=6_000, missing=0.0, seed=0)
    >>> out = et.evaluation.stacked_baseline(ds.signal, [("B00", "H3K27ac")], n_train=2_000, max_iter=20)
    >>> sorted(out.attrs["stack_weights"]["B00"]), len(out.attrs["validation_tracks"])
    (['average_activity', 'cross_assay', 'intercept'], 14)
    """
    from ..model.validation import choose_validation_tracks

    if weights not in ("biosample", "pooled"):
        raise ArgumentError(f"stacked_baseline: weights must be 'biosample' or 'pooled', got {weights!r}")
    if isinstance(validation_tracks, str) and validation_tracks != "leave-one-out":
        raise ArgumentError(f"stacked_baseline: validation_tracks must be 'leave-one-out', a count or a list of "
                            f"(biosample, assay), got {validation_tracks!r}")
    together = not isinstance(validation_tracks, str)  # held out together, not each without itself
    tracks = TrackTable(signal, train)
    pairs = _pairs(tracks, pairs)
    trained = sorted((tracks.biosamples[b], tracks.assays[a]) for b, a in zip(*np.nonzero(tracks.mask)))  # by label
    if not together:
        held = leave_one_out_tracks(trained, pairs)
    elif isinstance(validation_tracks, int):
        held = choose_validation_tracks([p for p in trained if p not in pairs], validation_tracks, seed)
    else:
        held = _pairs(tracks, validation_tracks)
    if not held:
        raise LabelError("stacked_baseline: no training track can be held out for validation (each must leave its "
                         "biosample and assay other training tracks); pass validation_tracks= a list")
    held_mask = np.zeros_like(tracks.mask)
    for b, a in held:
        held_mask[tracks.index(b, a)] = True
    options = {"n_train": n_train, "seed": seed, "max_iter": max_iter, "threads": _threads(threads),
               "kind": _kind(kind, "stacked_baseline")}
    equations = {}
    if together:
        tracks.mask &= ~held_mask  # the validation tracks train nothing while they are scored
    try:
        for (b, a), regressed in _regress(tracks, held, **options).items():  # each leaves itself out
            bi, ai = tracks.index(b, a)
            equations[(b, a)] = blend_equations(tracks.values[bi, ai], tracks.average(ai, leave_out=(bi,)), regressed)
    finally:
        if together:
            tracks.mask |= held_mask
    pooled = blend_weights(list(equations.values()))
    chosen = {b: biosample_weights(equations, b, weights == "biosample") for b in dict.fromkeys(b for b, _ in pairs)}
    predictions = {}
    for (b, a), regressed in _regress(tracks, pairs, **options).items():  # the signal read once, above
        bi, ai = tracks.index(b, a)
        average = tracks.average(ai, leave_out=(bi,))
        w = chosen[b]
        predictions[(b, a)] = (w[0] * average + w[1] * regressed + w[2]).astype(np.float32)
    out = _labelled(signal, predictions, "stacked")
    out.attrs["stack_weights"] = {b: _named(w) for b, w in chosen.items()}
    out.attrs["pooled_weights"] = _named(pooled)
    out.attrs["validation_tracks"] = [list(p) for p in held]
    return out
