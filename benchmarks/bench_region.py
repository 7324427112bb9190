"""Latency of reading one 1 Mb region of one track: epitensor store vs pyBigWig.

Also a list of ten 10 kb regions (4,000 bins) of the same track, read and through dask.

(pyBigWig's ``stats(nBins=40,000)`` is left out: it took over a second per call.)

The store's position axis spans all of hg38 (chr1-22, X, Y, M) at 25 bp, about 124 million
positions, with only a few observed tracks so it stays small on disk. The same values are written to
a bigWig (25 bp fixed-step entries) and read back with pyBigWig in the same run.

Run:  python benchmarks/bench_region.py [--repeats 200] [--workdir DIR]

Notes
-----
Measured 2026-12-03 (2 cores, Intel Xeon with AMX, 50 regions each), median ms: ``.epi.read`` of
1 Mb 0.61, through dask 4.57; ``.epi.read`` of ten 10 kb regions 1.07, through dask 6.43;
pyBigWig ``values()`` 2.54. Before the list was read region by region from the chunk files, its
``.epi.read`` loaded the selection through dask, and the lazy ``chrom``/``start``/``end`` of an
integer selection built a range over all 124 million bins: 650 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyBigWig

import epitensor as et


def peaky_track(n: int, seed: int) -> np.ndarray:
    """arcsinh-scale values with peaks and broad domains (realistic compressibility)."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 0.3, n)
    spikes = np.convolve((rng.random(n) < 0.003) * rng.gamma(2, 20, n), np.hanning(15), mode="same")
    return np.arcsinh(base + spikes).astype(np.float32)


def peak_allocation(fn) -> int:
    """Peak bytes that Python and numpy allocate while ``fn`` runs (tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def write_bigwig(path: Path, genome: et.Genome, tracks: dict[str, np.ndarray]) -> None:
    """25 bp fixed-step bigWig of binned values (the last partial bin ends at the contig end)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, genome.length(c)) for c in genome.contigs], maxZooms=10)
    for contig, values in tracks.items():
        bw.addEntries(contig, 0, values=values[:-1].astype(np.float64), span=25, step=25)
        last = (len(values) - 1) * 25
        bw.addEntries([contig], [last], ends=[genome.length(contig)], values=[float(values[-1])])
    bw.close()


