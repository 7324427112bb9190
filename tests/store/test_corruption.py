"""Damaged chunk files are never read as values: every read raises CorruptChunkError, and
``epitensor check`` lists every damaged track (issue 12, defect 3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import epitensor as et
from epitensor.model.positions import GenomeRows
from epitensor.store import write_genome_factors

GENOME = et.Genome("t", ["c1", "c2"], [350 * 25, 250 * 25], chunk_bins=100)  # padding after c1, several chunks per contig
KINDS = ("truncate", "flip", "empty", "delete")
READS = 200  # per damaged store and read path that reads chunk files in this process
SLOW_READS = 20  # dask computations and store opens (~50 ms each on 2 shared cores)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "s.zarr"
    ds = et.datasets.synthetic(path, n_biosamples=3, n_assays=2, genome=GENOME, seed=0, missing=0.4)
    positions = np.arange(GENOME.n_positions)
    rows = GenomeRows(positions)
    tables = [np.ones((n, 2), dtype=np.float32) for n in (rows.positions.size, rows.coarse["250bp"].size, rows.coarse["5kbp"].size)]
    write_genome_factors(path, rows, tables)
    obs = ds.observed.values
    signal_track = tuple(int(i) for i in np.argwhere(obs)[0])
    held_track = tuple(int(i) for i in np.argwhere(~obs)[0])
    return path, signal_track, held_track


def damage(file: Path, kind: str) -> None:
    data = file.read_bytes()
    if kind == "truncate":
        file.write_bytes(data[: len(data) // 2])
    elif kind == "flip":
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x10
        file.write_bytes(bytes(flipped))
    elif kind == "empty":
        file.write_bytes(b"")
    else:
        file.unlink()


def damaged_stores(clean, tmp_path):
    """One copy of the store per (chunk file, kind of damage): (name, path, key, track).

    Not deleted: a genome-factor chunk (NaN factors mean "not fitted", which the model's readers
    check against the stage-2 markers; a plain read cannot tell) and the observed chunk (zarr
    stores an all-False chunk as no file).
    """
    path, (sb, sa), (hb, ha) = clean
    targets = {"signal": (f"signal/c/{sb}/{sa}/1", (sb, sa)), "held_out": (f"held_out/c/{hb}/{ha}/1", (hb, ha)),
               "observed": ("observed/c/0/0", (sb, sa)), "biosample": ("biosample/c/0", (sb, sa)),
               "genome_factors_25bp": ("genome_factors_25bp/c/1/0", (sb, sa))}
    out = []
    for variable, (key, track) in targets.items():
        assert (path / key).is_file(), key
        for kind in KINDS if variable not in ("genome_factors_25bp", "observed") else KINDS[:3]:
            copy = tmp_path / f"{variable}-{kind}.zarr"
            shutil.copytree(path, copy)
            damage(copy / key, kind)
            out.append((variable, kind, str(copy), key, track))
    return out


READER = r"""
import json, sys
import numpy as np
import epitensor as et

def outcome_of(fn, n):
    outcome = {}
    for _ in range(n):
        try:
            fn()
            name = "values returned"
        except et.CorruptChunkError as err:
            name = "CorruptChunkError" if store in str(err) else "CorruptChunkError without the store"
        except et.EpitensorError as err:
            name = type(err).__name__
        except Exception as err:
            name = f"raw {type(err).__name__}: {err}"
        outcome[name] = outcome.get(name, 0) + 1
    return outcome

results = []
n, slow = int(sys.argv[2]), int(sys.argv[3])
for store, variable, track in json.loads(sys.argv[1]):
    try:
        ds = et.open_dataset(store)
    except et.EpitensorError:  # damaged labels or observed: every open must fail
        results.append([store, "open_dataset", outcome_of(lambda: et.open_dataset(store), slow)])
        continue
    b, a = str(ds.biosample.values[track[0]]), str(ds.assay.values[track[1]])
    var = variable if variable in ("signal", "held_out") else "signal"
    model = et.Avocado(ds, preset="paper", device="cpu")
    if variable == "genome_factors_25bp":
        reads = {"values": lambda: ds.genome_factors_25bp.values}
    else:
        reads = {"epi.read": lambda: ds[var].sel(biosample=b, assay=a).epi.read("c1:0-8,750"),
                 "values": lambda: ds[var].isel(biosample=track[0], assay=track[1]).values,
                 "read_tracks": lambda: model.read_tracks([(b, a)], np.arange(350), variable=var)}
    for how, fn in reads.items():
        results.append([store, how, outcome_of(fn, n if how != "values" else slow)])
