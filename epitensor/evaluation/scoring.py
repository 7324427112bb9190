"""Score labelled imputations against labelled truth: one row per track, one column per metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import DataError, LabelError, SchemaError
from ..genome import Genome
from ..genome_index import GenomeIndex, attach, genome_index, with_genome_index
from .annotations import TrackLayout, load_annotations, peak_labels, read_bed, track_layout
from .metrics import (
    PEAK_METRICS,
    REGION_METRICS,
    average_precision,
    epr,
    resolve_metrics,
    score_arrays,
)


def as_tracks(da: xr.DataArray, what: str) -> xr.DataArray:
    """``da`` with dims ``(biosample, assay, position)``; scalar biosample/assay coords become dims."""
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"{what} must be an xarray.DataArray such as ds.signal or ds.imputed, got {type(da).__name__}")
    for dim in ("biosample", "assay"):
        if dim not in da.dims:
            if dim not in da.coords:
                raise SchemaError(f"{what} has no {dim!r} dimension or coordinate; select tracks from an epitensor dataset")
            da = da.expand_dims(dim)
    if "position" not in da.dims:
        raise SchemaError(f"{what} has no 'position' dimension; it must be laid out along the genome (dims {da.dims})")
    return da.transpose("biosample", "assay", "position")


def _with_genome(da: xr.DataArray) -> xr.DataArray:
    """``da`` with its genome index when it has a genome (see :func:`~epitensor.genome_index.attach`)."""
    try:
        return attach(da)
    except SchemaError:
        return da


def _genome_layout(truth: xr.DataArray, imputed: xr.DataArray) -> tuple[Genome | None, np.ndarray | None]:
    """The genome of the scored arrays (from the position index; None when neither has one) and
    the genome-wide bins scored (None: the whole axis, which needs no per-position array)."""
    for da in (truth, imputed):
        try:
            index = genome_index(da)
        except SchemaError:
            continue
        whole = isinstance(index.index, pd.RangeIndex) and index.index.equals(pd.RangeIndex(index.genome.n_positions))
        return index.genome, None if whole else index.index.to_numpy()
    return None, None


def _layout_without_genome(truth: xr.DataArray, annotations, eic_parity: bool, peaks) -> TrackLayout:
    """Every bin scored, no regions: what an array without a genome can be scored on."""
    needs = [name for name, asked in (("annotations (promoters, genes, enhancers, blacklist)", annotations is not None),
                                       ("eic_parity", eic_parity), ("peaks", peaks is not None)) if asked]
    if needs:
        raise SchemaError(
            f"{', '.join(needs)} need the genome of the arrays, and neither carries one (no position index or "
            "genome attributes); score arrays selected from epitensor.open_dataset(...), or drop those options")
    n = truth.sizes["position"]
    return TrackLayout(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64), {})


def align_tracks(imputed: xr.DataArray, truth: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Align two track arrays on shared biosample/assay labels and genomic positions."""
    imputed, truth = (_with_genome(as_tracks(imputed, "imputed")), _with_genome(as_tracks(truth, "truth")))
    genomes = [da.xindexes["position"] for da in (imputed, truth) if isinstance(da.xindexes.get("position"), GenomeIndex)]
    if len(genomes) == 1:  # one array without a genome: label its positions with the other's genome
        imputed, truth = (da if isinstance(da.xindexes.get("position"), GenomeIndex) or "position" not in da.indexes
                          else with_genome_index(da, genomes[0].genome, da.indexes["position"]) for da in (imputed, truth))
    has_i, has_t = "position" in imputed.indexes, "position" in truth.indexes
    if has_i != has_t:
        src, dst = (imputed, truth) if has_i else (truth, imputed)
        if src.sizes["position"] != dst.sizes["position"]:
            raise DataError(
                f"imputed has {imputed.sizes['position']:,} positions and truth {truth.sizes['position']:,}, and only one "
                "has a position index; select the same region from both with .epi.region(...)"
            )
        index = src.xindexes["position"]
        dst = (with_genome_index(dst, index.genome, index.index) if isinstance(index, GenomeIndex)
               else dst.assign_coords(position=src["position"].values))
        imputed, truth = (src, dst) if has_i else (dst, src)
    elif not has_i and imputed.sizes["position"] != truth.sizes["position"]:
        raise DataError(f"imputed has {imputed.sizes['position']:,} positions and truth {truth.sizes['position']:,}")
    imputed, truth = xr.align(imputed, truth, join="inner")
    if imputed.sizes["biosample"] == 0 or imputed.sizes["assay"] == 0:
        raise LabelError("imputed and truth share no (biosample, assay) labels; check the labels of both arrays")
    if imputed.sizes["position"] == 0:
        raise DataError("imputed and truth share no genomic positions")
    return imputed, truth


