"""Downstream tasks: how well a feature set predicts a biological label, by the papers' protocol.

The latent representation paper compares feature sets (measured tracks, imputations of them by
ChromImpute, PREDICTD or Avocado, or Avocado's genome factors) on the same labelled rows (genes
expressed or not, frequently interacting regions or not) with one protocol, reproduced here:

1. the rows are shuffled once with ``numpy.random.seed(seed)`` (seed 0 in the reference demo);
2. fold ``i`` is rows ``i::k`` of the shuffled rows (``k = 20``); for each fold ``i`` the model
   trains on the other folds except fold ``(i + 1) % k``, which decides when to stop boosting;
3. gradient boosting (here scikit-learn's ``HistGradientBoostingClassifier``, depth 6, stopped
   after 20 rounds without a better average precision on the validation fold);
4. the score is the average precision on fold ``i``; a feature set is summarised by the mean over
   the ``k`` folds and its standard error, against a constant predictor (the majority baseline,
   whose average precision is the fraction of positives).

Examples
--------
>>> import numpy as np
>>> from epitensor.latent import compare_features, summarize_folds
>>> rng = np.random.default_rng(0)
>>> y = rng.random(400) < 0.3
>>> signal = y[:, None] + rng.normal(0, 0.8, (400, 3))
>>> table = compare_features({"signal": signal, "noise": rng.normal(size=(400, 3))}, y, n_folds=5)
>>> s = summarize_folds(table)
>>> list(s.index)
['signal', 'noise', 'majority baseline']
>>> bool(s.loc["signal", "mean_average_precision"] > s.loc["noise", "mean_average_precision"])
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError

BASELINE = "majority baseline"
#: Gradient boosting settings (the reference demo's XGBoost depth and patience).
BOOSTING = {"max_depth": 6, "max_iter": 5000, "n_iter_no_change": 20, "learning_rate": 0.1}


def shuffled_order(n_rows: int, seed: int = 0) -> np.ndarray:
    """The row order of the reference protocol: ``numpy.random.seed(seed); numpy.random.shuffle``.

    Examples
    --------
    >>> shuffled_order(5, seed=0).tolist()
    [2, 0, 1, 3, 4]
    """
    state = np.random.RandomState(seed)
    order = np.arange(n_rows)
    state.shuffle(order)
    return order


def downstream_folds(n_rows: int, n_folds: int = 20, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(train, validation, test)`` row numbers of each fold, in the original row numbering.

    Fold ``i`` tests on shuffled rows ``i::n_folds``, stops early on rows ``(i+1) % n_folds ::
    n_folds`` and trains on the rest (in fold order, as the reference concatenates them).

    Examples
    --------
    >>> train, valid, test = downstream_folds(10, n_folds=5, seed=0)[0]
    >>> sorted(test.tolist() + valid.tolist() + train.tolist()) == list(range(10))
    True
    >>> len(train), len(valid), len(test)
    (6, 2, 2)
    """
    n_folds = _check_folds(n_folds, n_rows)
    order = shuffled_order(n_rows, seed)
    parts = [order[i::n_folds] for i in range(n_folds)]
    folds = []
    for i in range(n_folds):
        v = (i + 1) % n_folds
        train = np.concatenate([parts[j] for j in range(n_folds) if j not in (i, v)])
        folds.append((train, parts[v], parts[i]))
    return folds


def _check_folds(n_folds, n_rows: int) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 3:
        raise ArgumentError(f"n_folds must be an integer >= 3 (test, validation and training folds), got {n_folds!r}")
    if n_rows < 2 * n_folds:
        raise ArgumentError(f"{n_rows} rows are too few for {n_folds} folds; use fewer folds (n_folds=...)")
    return int(n_folds)


