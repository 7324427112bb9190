"""Figures for evaluation: a track view and the per-assay model-vs-baseline scatter (paper Fig. 2c).

matplotlib is imported inside the functions, so ``import epitensor`` stays fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import DataError
from .metrics import higher_is_better
from .report import per_assay


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _track(da, biosample, assay, region) -> xr.DataArray:
    if region is not None:
        da = da.epi.region(region)  # works on the full axis and on arrays with a position index
    for dim, label in (("biosample", biosample), ("assay", assay)):
        if dim in da.dims:
            da = da.sel({dim: label})
    return da


def tracks(observed: xr.DataArray, imputed: xr.DataArray | None = None, baseline: xr.DataArray | None = None, *,
           biosample: str, assay: str, region=None, annotations=None, path=None, ax=None):
    """Plot observed vs imputed vs baseline signal of one track over a region, with an annotation lane.

    Parameters
    ----------
    observed, imputed, baseline : DataArray
        ``(biosample, assay, position)`` arrays (e.g. ``ds.held_out``, ``ds.imputed``, a baseline).
    biosample, assay : str
    region : str or tuple
        E.g. ``"chr20:1,000,000-1,100,000"``; required unless the arrays are already regions.
    annotations : Annotations, "hg19"/"hg38" or folder, optional
        Genes (with strand arrows) and enhancers drawn in a lane below.
    path : str or Path, optional
        Save the figure there (PNG, PDF, SVG by suffix).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = et.plot.tracks(ds.held_out, base, biosample="B01", assay="H3K4me3",
    ...                      region="synthetic:0-50kb")                 # doctest: +SKIP
    """
    plt = _pyplot()
    lanes = [("observed", observed, "black"), ("imputed", imputed, "tab:blue"), ("baseline", baseline, "tab:orange")]
    lanes = [(n, _track(d, biosample, assay, region), c) for n, d, c in lanes if d is not None]
    n_lanes = len(lanes) + (annotations is not None)
    if ax is not None:
        axes = [ax] * n_lanes
        fig = ax.figure
    else:
        fig, axes = plt.subplots(n_lanes, 1, figsize=(10, 1.6 * n_lanes + 0.4), sharex=True, squeeze=False)
        axes = list(axes[:, 0])
    first = lanes[0][1]
    if "position" not in first.indexes:
        raise DataError("pass region='chr1:...' (or arrays selected with .epi.region) so the track has coordinates")
    names, x = first.epi.genome.locate(first["position"].values)
    chrom = str(names[0])
    for name, da, _ in lanes[1:]:
        if da.sizes["position"] != x.size:
            raise DataError(f"the {name} track covers {da.sizes['position']:,} bins but observed covers {x.size:,}; select the same region")
    for lane_ax, (name, da, color) in zip(axes, lanes):
        lane_ax.fill_between(x, np.asarray(da.values, dtype=float), step="post", color=color, alpha=0.8, lw=0)
        lane_ax.set_ylabel(name, rotation=0, ha="right", va="center")
        lane_ax.spines[["top", "right"]].set_visible(False)
    if annotations is not None:
        from .annotations import load_annotations

        _annotation_lane(axes[-1], load_annotations(annotations), chrom, x.min(), x.max() + first.epi.genome.bin_size)
    axes[-1].set_xlabel(f"{chrom} position (bp)")
    axes[0].set_title(f"{biosample} {assay}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _annotation_lane(ax, annotations, chrom, lo, hi):
    for row, (kind, color) in enumerate((("genes", "tab:green"), ("enhancers", "tab:purple"))):
        table = getattr(annotations, kind)
        if table is None:
            continue
        hits = table[(table["chrom"] == chrom) & (table["end"] > lo) & (table["start"] < hi)]
        for s, e, strand in zip(hits["start"], hits["end"], hits["strand"]):
            ax.add_patch(_rect(max(s, lo), row + 0.2, min(e, hi) - max(s, lo), 0.6, color))
            if strand in "+-" and kind == "genes":
                ax.annotate("", xy=(e if strand == "+" else s, row + 0.5), xytext=(s if strand == "+" else e, row + 0.5),
                            arrowprops={"arrowstyle": "->", "color": "white", "lw": 0.8})
    ax.set_ylim(0, 2)
    ax.set_yticks([0.5, 1.5], ["genes", "enhancers"])
    ax.set_xlim(lo, hi)


def _rect(x, y, w, h, color):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, color=color, lw=0)


def metric_scatter(scores_model: pd.DataFrame, scores_baseline: pd.DataFrame | None = None, metric: str = "mse", *,
                   path=None, ax=None, label_assays: bool = False):
    """Per-assay scatter of model vs baseline ``metric`` with win counts (the paper's Fig. 2c).

    Each point is one assay (mean over its tracks); points on the winning side of the diagonal
    are assays where the model beats the baseline, counted in the title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = et.plot.metric_scatter(scores_model, scores_baseline, metric="mse")   # doctest: +SKIP
    """
    plt = _pyplot()
    table = per_assay(scores_model, scores_baseline, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
    else:
        fig = ax.figure
    colors = np.where(table["model_wins"], "tab:blue", "tab:red")
    ax.scatter(table["baseline"], table["model"], c=colors, s=25, edgecolor="none")
    both = np.r_[table["baseline"], table["model"]]
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=0.8, ls="--")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    if label_assays:
        for _, r in table.iterrows():
            ax.annotate(str(r["assay"]), (r["baseline"], r["model"]), fontsize=6)
    wins = int(table["model_wins"].sum())
    better = "higher" if higher_is_better(metric) else "lower"
    ax.set_xlabel(f"baseline {metric}")
    ax.set_ylabel(f"model {metric}")
    ax.set_title(f"model better on {wins} of {len(table)} assays ({better} is better)", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
