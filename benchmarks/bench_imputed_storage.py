"""Bytes and error of each storage precision of ``imputed``, on the Roadmap demo's imputations.

Builds the demo store (the 25 Roadmap pilot tracks, the five Latin-square tracks hidden), trains a
small Avocado for a minute or two, imputes all 25 tracks (the completed 5 x 5 tensor) as float32,
then writes those imputations into a fresh ``imputed`` at each precision with the direct chunk
writer that genome-scale imputation uses (:class:`epitensor.store.chunk_files.ChunkFiles`, which rounds to
the variable's precision) and reads them back. Per precision:

- bytes per track: the chunk files on disk (Blosc + CRC-32C included), and the ratio to float32;
- max / mean absolute error against the float32 imputations, on the stored (arcsinh) scale and
  after the inverse transform (``sinh``);
- the model's own error for scale: RMSE of the five hidden tracks against their truth, and how
  much each precision changes their MSE;
- write and read throughput (values per second, from the calling thread; rounding included);
- the projected size of the completed ENCODE2018-Core on hg38 (400 biosamples x 84 assays,
  3.1e9 / 25 bins per track), bytes per bin of this run scaled linearly.

``float16 (not offered)`` is a float16 zarr array (Blosc zstd, bit shuffle) written through
zarr-python for comparison only.

Run:  nice -n 10 python benchmarks/bench_imputed_storage.py [--data ../shared/data]
      [--n-bins 200000] [--epochs 8] [--minutes 2] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from common import REPO, shared_data  # (and the source tree on sys.path)
from zarr.codecs import BloscCodec

import epitensor as et
from epitensor.demo import build_sample_store
from epitensor.store import ChunkFiles, add_track_variable
from epitensor.store.precision import DEFAULT_IMPUTED_PRECISION

PRECISIONS = ["float32", "bitround-12", "bitround-9", "bitround-7", "quantize-3", "quantize-2", "quantize-1"]
ENCODE_TRACKS = 400 * 84
HG38_BINS = 3.1e9 / 25


def chunk_bytes(store: Path, variable: str = "imputed") -> int:
    return sum(f.stat().st_size for f in (store / variable / "c").rglob("*") if f.is_file())


def train_and_impute(workdir: Path, data, n_bins: int, epochs: int, minutes: float):
    """The demo store, a small model trained on its 20 visible tracks, and its float32 imputations."""
    ds = build_sample_store(workdir, data=data, n_bins=n_bins)
    model = et.Avocado(ds, preset="small", seed=0)
    t0 = time.perf_counter()
    model.fit(epochs=epochs, time_limit=minutes * 60, progress=False)
    print(f"trained {model!r} in {time.perf_counter() - t0:.0f} s")
    pred = model.impute()  # every (biosample, assay): the completed tensor, float32
    return ds, pred


def write_at(store: Path, precision: str, values: np.ndarray):
    """Write ``values`` (biosample, assay, position) into ``imputed`` at ``precision``; seconds."""
    add_track_variable(store, "imputed", precision=precision)
    files = ChunkFiles.open(store, "imputed")
    n = values.shape[2]
    t0 = time.perf_counter()
    for b in range(values.shape[0]):
        for a in range(values.shape[1]):
            for k in range(-(-n // files.chunk)):
                files.write(b, a, k, values[b, a, k * files.chunk : (k + 1) * files.chunk])
    return files, time.perf_counter() - t0


def read_back(files: ChunkFiles, shape) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = np.stack([np.stack([files.read(b, a, 0, shape[2]) for a in range(shape[1])]) for b in range(shape[0])])
    return out, time.perf_counter() - t0


def float16_reference(store: Path, values: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    arr = zarr.create_array(str(store), name="imputed16", shape=values.shape, chunks=(1, 1, 40_000), dtype="float16",
                            fill_value=np.nan, compressors=(BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),))
    t0 = time.perf_counter()
    arr[:] = values.astype(np.float16)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = arr[:].astype(np.float32)
    return back, chunk_bytes(store, "imputed16"), write_s, time.perf_counter() - t0


def errors(stored, exact, transform: str) -> dict:
    d = np.abs(stored.astype(np.float64) - exact)
    out = {"max_abs_err": d.max(), "mean_abs_err": d.mean()}
    if transform == "arcsinh":
        s = np.abs(np.sinh(stored.astype(np.float64)) - np.sinh(exact.astype(np.float64)))
        out.update(max_abs_err_signal=s.max(), mean_abs_err_signal=s.mean())
    return out


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = shared_data() or REPO.parent / "shared" / "data"
    parser.add_argument("--data", default=str(default_data), help="folder of the Roadmap pilot .npz files (or the "
                        "data folder holding roadmap_pilot/)")
    parser.add_argument("--n-bins", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--csv", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_imputed_"))
    ds, pred = train_and_impute(workdir, args.data, args.n_bins, args.epochs, args.minutes)
    exact = np.ascontiguousarray(pred.transpose("biosample", "assay", "position").values, dtype=np.float32)
    transform = ds.attrs.get("transform", "arcsinh")
    biosamples, assays = list(pred.biosample.values), list(pred.assay.values)
    genome = et.Genome.from_attrs(ds.attrs)

    hidden = ds.epi.tracks("missing")[["biosample", "assay"]].itertuples(index=False, name=None)
    hidden = [(biosamples.index(b), assays.index(a), b, a) for b, a in hidden]
    truth = np.stack([ds.held_out.sel(biosample=b, assay=a).values for _, _, b, a in hidden]).astype(np.float64)
    model_mse = float(np.mean([(exact[i, j] - t) ** 2 for (i, j, _, _), t in zip(hidden, truth)]))
    print(f"{exact.shape[0]} x {exact.shape[1]} tracks of {exact.shape[2]:,} bins; the model's own error on the "
          f"{len(hidden)} hidden tracks: RMSE {model_mse ** 0.5:.4f}, MSE {model_mse:.5f} ({transform} scale)")

    rows = []
    n_values = exact.size
    for precision in PRECISIONS:
        store = et.create_store(workdir / f"{precision}.zarr", biosamples, assays, genome, transform=transform)
        files, write_s = write_at(store, precision, exact)
        stored, read_s = read_back(files, exact.shape)
        rows.append({"precision": precision, "bytes": chunk_bytes(store), "write_s": write_s, "read_s": read_s,
                     "stored": stored})
    ref = et.create_store(workdir / "float16.zarr", biosamples, assays, genome, transform=transform)
    back, nbytes, write_s, read_s = float16_reference(ref, exact)
    rows.append({"precision": "float16 (not offered)", "bytes": nbytes, "write_s": write_s, "read_s": read_s, "stored": back})

    f32 = rows[0]["bytes"]
    table = []
    for r in rows:
        stored = r.pop("stored")
        mse = float(np.mean([(stored[i, j] - t) ** 2 for (i, j, _, _), t in zip(hidden, truth)]))
        per_track = r["bytes"] / (exact.shape[0] * exact.shape[1])
        table.append({
            "precision": r["precision"] + (" (default)" if r["precision"] == DEFAULT_IMPUTED_PRECISION else ""),
            "MB_per_track": per_track / 1e6,
            "vs_float32": r["bytes"] / f32,
            **errors(stored, exact, transform),
            "hidden_mse_change": (mse - model_mse) / model_mse,
            "write_Mvalues_s": n_values / r["write_s"] / 1e6,
            "read_Mvalues_s": n_values / r["read_s"] / 1e6,
            "ENCODE2018_hg38_TB": per_track / exact.shape[2] * HG38_BINS * ENCODE_TRACKS / 1e12,
        })
    out = pd.DataFrame(table).set_index("precision")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(out.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\nENCODE2018-Core projection: {ENCODE_TRACKS:,} tracks x {HG38_BINS:,.0f} bins, this run's bytes per bin "
          f"scaled linearly (raw float32 would be {4 * HG38_BINS * ENCODE_TRACKS / 1e12:.1f} TB)")
    if args.csv:
        out.to_csv(args.csv)
    return out


if __name__ == "__main__":
    main()
