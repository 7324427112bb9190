"""Every command against bad input: exit code 2, an ``error:`` line, no traceback, nothing written.

Also the regressions of issue 12 through the command line on a real store: ``--region`` with
thousands separators and several regions, bad ``--epochs``/``--workers``/``--device``/``--scheduler``
values, an unreachable scheduler, and output files in missing folders, all rejected before any write.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES

import epitensor as et
from epitensor.cli import main

REGION = "synthetic:0-100,000"  # README style: thousands separators inside the region
REFERENCE = FIXTURES / "reference_avocado"  # a reference Avocado model


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "s.zarr"
    et.datasets.synthetic(path, n_biosamples=4, n_assays=3, n_positions=8_000, missing=0.5, seed=5)
    return path


@pytest.fixture(scope="module")
def model_dir(store):
    """A model trained through the CLI on a README-style region (issue 12, defect 1)."""
    path = store.parent / "model"
    result = CliRunner().invoke(main, ["train", str(store), str(path), "--region", REGION, "--epochs", "1",
                                       "--preset", "small", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return path


def _snapshot(*paths: Path) -> dict:
    """Every file under ``paths`` with its size and modification time (what a write would change)."""
    files = {}
    for root in paths:
        for f in sorted(Path(root).rglob("*")) if Path(root).exists() else []:
            stat = f.stat()
            files[str(f)] = (stat.st_size, stat.st_mtime_ns)
    return files


def _assert_usage_error(result, *expected: str):
    output = result.output
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in output.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    for text in expected:
        assert text in errors[0], output


def _commands_with_required_arguments():
    return [name for name, cmd in main.commands.items() if any(p.required for p in cmd.params)]


@pytest.mark.parametrize("name", _commands_with_required_arguments())
def test_every_command_without_its_arguments_is_a_usage_error(name):
    _assert_usage_error(CliRunner().invoke(main, [name]), "Missing")


@pytest.mark.parametrize("name", list(main.commands))
def test_every_command_rejects_an_unknown_option(name):
    _assert_usage_error(CliRunner().invoke(main, [name, "--no-such-option"]), "No such option")


BAD_ARGS = [
    (["train", "{store}", "{new}", "--epochs", "0"], "--epochs"),
    (["train", "{store}", "{new}", "--epochs", "-3"], "--epochs"),
    (["train", "{store}", "{new}", "--device", "tpu"], "'tpu' is not a device"),
    (["train", "{store}", "{new}", "--minutes", "0"], "--minutes"),
    (["train", "{store}", "{new}", "--region", "chr99:1-2", "--epochs", "1"], "chr99"),
    (["train", "{store}", "{new}", "--region", "synthetic:" + "9" * 400, "--epochs", "1"], "too large"),
    (["fit-genome", "{model}", "{store}", "--epochs", "0"], "--epochs"),
    (["fit-genome", "{model}", "{store}", "--epochs", "-1"], "--epochs"),
    (["fit-genome", "{model}", "{store}", "--workers", "-1"], "--workers"),
    (["fit-genome", "{model}", "{store}", "--scheduler", "bogus"], "'bogus' is not a scheduler"),
    (["fit-genome", "{model}", "{store}", "--block-size", "lots"], "block_size"),
    (["fit-genome", "{missing}", "{store}"], "MODEL_DIR"),
    (["impute", "{model}", "{store}", "--workers", "0"], "--workers"),
    (["impute", "{model}", "{store}", "--scheduler", "bogus"], "'bogus' is not a scheduler"),
    (["impute", "{model}", "{store}", "--region", "synthetic:1-2,chr99"], "chr99"),
    (["impute", "{model}", "{missing}"], "no epitensor store"),
    (["ingest", "{manifest}", "{new}", "--workers", "-1"], "--workers"),
    (["ingest", "{manifest}", "{new}", "--scheduler", "bogus"], "'bogus' is not a scheduler"),
    (["ingest", "{missing}", "{new}"], "MANIFEST"),
    (["evaluate", "{store}", "--out", "/nonexistent/dir/x.csv"], "does not exist"),
    (["evaluate", "{missing}"], "no epitensor store"),
    (["export", "{store}", "/nonexistent/dir/x.bw", "--biosample", "B00", "--assay", "H3K4me3"], "does not exist"),
    (["export", "{store}", "{tmp}/x.bw", "--biosample", "B00", "--assay", "H3K4me3", "--region", "synthetic:5-"
      + "1" * 30], "too large"),
    (["info", "{missing}"], "no epitensor store"),
    (["import-model", "{missing}", "{h5}", "{store}", "{new}"], "missing does not exist"),
    (["import-model", "{json}", "{h5}", "{store}", "{new}"], "lacks the biosample(s) ['E017', 'E003', 'E116']"),
    (["import-model", "{json}", "{h5}", "{store}", "{new}", "--device", "tpu"], "'tpu' is not a device"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--device", "tpu"], "'tpu' is not a device"),
    (["demo", "--data", "{missing}"], "--data"),
]


@pytest.mark.parametrize("args, expected", BAD_ARGS, ids=[" ".join(a[:1] + a[3:5])[:40] for a, _ in BAD_ARGS])
def test_bad_arguments_are_one_error_line_and_write_nothing(args, expected, store, model_dir, tmp_path):
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("biosample\tassay\tpath\nB00\tH3K4me3\tnone.bw\n")
    names = dict(store=store, model=model_dir, new=tmp_path / "new", missing=tmp_path / "missing", manifest=manifest,
                 tmp=tmp_path, json=REFERENCE / "tiny.json", h5=REFERENCE / "tiny.h5")
    before = _snapshot(store, model_dir)
    result = CliRunner().invoke(main, [a.format(**names) for a in args])
    _assert_usage_error(result, expected)
    assert _snapshot(store, model_dir) == before, "a rejected command changed the store or the model"
    assert not (tmp_path / "new").exists() and not (tmp_path / "x.bw").exists()


def test_an_unreachable_scheduler_is_a_usage_error_before_any_write(store, model_dir, tmp_path):
    pytest.importorskip("distributed")  # its config defaults must exist before dask.config.set below
    before = _snapshot(store, model_dir)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        for command in (["fit-genome", str(model_dir), str(store), "--epochs", "1"],
                        ["impute", str(model_dir), str(store), "--missing"]):
            result = CliRunner().invoke(main, [*command, "--scheduler", "tcp://127.0.0.1:9"])
            _assert_usage_error(result, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert _snapshot(store, model_dir) == before


def test_a_project_error_in_a_real_process_is_one_line_without_traceback(store, tmp_path):
    code = "from epitensor.cli import main; main()"
    args = ["train", str(store), str(tmp_path / "m"), "--region", "synthetic:0-100,000,chr99"]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: region 'chr99'")
    assert not (tmp_path / "m").exists()


# --- --region through every command that takes it: thousands separators and several regions ---


def test_train_reads_thousands_separators_and_several_regions(store, tmp_path):
    result = CliRunner().invoke(main, ["train", str(store), str(tmp_path / "m"), "--epochs", "1", "--preset", "small",
                                       "--region", "synthetic:1,000-2,000,synthetic:10,000-11,000",
                                       "--region", "synthetic:20kb-21kb"])
    assert result.exit_code == 0, result.output
    model = et.Avocado.load(tmp_path / "m", et.open_dataset(store))
    expected = np.r_[40:80, 400:440, 800:840]
    np.testing.assert_array_equal(model.fitted_positions.positions, expected)


def test_fit_genome_and_impute_take_a_readme_style_region(store, model_dir):
    result = CliRunner().invoke(main, ["fit-genome", str(model_dir), str(store), "--region", REGION,
                                       "--block-size", "50kb", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "2 blocks: 2 fitted" in result.output
    result = CliRunner().invoke(main, ["impute", str(model_dir), str(store), "--biosamples", "B00", "--assays",
                                       "H3K4me3,H3K27ac", "--region", "synthetic:25,000-50,000"])
    assert result.exit_code == 0, result.output
    imputed = et.open_dataset(store).imputed.sel(biosample="B00", assay="H3K4me3").values
    assert np.isfinite(imputed[1000:2000]).all() and np.isnan(imputed[2000:]).all()


def test_export_takes_thousands_separators(store, tmp_path):
    import pyBigWig

    out = tmp_path / "t.bw"
    track = et.open_dataset(store).epi.tracks().iloc[0]
    result = CliRunner().invoke(main, ["export", str(store), str(out), "--biosample", track.biosample, "--assay", track.assay,
                                       "--region", "synthetic:1,000-2,000", "--region", "synthetic:3,000-3,100"])
    assert result.exit_code == 0, result.output
    bw = pyBigWig.open(str(out))
    assert [(s, e) for s, e, _ in bw.intervals("synthetic")][:1] == [(1000, 1025)]
    assert len(bw.intervals("synthetic")) == 44
