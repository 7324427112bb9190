"""Uses of imputation beyond filling gaps: flag doubtful experiments, choose the next ones.

Quality control (:func:`flag_outlier_tracks`, :func:`qc_table`). Criterion: for every observed
track, the disagreement (default ``mse``) between the observed signal and an imputation *made
without that track*; a track is flagged when its robust z-score within its assay,
``(x - median) / (1.4826 * MAD)``, exceeds 3.5 (Iglewicz and Hoaglin's outlier rule). Why: the
papers propose flagging experiments that disagree with their imputation, and the error level
differs a lot between assays (broad marks vs. sharp TF peaks), so a track is only comparable
with tracks of the same assay; median/MAD keep the bad tracks themselves from hiding the outliers.

What to measure next (:func:`rank_next_experiments`). Criterion: for an unmeasured
(biosample, assay), the distance from the biosample to the *closest* biosample in which the assay
was measured (biosample distance from their shared observed tracks, or from model factors).
Why: an imputation borrows the assay's pattern from similar biosamples; where the nearest one is
far, the imputation is least supported, so measuring there adds the most information (an expected
information-gain proxy that needs no trained model). Ties go to assays measured in fewer biosamples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import DataError, LabelError
from .baselines import average_activity, biosample_distances, training_mask
from .metrics import higher_is_better
from .scoring import evaluate

#: Robust z-score above which a track is flagged (Iglewicz and Hoaglin).
QC_THRESHOLD = 3.5


def robust_z(values) -> np.ndarray:
    """Robust z-scores ``(x - median) / (1.4826 * MAD)``; 0 when the MAD is 0.

    Examples
    --------
    >>> robust_z([1.0, 1.1, 0.9, 1.0, 5.0]).round(1).tolist()
    [0.0, 0.7, -0.7, 0.0, 27.0]
    """
    x = np.asarray(values, dtype=np.float64)
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    if not np.isfinite(mad) or mad == 0:
        return np.zeros_like(x)
    return (x - med) / mad


def flag_outlier_tracks(scores: pd.DataFrame, metric: str = "mse", threshold: float = QC_THRESHOLD) -> pd.DataFrame:
    """Add ``robust_z`` and ``flagged`` columns: tracks whose ``metric`` is an outlier within their assay.

    For metrics where higher is better (correlations) the sign is flipped so that a large
    z always means "disagrees with its imputation". Assays with fewer than 3 tracks get z = 0.

    Examples
    --------
    >>> s = pd.DataFrame({"biosample": list("ABCDE"), "assay": ["x"] * 5, "mse": [1.0, 1.1, 0.9, 1.0, 5.0]})
    >>> flag_outlier_tracks(s).query("flagged").biosample.tolist()
    ['E']
    """
    if metric not in scores.columns:
        raise DataError(f"scores have no {metric!r} column; columns are {list(scores.columns)}")
    out = scores.copy()
    sign = -1.0 if higher_is_better(metric) else 1.0
    z = np.zeros(len(out))
    for _, idx in out.groupby("assay").indices.items():
        if idx.size >= 3:
            z[idx] = sign * robust_z(out[metric].to_numpy()[idx])
    out["robust_z"] = z
    out["flagged"] = z > threshold
    return out.sort_values("robust_z", ascending=False, ignore_index=True)


def qc_table(signal: xr.DataArray, imputed: xr.DataArray | None = None, *, train=None, region=None,
             metric: str = "mse", threshold: float = QC_THRESHOLD) -> pd.DataFrame:
    """Quality-control table of observed tracks (see the module docstring for the criterion).

    Parameters
    ----------
    signal : DataArray
        ``ds.signal``.
    imputed : DataArray, optional
        Imputations of the observed tracks by models that did not see them (e.g. gathered from
        cross-validation folds). Default: the leave-one-out average-activity baseline, which
        never includes a track in its own reference.
    train : mask, optional
        Tracks to check (default ``observed``).
    region : optional
        Restrict to a region (recommended for genome-wide stores).

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=6, n_assays=2, n_positions=10_000, missing=0.0, seed=0)
    >>> table = qc_table(ds.signal)
    >>> table.columns.tolist()[-2:]
    ['robust_z', 'flagged']
    """
    train = training_mask(signal, train)
    if imputed is None:
        imputed = average_activity(signal, train)
    truth = signal.where(train)
    if region is not None:
        truth, imputed = truth.epi.region(region), imputed.epi.region(region)
    scores = evaluate(imputed, truth, None, metrics=[metric])
    return flag_outlier_tracks(scores, metric, threshold)


def rank_next_experiments(signal: xr.DataArray, train=None, *, biosample_factors: xr.DataArray | None = None,
                          n_bins: int = 100_000) -> pd.DataFrame:
    """Rank unmeasured (biosample, assay) pairs by how little evidence their imputation has.

    Parameters
    ----------
    signal : DataArray
        ``ds.signal`` (tracks sampled at ``n_bins`` bins give the biosample distances).
    train : mask, optional
        Measured tracks (default ``observed``).
    biosample_factors : DataFrame or DataArray (biosample, factor), optional
        Use Euclidean distances between a trained model's biosample factors
        (``model.factors("biosample")``) instead.

    Returns
    -------
    DataFrame
        ``biosample``, ``assay``, ``nearest_biosample`` (closest biosample with the assay),
        ``nearest_distance``, ``assay_coverage`` (biosamples with the assay), ``rank`` (1 = measure first).

    See Also
    --------
    epitensor.latent.diverse_biosamples_for_assay : the set of biosamples to run one assay in next,
        chosen together so that they and the biosamples already measured cover the factor space.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=10_000, missing=0.4, seed=0)
    >>> r = rank_next_experiments(ds.signal)
    >>> len(r) == int((~ds.observed).sum())
    True
    """
    train = training_mask(signal, train)
    mask = train.values
    if biosample_factors is not None:
        f = _factors_of(biosample_factors, signal.biosample.values)
        dist = np.sqrt(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))
    else:
        dist = biosample_distances(signal, train, n_bins).values
    labels_b, labels_a = signal.biosample.values, signal.assay.values
    coverage = mask.sum(axis=0)
    rows = []
    for b, a in zip(*np.nonzero(~mask)):
        cand = np.flatnonzero(mask[:, a])
        d = dist[b, cand]
        finite = np.isfinite(d)
        if finite.any():
            j = cand[finite][np.argmin(d[finite])]
            nearest, dmin = str(labels_b[j]), float(dist[b, j])
        else:  # no measured biosample of this assay is comparable: least evidence of all
            nearest, dmin = "", float("inf")
        rows.append({"biosample": str(labels_b[b]), "assay": str(labels_a[a]), "nearest_biosample": nearest,
                     "nearest_distance": dmin, "assay_coverage": int(coverage[a])})
    table = pd.DataFrame(rows, columns=["biosample", "assay", "nearest_biosample", "nearest_distance", "assay_coverage"])
    table = table.sort_values(["nearest_distance", "assay_coverage"], ascending=[False, True], ignore_index=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def _factors_of(biosample_factors, biosamples) -> np.ndarray:
    """Factor rows of ``biosamples`` (in that order) from a DataFrame or a DataArray."""
    from ..latent.similarity import factor_table

    if isinstance(biosample_factors, xr.DataArray) and "biosample" in biosample_factors.dims:
        biosample_factors = biosample_factors.transpose("biosample", ...)
    table = factor_table(biosample_factors, "biosample_factors")
    missing = [b for b in biosamples if b not in table.index]
    if missing:
        raise LabelError(f"biosample_factors lack the biosamples {missing[:5]}; use the factors of a model "
                         "trained on these biosamples (model.factors('biosample'))")
    return table.loc[list(biosamples)].to_numpy()
