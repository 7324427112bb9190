"""Cross-validation over whole experiments: the Avocado paper's greedy folds and a training loop.

Fold rule (the paper): go biosample by biosample, shuffle that biosample's observed experiments,
and deal them to folds with one counter that keeps running from one biosample to the next.
Consecutive experiments of a biosample land in different folds, so every biosample with at least
two experiments keeps training data in every fold, and the running counter spreads each assay
over the folds better than drawing folds at random.

Model protocol for :func:`cross_validate`: ``model_factory(train_ds)`` returns an object with

* ``fit(**fit_kwargs)`` - train on ``train_ds`` (the dataset it was built from), and
* ``impute(biosample=..., assay=..., region=...)`` - a DataArray ``(biosample, assay, position)``
  (or ``(position,)``) over ``region`` (None: the whole position axis).

``train_ds`` is a view of the dataset in which the fold's held-out tracks are hidden: their
``observed`` entries are False and their ``signal`` is NaN, so a model that respects ``observed``
or NaN cannot see them. :class:`epitensor.Avocado` follows this protocol
(``model_factory=et.Avocado``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import DataError, SchemaError
from .baselines import average_activity
from .scoring import evaluate


def _observed(observed) -> xr.DataArray:
    if isinstance(observed, xr.Dataset):
        observed = observed["observed"]
    if not isinstance(observed, xr.DataArray) or set(observed.dims) != {"biosample", "assay"}:
        raise SchemaError("observed must be the (biosample, assay) bool mask of a dataset, e.g. ds.observed")
    return observed.astype(bool).transpose("biosample", "assay").reset_coords(drop=True)


def cv_folds(observed, n_folds: int = 5, seed: int = 0) -> xr.DataArray:
    """Assign observed experiments to folds by the paper's greedy running-counter rule.

    Parameters
    ----------
    observed : DataArray (biosample, assay) of bool, or a Dataset with ``observed``
    n_folds : int, default 5
    seed : int, default 0
        Seeds the shuffle of each biosample's experiments.

    Returns
    -------
    DataArray
        ``(biosample, assay)`` int fold ids, -1 for unobserved pairs; named ``fold``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> obs = xr.DataArray(np.ones((2, 3), bool), dims=("biosample", "assay"),
    ...                    coords={"biosample": ["B0", "B1"], "assay": ["x", "y", "z"]})
    >>> folds = cv_folds(obs, n_folds=2, seed=0)
    >>> sorted(np.bincount(folds.values.ravel()).tolist())
    [3, 3]
    """
    obs = _observed(observed)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    rng = np.random.default_rng(seed)
    mask = obs.values
    folds = np.full(mask.shape, -1, dtype=np.int64)
    counter = 0
    for b in range(mask.shape[0]):
        assays = rng.permutation(np.flatnonzero(mask[b]))
        for a in assays:
            folds[b, a] = counter % n_folds
            counter += 1
    return xr.DataArray(folds, dims=("biosample", "assay"), coords=obs.coords, name="fold",
                        attrs={"n_folds": n_folds, "seed": seed, "rule": "greedy running counter"})


def fold_coverage(folds: xr.DataArray) -> pd.DataFrame:
    """Biosamples and assays left without any training track in some fold.

    Returns
    -------
    DataFrame
        Columns ``fold``, ``kind`` ("biosample"/"assay"), ``label``, ``n_experiments`` (the label's
        observed experiments in total); empty when every fold trains on every label.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> f = xr.DataArray([[0, 1], [0, -1]], dims=("biosample", "assay"),
    ...                  coords={"biosample": ["B0", "B1"], "assay": ["x", "y"]})
    >>> fold_coverage(f)[["fold", "kind", "label"]].values.tolist()
    [[0, 'biosample', 'B1'], [0, 'assay', 'x'], [1, 'assay', 'y']]
    """
    f = folds.transpose("biosample", "assay").values
    n_folds = int(folds.attrs.get("n_folds", f.max() + 1))
    rows = []
    for k in range(n_folds):
        train = (f >= 0) & (f != k)
        for kind, axis, labels in (("biosample", 1, folds.biosample.values), ("assay", 0, folds.assay.values)):
            n_obs = (f >= 0).sum(axis=axis)
            uncovered = (train.sum(axis=axis) == 0) & (n_obs > 0)
            for i in np.flatnonzero(uncovered):
                rows.append({"fold": k, "kind": kind, "label": str(labels[i]), "n_experiments": int(n_obs[i])})
    return pd.DataFrame(rows, columns=["fold", "kind", "label", "n_experiments"])


def training_view(ds: xr.Dataset, train: xr.DataArray) -> xr.Dataset:
    """``ds`` with only ``train`` tracks observed: ``observed`` replaced, other tracks' ``signal`` NaN.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=2, n_positions=5_000, missing=0.2, seed=0)
    >>> view = training_view(ds, ds.observed & False)
    >>> int(view.observed.sum()), bool(view.signal.isnull().all())
    (0, True)
    """
    train = train.astype(bool).transpose("biosample", "assay").reset_coords(drop=True)
    train = train & ds["observed"].reset_coords(drop=True)
    view = ds.assign(signal=ds["signal"].where(train))
    view = view.assign_coords(observed=train)
    view["signal"].attrs = dict(ds["signal"].attrs)
    return view


def cross_validate(
    ds: xr.Dataset,
    model_factory,
    folds: xr.DataArray | None = None,
    *,
    n_folds: int = 5,
    seed: int = 0,
    region=None,
    fit_kwargs: dict | None = None,
    annotations=None,
    metrics="eic",
    eic_parity: bool = False,
    baseline: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Train one model per fold on the other folds' tracks and score its held-out imputations.

    Parameters
    ----------
    ds : Dataset
        An epitensor dataset (``signal``, ``observed``).
    model_factory : callable
        ``model_factory(train_ds) -> model`` with ``fit(**fit_kwargs)`` and
        ``impute(biosample=, assay=, region=)`` (see the module docstring).
    folds : DataArray, optional
        From :func:`cv_folds`; default ``cv_folds(ds.observed, n_folds, seed)``.
    region : str, tuple or list, optional
        Genomic region to impute and score (None: the whole position axis).
    fit_kwargs : dict, optional
        Passed to ``model.fit`` (``region`` is not passed on: give the training region here,
        e.g. ``{"region": ..., "epochs": ...}`` for :class:`epitensor.Avocado`).
    annotations, metrics, eic_parity
        Passed to :func:`epitensor.evaluate`.
    baseline : bool, default True
        Also score the average-activity baseline trained on the same fold.
    progress : bool, default False

    Returns
    -------
    DataFrame
        One row per (held-out track, method): ``biosample``, ``assay``, ``fold``, ``method``
        (``"model"`` or ``"average_activity"``), ``n_bins`` and the metrics.

    Examples
    --------
    >>> cv = et.cross_validate(ds, lambda train: MyModel(train), n_folds=5)   # doctest: +SKIP
    >>> cv.pivot_table(index="assay", columns="method", values="mse")           # doctest: +SKIP
    """
    folds = cv_folds(ds["observed"], n_folds, seed) if folds is None else folds
    folds = folds.transpose("biosample", "assay").reindex(
        biosample=ds.biosample.values, assay=ds.assay.values, fill_value=-1)
    fold_ids = sorted(int(k) for k in np.unique(folds.values) if k >= 0)
    if not fold_ids:
        raise DataError("no observed track is assigned to a fold; check ds.observed and folds")
    truth_all = ds["signal"] if region is None else ds["signal"].epi.region(region)
    results = []
    iterator = fold_ids
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(fold_ids, desc="cross-validation folds", unit="fold")
    for k in iterator:
        held = folds == k
        view = training_view(ds, (folds >= 0) & ~held)
        model = model_factory(view)
        model.fit(**(fit_kwargs or {}))
        pairs = [(b, a) for b, a in zip(*np.nonzero(held.values))]
        tracks = []
        for b, a in pairs:
            bl, al = ds.biosample.values[b], ds.assay.values[a]
            out = model.impute(biosample=bl, assay=al, region=region)
            tracks.append(_one_track(out, bl, al, truth_all))
        imputed = xr.combine_by_coords(tracks, join="outer")
        imputed = imputed[list(imputed.data_vars)[0]] if isinstance(imputed, xr.Dataset) else imputed
        imputed.attrs = dict(truth_all.attrs)
        truth = truth_all.sel(biosample=list(imputed.biosample.values), assay=list(imputed.assay.values))
        scored = [("model", imputed)]
        if baseline:
            base_all = average_activity(ds["signal"], train=view["observed"])
            base_all = base_all if region is None else base_all.epi.region(region)
            scored.append(("average_activity", base_all))
        for method, pred in scored:
            s = evaluate(pred, truth.where(held.sel(biosample=truth.biosample, assay=truth.assay)),
                         annotations, metrics=metrics, eic_parity=eic_parity)
            s.insert(2, "fold", k)
            s.insert(3, "method", method)
            results.append(s)
    return pd.concat(results, ignore_index=True)