print(json.dumps(results))
"""


def run_reads(cases):
    arg = json.dumps([[store, variable, list(track)] for variable, kind, store, key, track in cases])
    proc = subprocess.run([sys.executable, "-c", READER, arg, str(READS), str(SLOW_READS)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"reader crashed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_read_of_a_damaged_chunk_raises_a_project_error(clean, tmp_path):
    cases = damaged_stores(clean, tmp_path)
    for store, how, outcome in run_reads(cases):
        variable = Path(store).name.split("-")[0]
        # a deleted biosample chunk leaves empty labels, which the schema check refuses
        allowed = {"CorruptChunkError"} | ({"SchemaError"} if store.endswith("biosample-delete.zarr") else set())
        n = SLOW_READS if how in ("values", "open_dataset") else READS
        assert set(outcome) <= allowed and sum(outcome.values()) == n, (variable, store, how, outcome)


def test_the_clean_store_reads_values(clean):
    path, (sb, sa), _ = clean
    ds = et.open_dataset(path)
    values = ds.signal.isel(biosample=sb, assay=sa).epi.read("c1:0-8,750").values
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(values, ds.signal.isel(biosample=sb, assay=sa).values[:350])


def test_check_finds_every_damaged_track_and_exits_non_zero(clean, tmp_path):
    from click.testing import CliRunner

    from epitensor.cli import main

    runner = CliRunner()
    assert et.check_store(clean[0], progress=False).empty
    result = runner.invoke(main, ["check", str(clean[0])])
    assert result.exit_code == 0 and "intact" in result.output
    labels = et.open_dataset(clean[0])
    for variable, kind, store, key, track in damaged_stores(clean, tmp_path):
        report = et.check_store(store, progress=False)
        assert key in report.chunk.tolist(), (variable, kind, report)
        row = report.set_index("chunk").loc[key]
        if variable in ("signal", "held_out"):
            assert (row.biosample, row.assay) == (labels.biosample.values[track[0]], labels.assay.values[track[1]])
        result = runner.invoke(main, ["check", store])
        assert result.exit_code == 1 and key in result.output, (variable, kind, result.output)


def test_old_stores_without_checksums_check_the_blosc_header(clean, tmp_path):
    """A store written before checksums (bytes + Blosc): truncated or emptied chunks never reach Blosc."""
    path, (sb, sa), _ = clean
    old = tmp_path / "old.zarr"
    shutil.copytree(path, old)
    values = zarr.open_array(str(path), path="signal", mode="r")[:]
    root = zarr.open_group(str(old), mode="r+")
    del root["signal"]
    arr = root.create_array("signal", shape=values.shape, chunks=(1, 1, GENOME.chunk_bins), dtype="float32", fill_value=np.nan,
                            dimension_names=("biosample", "assay", "position"),
                            compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"))
    arr[:] = values
    track = et.open_dataset(old).signal.isel(biosample=sb, assay=sa)
    np.testing.assert_array_equal(track.epi.read("c1:0-8,750").values, values[sb, sa, :350])
    cases = []
    for kind in ("truncate", "empty"):
        copy = tmp_path / f"signal-old-{kind}.zarr"
        shutil.copytree(old, copy)
        damage(copy / f"signal/c/{sb}/{sa}/1", kind)
        cases.append(("signal", kind, str(copy), f"signal/c/{sb}/{sa}/1", (sb, sa)))
        assert f"signal/c/{sb}/{sa}/1" in et.check_store(copy, progress=False).chunk.tolist()
    for store, how, outcome in run_reads(cases):
        if how == "epi.read":  # the chunk-file reader checks the header; zarr's path reports through Blosc
            assert outcome == {"CorruptChunkError": READS}, (store, outcome)
        else:
            assert "values returned" not in outcome, (store, how, outcome)
