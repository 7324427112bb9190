"""Moving averages of tracks along the genome, within each stretch of consecutive bins.

Peak calls ingested as coverage are step functions a few hundred base pairs wide, while an
imputation scores each 25 bp bin on its own. Averaging an imputation over a window about a peak's
width (ENCODE-DREAM scores TF binding on 200 bp bins) removes bin-to-bin noise that no peak has.
:func:`smooth` does that by the labels: the window runs over genomic neighbours (the ``position``
labels), never over array neighbours that are not adjacent bins.
"""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

from ..exceptions import ArgumentError, SchemaError


def smooth(track: xr.DataArray, bins: int) -> xr.DataArray:
    """Centred moving average of ``bins`` bins along ``position``, by genomic position.

    Each value becomes the mean of the finite values within ``bins // 2`` bins either side of its
    bin. The window stops at the ends of each stretch of consecutive bins the object holds (a
    contig's end, or the edge of the selected region): bins the object does not hold are never
    averaged in. The object's order along ``position`` does not matter (a sorted or shuffled
    selection gives the same values at the same labels).

    Parameters
    ----------
    track : DataArray
        Any dims including ``position`` with the genome's index (a store variable, an imputation,
        or a selection of either). It is read into memory.
    bins : int
        Odd window width in bins (1 returns the values unchanged, as float32).

    Returns
    -------
    DataArray
        float32, the same dims, coordinates and attrs, named like ``track``.

    Raises
    ------
    ArgumentError
        ``track`` not a DataArray, ``bins`` not an odd positive integer, or the object holds stretches of consecutive bins
        shorter than the window (scattered bins such as every 8th: smooth a whole region first,
        then take the bins you want).
    SchemaError
        ``track`` has no ``position`` dimension.

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=2, n_assays=2, n_positions=2_000, seed=0)
    >>> track = ds.signal.sel(biosample="B00", assay="H3K4me3").epi.region("synthetic:0-10kb")
    >>> smoothed = et.evaluation.smooth(track, 9)
    >>> smoothed.sizes == track.sizes, bool(abs(float(smoothed[200]) - float(track[196:205].mean())) < 1e-5)
    (True, True)
    """
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1 or bins % 2 == 0:
        raise ArgumentError(f"bins must be an odd positive integer (a window centred on each bin), got {bins!r}")
    bins = int(bins)
    if not isinstance(track, xr.DataArray):
        raise ArgumentError(f"smooth takes a track DataArray with a 'position' dimension (e.g. ds.signal.sel(...) or an "
                            f"imputation), got {type(track).__name__}; for a Dataset, smooth each variable")
    if "position" not in track.dims:
        raise SchemaError(f"smooth needs a 'position' dimension; this object has dims {track.dims}")
    from ..genome_index import attach, genome_index

    track = attach(track)
    genome = genome_index(track).genome
    positions = np.asarray(track.position.values, dtype=np.int64)
    order = np.argsort(positions, kind="stable")
    held = positions[order]
    contig = np.searchsorted(np.asarray(genome.first_bins, dtype=np.int64), held, side="right") - 1
    breaks = np.flatnonzero((np.diff(held) != 1) | (np.diff(contig) != 0)) + 1
    starts = np.concatenate([[0], breaks])
    lengths = np.diff(np.concatenate([starts, [len(held)]]))
    if bins > 1 and len(held) and lengths.min() < bins:
        short = int(np.argmin(lengths))
        raise ArgumentError(
            f"smooth over {bins} bins needs stretches of at least {bins} consecutive bins; this object holds "
            f"{len(lengths)} stretch(es), one of {int(lengths[short])} bin(s) from position {int(held[starts[short]])} "
            "(scattered bins such as every 8th?): smooth a whole region first, then select the bins you want")
    axis = track.get_axis_num("position")
    values = np.moveaxis(np.asarray(track.values, dtype=np.float64), axis, -1)[..., order]
    out = np.empty_like(values)
    for lo, n in zip(starts, lengths):
        out[..., lo : lo + n] = _window_mean(values[..., lo : lo + n], bins // 2)
    restored = np.empty_like(out)
    restored[..., order] = out
    return track.copy(data=np.moveaxis(restored, -1, axis).astype(np.float32))


def _window_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Mean of the finite values of ``x[..., i - half : i + half + 1]`` along the last axis (NaN
    where there are none), through cumulative sums."""
    finite = np.isfinite(x)
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    total = np.pad(np.cumsum(np.where(finite, x, 0.0), axis=-1), pad)
    count = np.pad(np.cumsum(finite, axis=-1), pad)
    n = x.shape[-1]
    hi = np.minimum(np.arange(n) + half + 1, n)
    lo = np.maximum(np.arange(n) - half, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total[..., hi] - total[..., lo]) / (count[..., hi] - count[..., lo])


__all__ = ["smooth"]
