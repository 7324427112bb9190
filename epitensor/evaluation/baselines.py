"""Baselines every imputation is measured against.

* :func:`average_activity` - the papers' strong baseline: for a (biosample, assay) track, the
  per-bin mean of that assay over the training biosamples, never including the track itself.
* :func:`most_similar_biosample` - the track of the assay in the training biosample whose other
  tracks are closest (lowest mean squared difference over shared assays) to the target's.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..exceptions import SchemaError


def training_mask(signal: xr.DataArray, train=None) -> xr.DataArray:
    """The (biosample, assay) bool mask of training tracks: ``train`` or the ``observed`` coordinate."""
    if train is None:
        if "observed" not in signal.coords:
            raise SchemaError("signal has no 'observed' coordinate; pass train= a (biosample, assay) bool mask")
        train = signal["observed"]
    if not isinstance(train, xr.DataArray):
        train = xr.DataArray(np.asarray(train, dtype=bool), dims=("biosample", "assay"),
                             coords={"biosample": signal.biosample.values, "assay": signal.assay.values})
    train = train.astype(bool).transpose("biosample", "assay")
    train = train.reindex(biosample=signal.biosample.values, assay=signal.assay.values, fill_value=False)
    return train.reset_coords(drop=True)


def average_activity(signal: xr.DataArray, train=None) -> xr.DataArray:
    """Average-activity baseline: per-bin mean of each assay over the training biosamples.

    For the track (b, a) the mean runs over the training biosamples of assay ``a`` other than
    ``b`` (a training track is never part of its own baseline, so the baseline of an observed
    track is a fair reference for quality control).

    Parameters
    ----------
    signal : DataArray
        ``(biosample, assay, position)`` signal, e.g. ``ds.signal`` or a region of it.
    train : DataArray or array of bool (biosample, assay), optional
        Training tracks; default: the ``observed`` coordinate.

    Returns
    -------
    DataArray
        ``(biosample, assay, position)``, lazy when ``signal`` is dask-backed; NaN for an assay
        with no other training biosample. Named ``average_activity``.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=2, n_positions=10_000, missing=0.3, seed=0)
    >>> base = et.baselines.average_activity(ds.signal)
    >>> base.dims
    ('biosample', 'assay', 'position')
    """
    train = training_mask(signal, train)
    x = signal.astype(np.float64).where(train)  # float64: the leave-one-out subtraction cancels
    total = x.sum("biosample", skipna=True)
    count = train.sum("biosample")
    own = x.fillna(0.0)
    n = count - train.astype(np.int64)
    base = (total - own) / n.where(n > 0)
    base = base.transpose("biosample", "assay", "position").astype(np.float32)
    base.attrs = dict(signal.attrs)
    return base.rename("average_activity")


def biosample_distances(signal: xr.DataArray, train=None, n_bins: int = 100_000) -> xr.DataArray:
    """Mean squared difference between biosamples over the assays both have in training.

    Computed on ``n_bins`` evenly spaced bins with data (enough to rank similarity cheaply).
    NaN for pairs that share no assay.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=3, n_positions=10_000, missing=0.2, seed=0)
    >>> d = biosample_distances(ds.signal)
    >>> d.dims, float(d[0, 0])
    (('biosample', 'biosample_other'), 0.0)
    """
    train = training_mask(signal, train)
    values = _sample_bins(signal, n_bins)  # (biosample, assay, sample)
    mask = train.values
    values = np.where(mask[:, :, None], values, np.nan)
    B = values.shape[0]
    dist = np.full((B, B), np.nan)
    for i in range(B):
        diff = (values[i][None] - values) ** 2  # (biosample, assay, sample); NaN where either lacks data
        valid = np.isfinite(diff)
        count = valid.sum(axis=2)
        per_assay = np.where(valid, diff, 0.0).sum(axis=2) / np.maximum(count, 1)
        usable = count > 0
        n_assays = usable.sum(axis=1)
        has = n_assays > 0
        dist[i, has] = np.where(usable, per_assay, 0.0).sum(axis=1)[has] / n_assays[has]
    return xr.DataArray(dist, dims=("biosample", "biosample_other"),
                        coords={"biosample": signal.biosample.values, "biosample_other": signal.biosample.values},
                        name="biosample_distance")


def _sample_bins(signal: xr.DataArray, n_bins: int) -> np.ndarray:
    size = signal.sizes["position"]
    if size > n_bins:
        # bins inside contigs: take evenly spaced ones, then drop padding (NaN everywhere)
        idx = np.linspace(0, size - 1, n_bins).astype(np.int64)
        values = np.asarray(signal.isel(position=idx).values, dtype=np.float64)
    else:
        values = np.asarray(signal.values, dtype=np.float64)
    return values


def most_similar_biosample(signal: xr.DataArray, train=None, n_bins: int = 100_000) -> xr.DataArray:
    """Baseline copying the assay's track from the most similar training biosample.

    Similarity is :func:`biosample_distances` (mean squared difference over shared training
    assays, on ``n_bins`` sampled bins). For (b, a) the candidate biosamples are those with ``a``
    in training, other than ``b``.

    Returns
    -------
    DataArray
        ``(biosample, assay, position)``, lazy for dask input, with a ``source_biosample``
        (biosample, assay) coordinate naming the copied biosample ("" where none exists: NaN track).

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=10_000, missing=0.3, seed=0)
    >>> base = et.baselines.most_similar_biosample(ds.signal)
    >>> base.source_biosample.dims
    ('biosample', 'assay')
    """
    train = training_mask(signal, train)
    dist = biosample_distances(signal, train, n_bins).values
    mask = train.values
    B, A = mask.shape
    source = np.full((B, A), -1, dtype=np.int64)
    for b in range(B):
        for a in range(A):
            cand = np.flatnonzero(mask[:, a] & (np.arange(B) != b) & np.isfinite(dist[b]))
            if cand.size:
                source[b, a] = cand[np.argmin(dist[b, cand])]
    parts = []
    for a in range(A):
        idx = xr.DataArray(np.clip(source[:, a], 0, None), dims="biosample")
        track = signal.isel(assay=a).isel(biosample=idx)
        track = track.where(xr.DataArray(source[:, a] >= 0, dims="biosample"))
        parts.append(track.drop_vars([c for c in track.coords if c not in ("position",)], errors="ignore"))
    out = xr.concat(parts, dim="assay").transpose("biosample", "assay", "position")
    names = np.where(source >= 0, np.asarray(signal.biosample.values, dtype=object)[np.clip(source, 0, None)], "")
    out = out.assign_coords(biosample=signal.biosample.values, assay=signal.assay.values,
                            source_biosample=(("biosample", "assay"), names))
    for c in ("chrom", "start", "end"):
        if c in signal.coords:
            out = out.assign_coords({c: signal[c]})
    out.attrs = dict(signal.attrs)
    return out.astype(np.float32).rename("most_similar_biosample")