def timed(fn, repeats: int) -> tuple[list[float], object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def build_region_benchmark(work: Path):
    """(genome, store, bigWig path): one peaky HepG2 H3K27ac track on hg38 chr20 and chr21, in a
    store under ``work`` and in a bigWig beside it."""
    genome = et.Genome.from_assembly("hg38")
    observed = {"chr20": peaky_track(genome.n_bins("chr20"), 0), "chr21": peaky_track(genome.n_bins("chr21"), 1)}
    store = et.create_store(work / "hg38.zarr", ["HepG2", "K562", "GM12878"], ["H3K27ac", "CTCF", "H3K4me3"], genome, overwrite=True)
    writer = et.TrackWriter(store)
    for contig, values in observed.items():
        writer.write("HepG2", "H3K27ac", values, contig)
    writer.mark_observed([("HepG2", "H3K27ac")])
    bw_path = work / "HepG2.H3K27ac.bw"
    write_bigwig(bw_path, genome, observed)
    return genome, store, bw_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="regions read per method")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the store and bigWig")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="epitensor-bench-region-"))
    work.mkdir(parents=True, exist_ok=True)

    genome, store, bw_path = build_region_benchmark(work)
    rng = np.random.default_rng(42)
    n20 = genome.length("chr20")
    starts = (rng.integers(0, (n20 - 1_000_000) // 25, args.repeats) * 25).tolist()
    regions = iter(starts * 10)

    ds = et.open_dataset(store)
    track = ds.signal.sel(biosample="HepG2", assay="H3K27ac")

    def epitensor_read():  # straight from zarr, no dask graph
        s = next(regions)
        return track.epi.read(("chr20", s, s + 1_000_000)).values

    def epitensor_lazy_values():  # lazy selection, computed by dask
        s = next(regions)
        return track.epi.region(("chr20", s, s + 1_000_000)).values

    def ten_regions(s):  # ten 10 kb regions 100 kb apart (promoters, say): 4,000 bins
        return [("chr20", s + k * 100_000, s + k * 100_000 + 10_000) for k in range(10)]

    def epitensor_read_list():  # region by region from the chunk files
        return track.epi.read(ten_regions(next(regions))).values

    def epitensor_lazy_list():
        return track.epi.region(ten_regions(next(regions))).values

    bw = pyBigWig.open(str(bw_path))

    def bigwig_values():  # base-level values, binned like the store
        s = next(regions)
        return bw.values("chr20", s, s + 1_000_000, numpy=True).reshape(-1, 25).mean(axis=1)

    def bigwig_intervals():  # the stored 25 bp entries themselves
        s = next(regions)
        return np.array([v for _, _, v in bw.intervals("chr20", s, s + 1_000_000)], dtype=np.float32)

    def epitensor_select_only():
        s = next(regions)
        return track.epi.region(("chr20", s, s + 1_000_000))

    # correctness first: all methods return the same 40,000 values for one region
    s0 = starts[0]
    regions = iter([s0] * 4 + (starts * 10))
    ours, lazy, ref1, ref2 = epitensor_read(), epitensor_lazy_values(), bigwig_values(), bigwig_intervals()
    assert ours.shape == (40_000,)
    np.testing.assert_array_equal(ours, lazy)
    np.testing.assert_allclose(ours, ref1, rtol=1e-6)
    np.testing.assert_allclose(ours, ref2, rtol=1e-6)
    regions = iter([s0] * 2 + (starts * 10))
    np.testing.assert_array_equal(epitensor_read_list(), epitensor_lazy_list())

    small = et.create_store(work / "chr20.zarr", ["HepG2"], ["H3K27ac"], genome.subset(["chr20"]), overwrite=True)
    small_track = et.open_dataset(small).signal.sel(biosample="HepG2", assay="H3K27ac")

    def select_small_store():
        s = next(regions)
        return small_track.epi.region(("chr20", s, s + 1_000_000))

    t0 = time.perf_counter()
    et.open_dataset(store)
    open_s = time.perf_counter() - t0
    open_peak = peak_allocation(lambda: et.open_dataset(store).signal.sel(biosample="HepG2", assay="H3K27ac")
                                .epi.region(("chr20", starts[0], starts[0] + 1_000_000)))

    rows = []
    for name, fn in [
        ("epitensor  .epi.read(1 Mb)", epitensor_read),
        ("epitensor  .epi.region(1 Mb).values (dask)", epitensor_lazy_values),
        ("epitensor  .epi.read(ten 10 kb regions)", epitensor_read_list),
        ("epitensor  .epi.region(ten 10 kb).values (dask)", epitensor_lazy_list),
        ("pyBigWig   values() + 25 bp mean", bigwig_values),
        ("pyBigWig   intervals()", bigwig_intervals),
        ("epitensor  select only, genome-wide store", epitensor_select_only),
        ("epitensor  select only, chr20-only store", select_small_store),
    ]:
        fn()  # warm up
        times, _ = timed(fn, args.repeats)
        rows.append((name, statistics.median(times) * 1e3, np.percentile(times, 90) * 1e3))

    best_bw = min(r[1] for r in rows if r[0].startswith("pyBigWig"))
    disk = sum(p.stat().st_size for p in (work / "hg38.zarr").rglob("*") if p.is_file())
    print(f"\n1 Mb region (40,000 bins) of one track, {args.repeats} random regions of chr20, median of each")
    print(f"store: hg38 genome-wide, {genome.n_positions:,} positions x 3 biosamples x 3 assays, "
          f"1 observed track (chr20, chr21); {disk / 1e6:.1f} MB on disk; open_dataset {open_s * 1e3:.0f} ms")
    print(f"open_dataset + select 1 Mb: peak {open_peak / 1e6:.1f} MB allocated (tracemalloc); one int64 per "
          f"position of the genome would be {genome.n_positions * 8 / 1e6:,.0f} MB")
    print(f"bigWig: {bw_path.stat().st_size / 1e6:.1f} MB\n")
    print(f"{'method':<46}{'median ms':>11}{'p90 ms':>9}{'vs best pyBigWig':>18}")
    for name, med, p90 in rows:
        print(f"{name:<46}{med:>11.2f}{p90:>9.2f}{med / best_bw:>17.2f}x")
    print("\n(ratio < 1 means faster than the fastest pyBigWig method; values checked equal before timing)")


if __name__ == "__main__":
    main()