def binary_labels(labels, n_rows: int | None = None) -> np.ndarray:
    """Labels as a boolean vector, refusing anything that is not two classes.

    Continuous labels (expression levels) must be thresholded by the caller, e.g. ``y >= 0.5``.

    Examples
    --------
    >>> binary_labels([0, 1, 1.0]).tolist()
    [False, True, True]
    """
    y = np.asarray(labels.to_numpy() if hasattr(labels, "to_numpy") else labels)
    if y.ndim != 1:
        raise DataError(f"labels must be one value per row (1-D), got shape {y.shape}")
    if n_rows is not None and len(y) != n_rows:
        raise DataError(f"{len(y)} labels for {n_rows} feature rows; give one label per row")
    if y.dtype != bool:
        values = np.unique(y[~pd.isna(y)]) if y.dtype.kind in "fc" else np.unique(y)
        if y.dtype.kind in "fc" and np.isnan(y).any():
            raise DataError("labels contain NaN; drop those rows from the features and the labels")
        if not set(values.tolist()) <= {0, 1}:
            raise DataError(
                f"labels must be two classes (bool or 0/1), got values such as {values[:5].tolist()}; "
                "threshold continuous labels first, e.g. labels >= 0.5"
            )
        y = y.astype(bool)
    if y.all() or not y.any():
        raise DataError("labels hold a single class; average precision needs positives and negatives")
    return y


def feature_matrix(features, name: str = "features") -> np.ndarray:
    """A 2-D float matrix from a DataFrame, DataArray or array (rows are samples)."""
    values = features.to_numpy() if hasattr(features, "to_numpy") else np.asarray(getattr(features, "values", features))
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise DataError(f"{name}: features must be 2-D (rows x features), got shape {values.shape}")
    if values.dtype.kind not in "biuf":
        raise DataError(f"{name}: features must be numbers, got dtype {values.dtype}")
    return values.astype(np.float32, copy=False)


def fold_average_precision(features, labels, *, n_folds: int = 20, seed: int = 0, n_jobs: int = 1,
                           boosting: Mapping | None = None) -> pd.DataFrame:
    """Average precision of gradient boosting on each test fold of the reference protocol.

    Parameters
    ----------
    features : DataFrame, DataArray or array (n_rows, n_features)
        NaN is allowed (gradient boosting routes missing values).
    labels : array-like of bool or 0/1 (n_rows,)
    n_folds, seed : int
        20 folds and seed 0 are the reference demo's.
    n_jobs : int, default 1
        Folds fitted in parallel (each with one thread); -1 uses every core.
    boosting : mapping, optional
        Overrides of :data:`BOOSTING` (``HistGradientBoostingClassifier`` parameters).

    Returns
    -------
    DataFrame
        ``fold``, ``average_precision``, ``n_iter`` (boosting rounds kept), ``n_test``, ``n_positive``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> y = rng.random(300) < 0.2
    >>> t = fold_average_precision(y[:, None] + rng.normal(0, 0.5, (300, 2)), y, n_folds=5)
    >>> t.columns.tolist()
    ['fold', 'average_precision', 'n_iter', 'n_test', 'n_positive']
    >>> bool(t.average_precision.mean() > y.mean())
    True
    """
    from joblib import Parallel, delayed

    X = feature_matrix(features)
    y = binary_labels(labels, len(X))
    params = {**BOOSTING, **dict(boosting or {})}
    folds = downstream_folds(len(y), n_folds, seed)
    rows = Parallel(n_jobs=n_jobs)(delayed(_fit_fold)(X, y, i, fold, params) for i, fold in enumerate(folds))
    return pd.DataFrame(rows, columns=["fold", "average_precision", "n_iter", "n_test", "n_positive"])


def _fit_fold(X, y, i, fold, params) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import average_precision_score
    from threadpoolctl import threadpool_limits

    train, valid, test = fold
    model = HistGradientBoostingClassifier(early_stopping=True, scoring="average_precision", random_state=0, **params)
    with threadpool_limits(1):  # small fits: OpenMP threads cost more than they give
        model.fit(X[train], y[train], X_val=X[valid], y_val=y[valid])
        score = model.predict_proba(X[test])[:, 1]
    return {"fold": i, "average_precision": float(average_precision_score(y[test], score)), "n_iter": int(model.n_iter_),
            "n_test": len(test), "n_positive": int(y[test].sum())}