def _one_track(out, biosample, assay, truth_all) -> xr.DataArray:
    if not isinstance(out, xr.DataArray):
        raise DataError(f"model.impute(biosample={biosample!r}, assay={assay!r}) must return an xarray.DataArray, got {type(out).__name__}")
    if "biosample" in out.dims:
        out = out.sel(biosample=[biosample])
    else:
        out = out.expand_dims(biosample=[biosample]) if "biosample" not in out.coords else out.drop_vars("biosample").expand_dims(biosample=[biosample])
    if "assay" in out.dims:
        out = out.sel(assay=[assay])
    else:
        out = out.expand_dims(assay=[assay]) if "assay" not in out.coords else out.drop_vars("assay").expand_dims(assay=[assay])
    if "position" not in out.indexes:
        if out.sizes["position"] != truth_all.sizes["position"]:
            raise DataError(f"model.impute returned {out.sizes['position']:,} positions for {biosample}/{assay}, expected {truth_all.sizes['position']:,}")
        pos = truth_all["position"].values if "position" in truth_all.indexes else np.arange(out.sizes["position"])
        out = out.assign_coords(position=pos)
    keep = [c for c in out.coords if c in ("biosample", "assay", "position")]
    out = out.reset_coords([c for c in out.coords if c not in keep], drop=True)
    return out.transpose("biosample", "assay", "position").astype(np.float32).rename("imputed")
