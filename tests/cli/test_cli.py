"""The command line: --help with examples, one-line errors with non-zero exit, real work."""

import pytest
from click.testing import CliRunner

import epitensor as et
from epitensor.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def test_every_command_has_help_with_an_example(runner):
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"{name} --help shows no example"


def test_info_prints_the_summary(runner, small_ds):
    result = runner.invoke(main, ["info", small_ds.attrs["source"]])
    assert result.exit_code == 0
    assert "biosamples : 6" in result.output and "12 of 24 tracks" in result.output


def test_bad_input_is_one_line_and_non_zero(runner, tmp_path):
    result = runner.invoke(main, ["info", str(tmp_path / "nothing.zarr")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: no epitensor store")
    assert len(result.output.strip().splitlines()) == 1


def test_export_writes_a_bigwig(runner, small_ds, tmp_path):
    import pyBigWig

    track = small_ds.epi.tracks().iloc[0]
    out = tmp_path / "t.bw"
    result = runner.invoke(main, ["export", small_ds.attrs["source"], str(out), "--biosample", track.biosample,
                                  "--assay", track.assay, "--region", "synthetic:0-10kb"])
    assert result.exit_code == 0, result.output
    bw = pyBigWig.open(str(out))
    expected = small_ds.signal.sel(biosample=track.biosample, assay=track.assay)[:400].values
    got = [v for _, _, v in bw.intervals("synthetic", 0, 10_000)]
    assert got == pytest.approx(expected.tolist(), rel=1e-6)


def test_export_unknown_label(runner, small_ds, tmp_path):
    result = runner.invoke(main, ["export", small_ds.attrs["source"], str(tmp_path / "x.bw"), "--biosample", "nope", "--assay", "H3K4me3"])
    assert result.exit_code == 2 and "unknown biosample" in result.output


def test_demo_synthetic_builds_the_store(runner, tmp_path):
    result = runner.invoke(main, ["demo", "--synthetic", "--out", str(tmp_path / "demo"), "--n-bins", "5000"])
    assert result.exit_code == 0, result.output
    ds = et.open_dataset(tmp_path / "demo" / "synthetic.zarr")
    assert ds.signal.sizes["position"] == 5000


def test_importing_the_package_leaves_pytorch_unloaded():
    """Opening stores, ingesting and Dask worker processes should not pay for importing torch."""
    import subprocess
    import sys

    code = "import sys, epitensor as et; assert 'torch' not in sys.modules; et.Avocado; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module", ["epitensor", "epitensor.cli"])
def test_python_dash_m_runs_the_command_line(module, tmp_path):
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0, help_text.stderr
    assert help_text.stdout.startswith("Usage: epitensor ") and "ingest" in help_text.stdout
    bad = subprocess.run([sys.executable, "-m", module, "info", str(tmp_path / "nothing.zarr")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert (bad.stdout + bad.stderr).strip().startswith("error: no epitensor store")


def test_a_default_model_of_a_small_compendium_imputes_in_process_and_names_the_way_around_stage_2(runner, small_ds,
                                                                                                   tmp_path):
    store, model = et.store.store_path(small_ds), tmp_path / "m"
    trained = runner.invoke(main, ["train", str(store), str(model), "--epochs", "1", "--region", "synthetic:0-100,000"])
    assert trained.exit_code == 0, trained.output
    assert "cross-assay stack" in trained.output  # preset auto chose the stack for 24 pairs, and said so
    written = runner.invoke(main, ["impute", str(model), str(store), "--region", "synthetic:0-100,000"])
    assert written.exit_code == 0, written.output
    assert et.open_dataset(store).imputed.sel(position=slice(0, 3_999)).notnull().all()
    missing = runner.invoke(main, ["impute", str(model), str(store), "--missing", "--region", "synthetic:0-100,000"])
    assert missing.exit_code == 0, missing.output  # completes the tensor in this process, the stack included
    refused = runner.invoke(main, ["impute", str(model), str(store), "--missing", "--workers", "1",
                                   "--region", "synthetic:0-100,000"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "epitensor train --preset small" in refused.output and "without Dask options" in refused.output
    both = runner.invoke(main, ["impute", str(model), str(store), "--missing", "--biosamples", "B00"])
    assert both.exit_code == 2 and "leave out --biosamples/--assays" in both.output
