"""Time to score one genome-wide hg38 track pair (25 bp bins) with all EIC metrics.

epitensor (``et.evaluate`` on labelled arrays: layout, blacklist masking, region intervals,
the msevar variance from two tracks of the assay, and every metric with shared sorts) against a straightforward numpy/scipy/sklearn implementation
measured in the same run: blacklist mask, ``numpy.sort`` per top-k metric, ``numpy.corrcoef``,
``scipy.stats.spearmanr``, ``sklearn.metrics.roc_auc_score`` and the challenge's per-gene loops
for the region metrics. The reference gets the msevar variance precomputed.

The data are random but shaped like real arcsinh signal (about 40% exact zeros, a heavy-tailed
background, sparse peaks; the imputation is a noisy, shrunk copy). Annotations come from
``$EPITENSOR_DATA/annotations/hg38`` or ``../shared/data/annotations/hg38`` when present.

The reference's spearmanr and roc_auc_score are slow and memory-hungry at genome scale: by
default they are timed on the leading 25% of the bins (``--reference-fraction``) and their times
extrapolated by N log N; the output says so. ``--reference-fraction 1`` times them in full.

Usage::

    python benchmarks/bench_evaluate.py                 # the full genome (~124 M bins)
    python benchmarks/bench_evaluate.py --contigs chr21 chr22   # a quick run
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
import xarray as xr
from common import shared_data  # (and the source tree on sys.path)

import epitensor as et
from epitensor.evaluation.annotations import EIC_CHROMS, Annotations


def make_tracks(genome, seed=0):
    """Realistic arcsinh-scale truth and imputation over the genome axis (NaN padding between contigs)."""
    rng = np.random.default_rng(seed)
    n = genome.n_positions
    truth = np.full(n, np.nan, dtype=np.float32)
    pred = np.full(n, np.nan, dtype=np.float32)
    for c in genome.contigs:
        lo, hi = genome.contig_bins(c)
        m = hi - lo
        t = rng.standard_exponential(m, dtype=np.float32)    # heavy-tailed background
        t *= t                                                  # (squared exponential: gamma-like tail)
        t *= rng.random(m, dtype=np.float32) > 0.4            # exact zeros (no reads)
        peaks = rng.random(m, dtype=np.float32) < 0.004
        t[peaks] += rng.uniform(2, 5, int(peaks.sum())).astype(np.float32)
        np.arcsinh(t, out=t)
        truth[lo:hi] = t
        noise = rng.standard_normal(m, dtype=np.float32) * np.float32(0.3)
        pred[lo:hi] = np.maximum(np.float32(0.8) * t + noise, 0)
    return truth, pred


def find_annotations():
    return shared_data("annotations", "hg38")


# ---------------------------------------------------------------------------- the reference
def reference_scores(truth, pred, variance, genome, ann, fraction, timings):
    """Straightforward numpy/scipy/sklearn scoring in the challenge's style (corrected mode:
    blacklisted bins masked, every contig)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - t0
        return value

    t0 = time.perf_counter()
    keep = np.zeros(genome.n_positions, dtype=bool)
    for c in genome.contigs:
        lo, hi = genome.contig_bins(c)
        keep[lo:hi] = True
    if ann is not None and ann.blacklist is not None:
        for c, s, e in ann.blacklist[["chrom", "start", "end"]].itertuples(index=False):
            if c in genome.contigs:
                lo, hi = genome.contig_bins(c)
                keep[lo + s // 25: min(lo + (e - 1) // 25 + 1, hi)] = False
    y_true = truth[keep].astype(np.float64)
    y_pred = pred[keep].astype(np.float64)
    var = variance[keep]
    timings["(load/mask)"] = time.perf_counter() - t0
    n = int(y_true.shape[0] * 0.01)
    out = {}
    out["mse"] = timed("mse", lambda: ((y_true - y_pred) ** 2).mean())
    out["gwcorr"] = timed("gwcorr", lambda: np.corrcoef(y_true, y_pred)[0, 1])

    def top(y, k=1):
        return y >= np.sort(y)[-n * k]

    out["mse1obs"] = timed("mse1obs", lambda: ((y_true - y_pred)[top(y_true)] ** 2).mean())
    out["mse1imp"] = timed("mse1imp", lambda: ((y_true - y_pred)[top(y_pred)] ** 2).mean())
    out["match1"] = timed("match1", lambda: (top(y_true) & top(y_pred)).sum() / n)
    out["catch1obs"] = timed("catch1obs", lambda: (top(y_true) & top(y_pred, 5)).sum() / n)
    out["catch1imp"] = timed("catch1imp", lambda: (top(y_true, 5) & top(y_pred)).sum() / n)
    out["msevar"] = timed("msevar", lambda: ((y_true - y_pred) ** 2).dot(var) / var.sum())
    # the expensive rank metrics, possibly on a prefix of the bins (extrapolated by N log N)
    m = int(y_true.size * fraction)
    scale = (y_true.size * np.log(y_true.size)) / (m * np.log(m))
    yt, yp = y_true[:m], y_pred[:m]
    nm = int(m * 0.01)
    out["gwspear"] = timed("gwspear", lambda: spearmanr(yt, yp)[0])
    out["aucobs1"] = timed("aucobs1", lambda: roc_auc_score(yt >= np.sort(yt)[-nm], yp))
    out["aucimp1"] = timed("aucimp1", lambda: roc_auc_score(yp >= np.sort(yp)[-nm], yt))
    if fraction < 1:
        for k in ("gwspear", "aucobs1", "aucimp1"):
            timings[k] *= scale
    # region metrics: the challenge's per-gene loops on masked per-chromosome arrays
    if ann is not None:
        def region(table, promoters):
            sse = cnt = 0.0
            for c, grp in table.groupby("chrom"):
                if c not in genome.contigs:
                    continue
                lo, hi = genome.contig_bins(c)
                t, p, k = truth[lo:hi], pred[lo:hi], keep[lo:hi]
                for s, e, strand in zip(grp.start.to_numpy(), grp.end.to_numpy(), grp.strand.to_numpy()):
                    s, e = s // 25, (e - 1) // 25 + 1
                    if promoters:
                        s, e = (max(s - 80, 0), s) if strand == "+" else (e, e + 80)
                    kk = k[s:e]
                    d = (t[s:e][kk].astype(np.float64) - p[s:e][kk])
                    sse += float(d @ d)
                    cnt += d.size
            return sse / cnt

        out["mseprom"] = timed("mseprom", lambda: region(ann.genes, True))
        out["msegene"] = timed("msegene", lambda: region(ann.genes, False))
        out["mseenh"] = timed("mseenh", lambda: region(ann.enhancers, False))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contigs", nargs="*", default=None, help="hg38 contigs (default: all)")
    parser.add_argument("--reference-fraction", type=float, default=0.25,
                        help="fraction of bins for the reference's spearmanr/roc_auc_score (extrapolated)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end-to-end", action="store_true", help="also time et.evaluate on the labelled arrays")
    args = parser.parse_args()

    genome = et.Genome.from_assembly("hg38", contigs=args.contigs)
    folder = find_annotations()
    ann = None
    if folder is not None:
        ann = Annotations.from_files(genes=folder / "gencode.v29.genes.gtf.bed.gz",
                                     enhancers=folder / "F5.hg38.enhancers.bed.gz",
                                     blacklist=folder / "hg38-blacklist.v2.bed.gz", assembly="hg38")
    print(f"genome: hg38 {len(genome.contigs)} contigs, {genome.n_positions:,} positions; annotations: {folder}")
    t0 = time.perf_counter()
    truth, pred = make_tracks(genome, args.seed)
    rng = np.random.default_rng(1)
    variance = np.nan_to_num(truth) * np.float32(0.1) + rng.random(truth.size, dtype=np.float32) * np.float32(0.01)
    print(f"generated data in {time.perf_counter() - t0:.1f} s", flush=True)
    attrs = {**genome.to_attrs(), "transform": "arcsinh"}
    dims = ("biosample", "assay", "position")
    coords = {"biosample": ["B"], "assay": ["A"]}
    truth_da = xr.DataArray(truth[None, None], dims=dims, coords=coords, attrs=attrs)
    pred_da = xr.DataArray(pred[None, None], dims=dims, coords=coords, attrs=attrs)
    # two tracks of the assay whose population variance per bin is `variance` (x +- sqrt(var))
    spread = np.sqrt(variance)
    var_da = xr.DataArray(np.stack([truth + spread, truth - spread])[:, None], dims=dims,
                          coords={"biosample": ["V1", "V2"], "assay": ["A"]}, attrs=attrs)
    del spread

    # ---------------------------------------------------------------- epitensor
    # one pass of the scoring engine et.evaluate runs per track, with a per-step clock
    from epitensor.evaluation.annotations import track_layout
    from epitensor.evaluation.metrics import EIC_METRICS, score_arrays

    per_metric = {}
    tracemalloc.start()
    t0 = time.perf_counter()
    layout = track_layout(genome, None, ann)
    yt, yp, vv = truth[layout.select], pred[layout.select], variance[layout.select]
    per_metric["(load/mask)"] = time.perf_counter() - t0
    ours = score_arrays(yt, yp, metrics="eic", regions=layout.regions, variance=vv, timings=per_metric)
    t_ours = time.perf_counter() - t0
    peak_ours = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del yt, yp, vv, layout
    gc.collect()
    print(f"epitensor (layout + score_arrays, all metrics): {t_ours:.1f} s", flush=True)
    t_evaluate = None
    if args.end_to_end:  # the labelled path: alignment, track selection, msevar variance from tracks
        t0 = time.perf_counter()
        et.evaluate(pred_da, truth_da, ann, metrics="eic", variance_from=var_da)
        t_evaluate = time.perf_counter() - t0
        print(f"epitensor et.evaluate end to end: {t_evaluate:.1f} s", flush=True)
        gc.collect()

    # ---------------------------------------------------------------- reference
    timings = {}
    tracemalloc.start()
    t0 = time.perf_counter()
    ref = reference_scores(truth, pred, variance, genome, ann, args.reference_fraction, timings)
    t_ref_measured = time.perf_counter() - t0
    peak_ref = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t_ref = sum(timings.values())

    row = ours
    print()
    shared = [k for k in per_metric if k.startswith("(") and k != "(load/mask)"]
    print(f"{'metric':<22} {'epitensor s':>12} {'reference s':>12}  {'epitensor':>12} {'reference':>12}")
    for name in ["(load/mask)", *EIC_METRICS, *shared]:
        r = timings.get(name, float("nan"))
        e = per_metric.get(name, float("nan"))
        vo = row.get(name, float("nan"))
        vr = ref.get(name, float("nan"))
        print(f"{name:<22} {e:>12.2f} {r:>12.2f}  {vo:>12.6g} {vr:>12.6g}")
    print("(epitensor's per-metric rows exclude the shared steps in parentheses, which the reference redoes per metric)")
    print()
    print(f"all metrics at once: epitensor {t_ours:.1f} s (shared sorts/ranks, rows in parentheses); "
          f"reference {t_ref:.1f} s (measured wall {t_ref_measured:.1f} s"
          + (f"; spearman/AUCs timed on {args.reference_fraction:.0%} of bins and extrapolated by N log N" if args.reference_fraction < 1 else "")
          + f"); ratio {t_ref / t_ours:.1f}x")
    print(f"peak traced memory: epitensor {peak_ours / 2**30:.2f} GiB, reference {peak_ref / 2**30:.2f} GiB "
          f"(input pair {2 * truth.nbytes / 2**30:.2f} GiB not included)")
    if args.reference_fraction < 1:
        print("note: reference gwspear/aucobs1/aucimp1 values are computed on the leading fraction of bins")
    if t_evaluate is not None:
        print(f"et.evaluate end to end (labelled arrays, variance from 2 tracks): {t_evaluate:.1f} s")
    print(f"EIC chromosomes: {len([c for c in genome.contigs if c in EIC_CHROMS])} of {len(genome.contigs)} contigs")


if __name__ == "__main__":
    main()