def baseline_average_precision(labels, *, n_folds: int = 20, seed: int = 0) -> pd.DataFrame:
    """The majority baseline on each test fold: a constant score, whose average precision is the
    fold's fraction of positives (the reference demo reports the whole set's fraction).

    Examples
    --------
    >>> t = baseline_average_precision([0, 1] * 20, n_folds=5)
    >>> t.average_precision.round(3).tolist() == (t.n_positive / t.n_test).round(3).tolist()
    True
    """
    y = binary_labels(labels)
    rows = []
    for i, (_, _, test) in enumerate(downstream_folds(len(y), n_folds, seed)):
        rows.append({"fold": i, "average_precision": float(y[test].mean()), "n_iter": 0, "n_test": len(test),
                     "n_positive": int(y[test].sum())})
    return pd.DataFrame(rows, columns=["fold", "average_precision", "n_iter", "n_test", "n_positive"])


def compare_features(feature_sets: Mapping, labels, *, n_folds: int = 20, seed: int = 0, n_jobs: int = 1,
                     baseline: bool = True, boosting: Mapping | None = None, progress: bool = False) -> pd.DataFrame:
    """Score several feature sets of the same rows by the protocol; one tidy row per set and fold.

    Parameters
    ----------
    feature_sets : mapping of name -> features
        Each (n_rows, n_features_of_that_set), rows in the same order as ``labels``.
    labels : array-like of bool or 0/1
    n_folds, seed, n_jobs, boosting
        As in :func:`fold_average_precision`; every set uses the same folds.
    baseline : bool, default True
        Add the majority baseline as the feature set ``"majority baseline"``.
    progress : bool, default False
        A progress bar over the feature sets.

    Returns
    -------
    DataFrame
        ``feature_set``, ``fold``, ``average_precision``, ``n_iter``, ``n_test``, ``n_positive``;
        :func:`summarize_folds` turns it into means and standard errors,
        :func:`epitensor.latent.plot_feature_comparison` into the paper's bar plot.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.arange(100) % 4 == 0
    >>> t = compare_features({"x": y[:, None] * 1.0}, y, n_folds=5)
    >>> sorted(t.feature_set.unique())
    ['majority baseline', 'x']
    """
    if not isinstance(feature_sets, Mapping) or not feature_sets:
        raise ArgumentError("feature_sets must be a non-empty mapping of name -> features, e.g. {'factors': X}")
    y = binary_labels(labels)
    matrices = {str(name): feature_matrix(x, str(name)) for name, x in feature_sets.items()}
    for name, x in matrices.items():
        if len(x) != len(y):
            raise DataError(f"feature set {name!r} has {len(x)} rows for {len(y)} labels; give the same rows to every set")
    names = list(matrices)
    if progress:
        from tqdm.auto import tqdm

        names = tqdm(names, desc="feature sets", unit="set")
    tables = [fold_average_precision(matrices[n], y, n_folds=n_folds, seed=seed, n_jobs=n_jobs,
                                     boosting=boosting).assign(feature_set=n) for n in names]
    if baseline:
        tables.append(baseline_average_precision(y, n_folds=n_folds, seed=seed).assign(feature_set=BASELINE))
    table = pd.concat(tables, ignore_index=True)
    return table[["feature_set", "fold", "average_precision", "n_iter", "n_test", "n_positive"]]


def summarize_folds(table: pd.DataFrame) -> pd.DataFrame:
    """Mean average precision over folds and its standard error, per feature set (input order).

    Returns
    -------
    DataFrame
        Indexed by ``feature_set``: ``mean_average_precision``, ``standard_error``, ``n_folds``,
        ``mean_n_iter``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"feature_set": ["a", "a"], "fold": [0, 1], "average_precision": [0.4, 0.6], "n_iter": [3, 5]})
    >>> summarize_folds(t).round(3).to_dict("records")
    [{'mean_average_precision': 0.5, 'standard_error': 0.1, 'n_folds': 2, 'mean_n_iter': 4.0}]
    """
    missing = {"feature_set", "average_precision"} - set(table.columns)
    if missing:
        raise DataError(f"not a table of compare_features: it lacks the columns {sorted(missing)}")
    groups = table.groupby("feature_set", sort=False)
    ap = groups["average_precision"]
    summary = pd.DataFrame({
        "mean_average_precision": ap.mean(),
        "standard_error": ap.std(ddof=1) / np.sqrt(ap.count()),
        "n_folds": ap.count(),
        "mean_n_iter": groups["n_iter"].mean() if "n_iter" in table else np.nan,
    })
    summary.index.name = "feature_set"
    return summary
