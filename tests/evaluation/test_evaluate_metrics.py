"""Metrics: hand-computed examples, and agreement with straightforward numpy/scipy/sklearn code
written the way the ENCODE Imputation Challenge's score.py computes each metric."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

import epitensor as et
from epitensor.evaluation import metrics as M
from epitensor.evaluation.annotations import Annotations, read_bed, track_layout
from epitensor.evaluation.metrics import ranks

# ---------------------------------------------------------------------------- references (EIC style)


def ref_top(y):
    n = int(y.shape[0] * 0.01)
    return y >= np.sort(y)[-n]


def ref_scores(y_true, y_pred):
    n = int(y_true.shape[0] * 0.01)
    st, sp = np.sort(y_true), np.sort(y_pred)
    top_t, top_p = y_true >= st[-n], y_pred >= sp[-n]
    top5_t, top5_p = y_true >= st[-n * 5], y_pred >= sp[-n * 5]
    return {
        "mse": ((y_true - y_pred) ** 2).mean(),
        "gwcorr": np.corrcoef(y_true, y_pred)[0, 1],
        "gwspear": spearmanr(y_true, y_pred)[0],
        "mse1obs": ((y_true[top_t] - y_pred[top_t]) ** 2).mean(),
        "mse1imp": ((y_true[top_p] - y_pred[top_p]) ** 2).mean(),
        "match1": (top_t & top_p).sum() / n,
        "catch1obs": (top_t & top5_p).sum() / n,
        "catch1imp": (top5_t & top_p).sum() / n,
        "aucobs1": roc_auc_score(top_t, y_pred),
        "aucimp1": roc_auc_score(top_p, y_true),
    }


def random_pair(rng, n=20_000, ties=True):
    y_true = rng.gamma(0.6, 1.0, n).astype(np.float32)
    y_pred = (0.7 * y_true + rng.normal(0, 0.5, n)).astype(np.float32)
    if ties:  # real tracks are full of exact zeros and repeated values
        y_true[rng.random(n) < 0.3] = 0.0
        y_pred = np.round(np.maximum(y_pred, 0), 1).astype(np.float32)
    return y_true, y_pred


# ---------------------------------------------------------------------------- hand-computed
def test_hand_computed_small_example():
    y_true = np.arange(200, dtype=np.float64)          # top 1% = 2 bins: 198, 199; top 5% = 10 bins
    y_pred = y_true.copy()
    y_pred[199] += 3.0                                   # error on the top observed bin
    y_pred[0] = 500.0                                    # a false top-1% imputed bin (error 500)
    assert M.mse(y_true, y_pred) == pytest.approx((9 + 500**2) / 200)
    assert M.mse1obs(y_true, y_pred) == pytest.approx(9 / 2)
    # top imputed bins: 500 (bin 0) and 202 (bin 199)
    assert M.mse1imp(y_true, y_pred) == pytest.approx((500**2 + 9) / 2)
    assert M.match1(y_true, y_pred) == 0.5               # bin 199 in both top-1% sets
    assert M.catch1obs(y_true, y_pred) == 1.0            # both top observed bins in the top-5% imputed
    assert M.catch1imp(y_true, y_pred) == 0.5            # bin 0 is not a top-5% observed bin
    # aucobs1: positives 198, 199 outrank every negative except bin 0 (500) -> 2 * 197 of 2 * 198 pairs
    assert M.aucobs1(y_true, y_pred) == pytest.approx(394 / 396)
    assert M.region_mse(y_true, y_pred, [198, 199], [200, 200]) == pytest.approx(9 * 2 / 3)
    assert M.msevar([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 1.0, 3.0]) == pytest.approx((4 + 27) / 4)


def test_ties_at_threshold_are_kept_like_the_challenge():
    y_true = np.zeros(300)
    y_true[:5] = 1.0                                     # int(0.01 * 300) = 3 but 5 bins tie at the top
    y_pred = np.zeros(300)
    assert M.mse1obs(y_true, y_pred) == pytest.approx(1.0)   # mean over all 5 tied bins
    assert M.match1(y_true, y_pred) == pytest.approx(5 / 3)  # counts exceed n with ties (as the EIC)


def test_peak_metrics_hand_and_sklearn():
    labels = np.array([0, 1, 1, 0, 1, 0])
    scores = np.array([0.1, 0.9, 0.4, 0.5, 0.4, 0.0])
    # EPR: 3 peaks -> threshold 0.4 (3rd largest); predicted {0.9, 0.5, 0.4, 0.4}: 3 of 4 are peaks
    assert M.epr(labels, scores) == pytest.approx(3 / 4)
    assert M.average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    rng = np.random.default_rng(5)
    lab = rng.random(5000) < 0.1
    sc = np.round(lab * 0.5 + rng.random(5000), 2)
    assert M.average_precision(lab, sc) == pytest.approx(average_precision_score(lab, sc))


# ---------------------------------------------------------------------------- random data vs references
@pytest.mark.parametrize("ties", [False, True])
def test_score_arrays_matches_reference_on_random_data(ties):
    rng = np.random.default_rng(1)
    y_true, y_pred = random_pair(rng, ties=ties)
    ours = M.score_arrays(y_true, y_pred)
    ref = ref_scores(y_true.astype(np.float64), y_pred.astype(np.float64))
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    # the single-metric functions agree with the shared-sort path
    for name in ref:
        assert getattr(M, name)(y_true, y_pred) == pytest.approx(ours[name], rel=1e-9), name


def test_sinh_transform_changes_values_not_ranks():
    rng = np.random.default_rng(2)
    y_true, y_pred = random_pair(rng, ties=True)
    ours = M.score_arrays(y_true, y_pred, transform=np.sinh)
    ref = ref_scores(np.sinh(y_true.astype(np.float64)), np.sinh(y_pred.astype(np.float64)))
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, rel=1e-6), name


def test_average_ranks_and_packed_sort_match_scipy():
    from scipy.stats import rankdata

    x = np.array([0.0, -0.0, -1.5, 2.0, np.float32(1e-30), 2.0, -3e30], dtype=np.float32)
    xs, order = M.sorted_with_order(x)
    assert np.array_equal(order, np.argsort(x, kind="stable"))
    assert np.array_equal(M.average_ranks(x), rankdata(x))


def test_paper_names_map_to_eic_functions():
    rng = np.random.default_rng(3)
    y_true, y_pred = random_pair(rng)
    paper = M.score_arrays(y_true, y_pred, metrics="paper")
    assert set(paper) == set(M.PAPER_METRICS)
    assert paper["mseGlobal"] == pytest.approx(M.mse(y_true, y_pred))
    with pytest.raises(ValueError, match="unknown metric"):
        M.score_arrays(y_true, y_pred, metrics=["msee"])


# ---------------------------------------------------------------------------- regions, blacklist, parity
LENGTHS = {"chr21": 150_000, "chr22": 120_010, "chrY": 50_000}


def mini_genome():
    return et.Genome("hg38", list(LENGTHS), list(LENGTHS.values()), chunk_bins=8000)


def mini_annotations(tmp_path):
    genes = "chr21\t2500\t4010\tg1\t.\t+\nchr21\t10000\t20000\tg2\t.\t-\nchr21\t1000\t1300\tg3\t.\t+\n" \
            "chr22\t50000\t60000\tg4\t.\t+\nchr22\t119000\t120010\tg5\t.\t-\nchrY\t100\t5000\tg6\t.\t+\n" \
            "chr21\t12000\t13000\tg7\t.\t-\n"
    enh = "chr21\t30000\t30500\te1\t0\t.\t0\t0\t0\t1\t1\t0\nchr22\t70000\t70100\te2\t0\t.\t0\t0\t0\t1\t1\t0\n"
    bl = "chr21\t5000\t7500\tHigh\nchr22\t100\t200\tLow\nchr21\t140000\t150000\tHigh\n"
    (tmp_path / "genes.bed").write_text(genes)
    with gzip.open(tmp_path / "enh.bed.gz", "wt") as fh:   # gzipped reader path
        fh.write(enh)
    (tmp_path / "bl.bed").write_text(bl)
    return Annotations.from_files(genes=tmp_path / "genes.bed", enhancers=tmp_path / "enh.bed.gz",
                                  blacklist=tmp_path / "bl.bed", assembly="hg38")


def eic_reference(truth_dict, pred_dict, ann, transform=np.sinh):
    """The challenge's pipeline, loop for loop: delete blacklisted bins, then index regions."""
    bins = {c: set() for c in truth_dict}
    for c, s, e in ann.blacklist[["chrom", "start", "end"]].itertuples(index=False):
        if c in bins:
            bins[c] |= set(range(s // 25, e // 25 + 1))
    t = {c: transform(np.array([v for i, v in enumerate(truth_dict[c]) if i not in bins[c]], dtype=np.float64)) for c in truth_dict}
    p = {c: transform(np.array([v for i, v in enumerate(pred_dict[c]) if i not in bins[c]], dtype=np.float64)) for c in pred_dict}
    chroms = sorted(truth_dict)
    sse = n = 0.0
    for c in chroms:
        for chrom_, start, end, strand in ann.genes[["chrom", "start", "end", "strand"]].itertuples(index=False):
            if chrom_ != c:
                continue
            s, e = start // 25, end // 25 + 1
            sl = slice(s - 80, s) if strand == "+" else slice(e, e + 80)
            sse += ((t[c][sl] - p[c][sl]) ** 2).sum()
            n += t[c][sl].shape[0]
    prom = sse / n
    out = {"mseprom": prom}
    for name, table in (("msegene", ann.genes), ("mseenh", ann.enhancers)):
        sse = n = 0.0
        for c in chroms:
            for chrom_, start, end in table[["chrom", "start", "end"]].itertuples(index=False):
                if chrom_ != c:
                    continue
                s, e = start // 25, end // 25 + 1
                sse += ((t[c][s:e] - p[c][s:e]) ** 2).sum()
                n += e - s
        out[name] = sse / n
    y_t = np.concatenate([t[c] for c in chroms])
    y_p = np.concatenate([p[c] for c in chroms])
    out.update(ref_scores(y_t, y_p))
    return out


def tracks_on(genome, values_by_contig, biosample="B1", assay="H3K4me3"):
    data = np.full(genome.n_positions, np.nan, dtype=np.float32)
    for c, v in values_by_contig.items():
        lo, hi = genome.contig_bins(c)
        data[lo:hi] = v
    return xr.DataArray(data[None, None], dims=("biosample", "assay", "position"),
                        coords={"biosample": [biosample], "assay": [assay]},
                        attrs={**genome.to_attrs(), "transform": "arcsinh"})


def test_eic_parity_reproduces_the_challenge_pipeline(tmp_path):
    g = mini_genome()
    ann = mini_annotations(tmp_path)
    rng = np.random.default_rng(4)
    truth_d = {c: rng.gamma(0.5, 1.0, g.n_bins(c)).astype(np.float32) for c in g.contigs}
    pred_d = {c: (v * 0.8 + rng.random(v.size)).astype(np.float32) for c, v in truth_d.items()}
    truth, pred = tracks_on(g, truth_d), tracks_on(g, pred_d)
    scores = et.evaluate(pred, truth, ann, eic_parity=True)
    ref = eic_reference({c: truth_d[c] for c in ("chr21", "chr22")}, {c: pred_d[c] for c in ("chr21", "chr22")}, ann)
    row = scores.iloc[0]
    for name, value in ref.items():
        assert row[name] == pytest.approx(value, rel=1e-6), name
    assert row["n_bins"] == sum(len(truth_d[c]) for c in ("chr21", "chr22")) - (101 + 5 + 400)  # chrY dropped; the last interval is cut at the contig end


def test_default_mode_masks_blacklist_and_keeps_positions(tmp_path):
    g = mini_genome()
    ann = mini_annotations(tmp_path)
    rng = np.random.default_rng(6)
    truth_d = {c: rng.gamma(0.5, 1.0, g.n_bins(c)).astype(np.float32) for c in g.contigs}
    pred_d = {c: (v + rng.normal(0, 0.3, v.size)).astype(np.float32) for c, v in truth_d.items()}
    row = et.evaluate(tracks_on(g, pred_d), tracks_on(g, truth_d), ann).iloc[0]
    # independent: per-contig boolean masks from the overlap rule, no deletion
    keep = {c: np.ones(g.n_bins(c), bool) for c in g.contigs}
    for c, s, e in ann.blacklist[["chrom", "start", "end"]].itertuples(index=False):
        keep[c][s // 25:(e - 1) // 25 + 1] = False
    yt = np.concatenate([truth_d[c][keep[c]] for c in g.contigs]).astype(np.float64)
    yp = np.concatenate([pred_d[c][keep[c]] for c in g.contigs]).astype(np.float64)
    for name, value in ref_scores(yt, yp).items():
        assert row[name] == pytest.approx(value, rel=1e-6), name
    sse = n = 0.0
    for c, s, e in ann.genes[["chrom", "start", "end"]].itertuples(index=False):
        sl = slice(s // 25, (e - 1) // 25 + 1)
        d = (truth_d[c][sl].astype(np.float64) - pred_d[c][sl])[keep[c][sl]]
        sse += (d**2).sum()
        n += d.size
    assert row["msegene"] == pytest.approx(sse / n, rel=1e-9)
    # the two modes disagree on a blacklisted genome (deleted vs masked bins shift the regions)
    parity = et.evaluate(tracks_on(g, pred_d), tracks_on(g, truth_d), ann, eic_parity=True, metrics=["msegene"])
    assert parity["msegene"][0] != pytest.approx(row["msegene"])


def test_layout_promoters_respect_strand_and_edges(tmp_path):
    g = mini_genome()
    ann = mini_annotations(tmp_path)
    lay = track_layout(g, None, ann)
    lo, hi = lay.regions["promoters"]
    sizes = sorted((hi - lo).tolist())
    # g3 (+, starts at bin 40) is clipped at the contig start: 40 bins; g1 (+, bin 100): 80 bins
    # minus the blacklist? No: [20, 100) does not touch chr21:5000-7500 (bins 200-300)
    assert 40 in sizes and sizes.count(80) >= 3
    lay_p = track_layout(g, None, ann, eic_parity=True)
    lo_p, hi_p = lay_p.regions["promoters"]
    assert 0 in (hi_p - lo_p).tolist()  # the challenge's negative slice: g3's promoter is empty


def test_msevar_weights_by_cross_biosample_variance():
    g = et.Genome.single_contig("chr1", 400)
    rng = np.random.default_rng(7)
    truth = rng.random((3, 1, 400)).astype(np.float32)
    attrs = {**g.to_attrs(), "transform": "arcsinh"}
    coords = {"biosample": ["a", "b", "c"], "assay": ["x"]}
    t = xr.DataArray(truth, dims=("biosample", "assay", "position"), coords=coords, attrs=attrs)
    p = t + 0.1 * xr.DataArray(rng.standard_normal(truth.shape).astype(np.float32), dims=t.dims, coords=t.coords)
    p.attrs = attrs
    scores = et.evaluate(p, t, metrics=["msevar"])
    var = np.std(truth[:, 0].astype(np.float64), axis=0) ** 2
    for i, b in enumerate("abc"):
        se = (truth[i, 0].astype(np.float64) - p.values[i, 0]) ** 2
        assert scores.set_index("biosample").loc[b, "msevar"] == pytest.approx(se @ var / var.sum(), rel=1e-6)


# ---------------------------------------------------------------------------- real annotation files
def test_readers_on_real_annotation_files(annotations_dir):
    from epitensor.evaluation.annotations import load_annotations

    ann = load_annotations(str(annotations_dir / "hg38"))
    assert len(ann.genes) == 58721 and set(ann.genes.strand) == {"+", "-"}
    assert len(ann.enhancers) == 63285 and len(ann.blacklist) == 636
    g = et.Genome.from_assembly("hg38", contigs=["chr21"])
    lay = track_layout(g, None, ann)
    lo, hi = lay.regions["promoters"]
    n_chr21 = int((ann.genes.chrom == "chr21").sum())
    assert lo.size == n_chr21 and ((hi - lo) <= 80).all()
    tss = read_bed(annotations_dir / "hg38" / "RefSeqTSS.hg38.bed.gz")
    assert (tss.end - tss.start == 1).all()
    hg19 = load_annotations(str(annotations_dir / "hg19"))
    assert hg19.promoters is not None and hg19.genes is not None


def test_assembly_name_uses_epitensor_data(annotations_dir, monkeypatch, tmp_path):
    from epitensor.evaluation.annotations import load_annotations

    monkeypatch.setenv("EPITENSOR_DATA", str(annotations_dir.parent))
    assert load_annotations("hg38").blacklist is not None
    monkeypatch.setenv("EPITENSOR_DATA", str(tmp_path))
    with pytest.raises(et.DataError, match="no annotation files"):
        load_annotations("hg38")


def test_bad_inputs_raise_clear_errors(tmp_path):
    (tmp_path / "bad.bed").write_text("chr1\t10\n")
    with pytest.raises(et.DataError, match="fewer than 3 columns"):
        read_bed(tmp_path / "bad.bed")
    with pytest.raises(et.DataError, match="empty"):
        M.mse([], [])
    g = et.Genome.single_contig("chr1", 400)
    attrs = {**g.to_attrs(), "transform": "arcsinh"}
    t = xr.DataArray(np.ones((1, 1, 400), np.float32), dims=("biosample", "assay", "position"),
                     coords={"biosample": ["a"], "assay": ["x"]}, attrs=attrs)
    p = t.copy()
    p[0, 0, 5] = np.nan
    with pytest.raises(et.DataError, match="a/x has NaN"):
        et.evaluate(p, t)
    with pytest.raises(et.LabelError, match="share no"):
        et.evaluate(p.assign_coords(assay=["y"]), t)


def test_chunked_scans_agree_across_chunk_boundaries(monkeypatch):
    """Ranks, sorts and sums are computed in chunks: tie groups and sums must cross chunk edges."""
    from scipy.stats import rankdata

    monkeypatch.setattr(ranks, "CHUNK_BINS", 7)
    rng = np.random.default_rng(8)
    x = np.round(rng.random(1000), 1).astype(np.float32)  # long tie runs spanning many chunks
    x[::5] = -0.0
    assert np.array_equal(M.average_ranks(x), rankdata(x))
    y = (x + rng.normal(0, 0.2, x.size)).astype(np.float32)
    ours = M.score_arrays(x, y, metrics=["mse", "gwcorr", "gwspear", "aucobs1", "aucimp1"])
    ref = ref_scores(x.astype(np.float64), y.astype(np.float64))
    for name, value in ours.items():
        assert value == pytest.approx(ref[name], rel=1e-9), name