def evaluate(
    imputed: xr.DataArray,
    truth: xr.DataArray,
    annotations=None,
    *,
    metrics="eic",
    eic_parity: bool = False,
    variance_from: xr.DataArray | None = None,
    peaks=None,
    peak_window: int = 200,
    tracks=None,
    data_dir=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Score imputed tracks against the truth, one row per (biosample, assay) track.

    Parameters
    ----------
    imputed, truth : DataArray
        ``(biosample, assay, position)`` arrays from an epitensor store (e.g. ``ds.imputed`` and
        ``ds.held_out``, or a region of them). They are aligned by labels; every pair present in
        both whose truth has values is scored. Tracks are read one at a time (dask computes one
        track pair, never the whole tensor).
    annotations : "hg19", "hg38", folder, Annotations or None
        Genes/enhancers/blacklist for the region metrics and blacklist handling; None skips the
        region metrics (left out of the preset metric sets; NaN if asked for by name). Assembly names look in ``data_dir`` / ``$EPITENSOR_DATA``.
    metrics : "eic", "paper", "all" or list of str, default "eic"
        See :mod:`epitensor.evaluation.metrics`; add ``"ap"``/``"epr"`` with ``peaks``.
    eic_parity : bool, default False
        Reproduce the ENCODE Imputation Challenge: values back on the untransformed scale
        (``sinh`` of an arcsinh store), chr1-22 and chrX only, blacklisted bins deleted before
        region bins are indexed. The default is the corrected variant: the store's (arcsinh) scale
        of the papers, every contig, blacklisted bins masked (see
        :mod:`epitensor.evaluation.annotations`).
    variance_from : DataArray, optional
        Tracks whose per-assay, per-bin (population) variance across biosamples weights
        ``msevar``; default ``truth``. With hidden tracks scored against ``ds.held_out`` pass
        ``variance_from=ds.signal`` (the observed tracks of each assay, as the challenge computed
        it from the available tracks of the assay); with fewer than 2 tracks msevar is NaN.
    peaks : mapping, optional
        ``{(biosample, assay): BED/narrowPeak path or table}`` of called peaks for ``ap``/``epr``.
    peak_window : int, default 200
        Label resolution in bp: imputed values are averaged in windows of this size.
    tracks : (biosample, assay) bool DataArray or list of (biosample, assay), optional
        Tracks to score. Default: when ``truth`` carries the ``observed`` mask, the observed
        tracks for ``signal`` and the unobserved ones for ``held_out`` (so a genome-wide store
        never reads the chunks of absent tracks); otherwise every pair whose truth has values.
    data_dir : path, optional
        Where to find annotation files for an assembly name.
    progress : bool, default False
        Show a progress bar over tracks.

    Returns
    -------
    pandas.DataFrame
        Columns ``biosample``, ``assay``, ``n_bins`` and one per metric.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=5, n_assays=3, n_positions=20_000, missing=0.4, seed=0)
    >>> base = et.baselines.average_activity(ds.signal)
    >>> scores = et.evaluate(base, ds.held_out, metrics=["mse", "gwcorr"])
    >>> list(scores.columns)
    ['biosample', 'assay', 'n_bins', 'mse', 'gwcorr']
    """
    wanted = resolve_metrics(metrics)
    if peaks is not None and not any(m in PEAK_METRICS for m in wanted):
        wanted.update({m: m for m in PEAK_METRICS})
    imputed, truth = align_tracks(imputed, truth)
    genome, positions = _genome_layout(truth, imputed)
    ann = load_annotations(annotations, data_dir)
    if ann is None and (metrics is None or isinstance(metrics, str) and metrics in ("eic", "paper", "all")):
        wanted = {k: v for k, v in wanted.items() if v not in REGION_METRICS}  # skipped without annotations
    if genome is None:
        layout = _layout_without_genome(truth, ann, eic_parity, peaks)
    else:
        layout = track_layout(genome, positions, ann, eic_parity=eic_parity)
    if layout.select.size == 0:
        raise DataError("no bins left to score (outside every contig, blacklisted, or not chr1-22/X in eic_parity mode)")
    transform = np.sinh if eic_parity and truth.attrs.get("transform", "arcsinh") == "arcsinh" else None
    value_metrics = {k: v for k, v in wanted.items() if v not in PEAK_METRICS}
    variances: dict[str, np.ndarray | None] = {}
    pairs = _pairs_to_score(truth, tracks)
    rows = []
    iterator = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="scoring tracks", unit="track")
    for b, a in iterator:
        t = np.asarray(truth.sel(biosample=b, assay=a).values)
        y_true = t[layout.select]
        finite = np.isfinite(y_true)
        if not finite.any():
            continue
        p = np.asarray(imputed.sel(biosample=b, assay=a).values)
        lay = layout if finite.all() else layout.subset(finite)
        y_true = t[lay.select]
        y_pred = p[lay.select]
        if not np.isfinite(y_pred).all():
            raise DataError(
                f"imputed track {b}/{a} has NaN or infinite values at {int((~np.isfinite(y_pred)).sum()):,} scored bins; "
                "impute the whole region being scored"
            )
        variance = None
        if "msevar" in value_metrics.values():
            if a not in variances:
                variances[a] = _assay_variance(variance_from if variance_from is not None else truth, a, transform, positions)
            variance = None if variances[a] is None else variances[a][lay.select]
        row = {"biosample": b, "assay": a, "n_bins": int(y_true.size)}
        row.update(score_arrays(y_true, y_pred, metrics=list(value_metrics), regions=lay.regions,
                                variance=variance, transform=transform))
        if peaks is not None:
            row.update(_peak_scores(peaks.get((b, a)), p, genome, truth, layout, peak_window,
                                    [m for m in wanted if m in PEAK_METRICS]))
        rows.append(row)
    columns = ["biosample", "assay", "n_bins", *wanted]
    return pd.DataFrame(rows, columns=columns)


def _pairs_to_score(truth: xr.DataArray, tracks) -> list[tuple[str, str]]:
    every = [(b, a) for b in truth.biosample.values for a in truth.assay.values]
    if tracks is None and "observed" in truth.coords and truth.name in ("signal", "held_out"):
        obs = truth["observed"].transpose("biosample", "assay").values
        tracks = obs if truth.name == "signal" else ~obs
        return [p for p, keep in zip(every, np.asarray(tracks).ravel()) if keep]
    if tracks is None:
        return every
    if isinstance(tracks, xr.DataArray):
        mask = tracks.astype(bool).reindex(biosample=truth.biosample.values, assay=truth.assay.values, fill_value=False)
        return [p for p, keep in zip(every, mask.transpose("biosample", "assay").values.ravel()) if keep]
    wanted = {(str(b), str(a)) for b, a in tracks}
    return [p for p in every if (str(p[0]), str(p[1])) in wanted]


def _assay_variance(source: xr.DataArray, assay: str, transform, positions=None) -> np.ndarray | None:
    """Per-bin population variance across the biosamples that have ``assay`` (NaN tracks skipped),
    on the scored array's ``positions`` (genome-wide bins; None: the whole axis)."""
    source = as_tracks(source, "variance_from")
    if assay not in source.indexes["assay"]:
        return None
    tracks = source.sel(assay=assay)
    if positions is not None:
        if "position" in tracks.indexes:
            tracks = tracks.sel(position=positions)
        else:
            tracks = tracks.isel(position=positions)
    if transform is not None:
        tracks = xr.apply_ufunc(transform, tracks, dask="allowed")
    var = tracks.var("biosample", skipna=True)
    values = np.asarray(var.values, dtype=np.float64)
    return np.nan_to_num(values, nan=0.0)


def _peak_scores(peaks, values, genome: Genome, truth, layout: TrackLayout, window_bp: int, names) -> dict:
    if peaks is None:
        return {m: float("nan") for m in names}
    table = peaks if isinstance(peaks, pd.DataFrame) else read_bed(Path(peaks))
    factor = max(1, window_bp // genome.bin_size)
    positions = layout.positions
    chosen = values[layout.select]
    labels_all, scores_all = [], []
    names_c, starts_c = genome.locate(positions)
    for contig in pd.unique(names_c):
        here = names_c == contig
        window = starts_c[here] // (factor * genome.bin_size)
        first = int(window.min())
        w = window - first
        sums = np.bincount(w, weights=chosen[here].astype(np.float64))
        counts = np.bincount(w)
        used = counts > 0
        labels = peak_labels(table, genome, contig, first + w.max() + 1, factor * genome.bin_size)[first:]
        labels_all.append(labels[used])
        scores_all.append(sums[used] / counts[used])
    labels, scores = np.concatenate(labels_all), np.concatenate(scores_all)
    out = {"ap": average_precision(labels, scores), "epr": epr(labels, scores)}
    return {m: out[m] for m in names}
