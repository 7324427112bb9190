"""Genome scale (stage 2): block planning, fitting and imputing by blocks on Dask, resume, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import REPO

import epitensor as et
from epitensor.exceptions import BlockError
from epitensor.scale import Block, group_blocks, plan_blocks
from epitensor.scale.markers import read_markers

torch.set_num_threads(1)
TINY = dict(n_nodes=16, n_layers=2, batch_size=250)
#: Two contigs, chunks of 1,000 bins (25 kb): c1 holds 3,400 bins, c2 2,200 bins.
GENOME = et.Genome("toy", ["c1", "c2"], [3_400 * 25, 2_200 * 25], chunk_bins=1_000)
STAGE1 = "c1:0-40kb"  # stage 1 trains on the first 1,600 bins of c1
STAGE2 = ["c1:40kb-75kb", "c2"]  # c1:75kb-85kb stays without genome factors
FACTORS = ("genome_factors_25bp", "genome_factors_250bp", "genome_factors_5kbp")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store and a stage-1 model saved beside it: (store path, model dir)."""
    root = tmp_path_factory.mktemp("genome_scale")
    ds = et.datasets.synthetic(root / "base.zarr", n_biosamples=6, n_assays=4, genome=GENOME, missing=0.4, seed=5)
    model = et.Avocado(ds, preset="paper", seed=1, **TINY)
    model.fit(region=STAGE1, epochs=40, progress=False)
    model.save(root / "model")
    return root / "base.zarr", root / "model"


def _copy(trained, tmp_path, name="s.zarr", device="cpu"):
    store, model_dir = trained
    shutil.copytree(store, tmp_path / name)
    return tmp_path / name, et.Avocado.load(model_dir, et.open_dataset(tmp_path / name), device=device)


def _arrays(path, names=(*FACTORS, "imputed")) -> dict:
    root = zarr.open_group(str(path), mode="r")
    return {n: root[n][:] for n in names if n in root}


# ---------------------------------------------------------------------- planning
def test_plan_blocks_grid_and_contig_ends():
    blocks = plan_blocks(["c1:40kb-85kb", "c2"], GENOME, "25kb")
    assert [b.name for b in blocks] == ["1600-2000", "2000-3000", "3000-3400", "4000-5000", "5000-6000", "6000-6200"]
    assert str(blocks[0].region(GENOME)) == "c1:40,000-50,000" and str(blocks[-1].region(GENOME)) == "c2:50,000-55,000"
    # a region inside a 5 kbp row is widened to the row; the same grid whatever region asked
    assert [b.name for b in plan_blocks("c1:41kb-42kb", GENOME, "25kb")] == ["1600-1800"]
    assert plan_blocks(None, GENOME, "50kb")[0] == Block(0, 2000)


def test_sub_chunk_blocks_grouped_per_chunk():
    groups = group_blocks(plan_blocks(None, GENOME, "5kb"), GENOME)
    chunks = [{b.first // 1000 for b in g} | {(b.end - 1) // 1000 for b in g} for g in groups]
    assert all(len(c) == 1 for c in chunks) and len(groups) == 7  # 4 chunks of c1, 3 of c2
    owners = [c.pop() for c in chunks]
    assert len(set(owners)) == len(owners)  # no chunk written by two tasks


@pytest.mark.parametrize("size", ["7kb", "0", "2,500", "1.5kb", "big"])
def test_block_size_must_be_a_multiple_of_5kbp(size):
    with pytest.raises(et.RegionError, match="block_size"):
        plan_blocks("c1", GENOME, size)


# ---------------------------------------------------------------------- stage 2
def test_stage2_fits_blocks_and_model_imputes_there(trained, tmp_path, device):
    path, model = _copy(trained, tmp_path, device=device)
    frozen_before = {k: v.clone() for k, v in model.module.state_dict().items()}
    stage1_pred = model.impute(region=STAGE1).values
    fresh = model.fit_genome(region=STAGE2, block_size="25kb", epochs=0, scheduler="synchronous", progress=False,
                             seed=3, device=device)
    assert (fresh.status == "fitted").all()
    mse_fresh = _observed_mse(model, path)
    report = model.fit_genome(region=STAGE2, block_size="25kb", epochs=30, scheduler="synchronous", progress=False,
                              write_imputed="all", seed=3, device=device, precision="float32")  # compared below
    assert list(report.status) == ["fitted"] * 5 and report.loss.notna().all()
    assert report.n_predictions.sum() == 24 * (3_000 - 1_600 + 2_200)
    # stage 2 learned: the observed tracks are fitted better than with fresh genome factors
    assert _observed_mse(model, path) < 0.7 * mse_fresh
    # factors written exactly over the blocks, NaN elsewhere
    arr = _arrays(path)
    assert np.isfinite(arr["genome_factors_25bp"][1_600:3_000]).all() and np.isfinite(arr["genome_factors_25bp"][4_000:6_200]).all()
    assert np.isnan(arr["genome_factors_25bp"][3_000:4_000]).all()
    assert np.isfinite(arr["genome_factors_5kbp"][8:15]).all() and np.isnan(arr["genome_factors_5kbp"][15:20]).all()
    # the frozen parts did not move, and stage-1 imputations are unchanged
    for k, v in model.module.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], rtol=0, atol=0)
    np.testing.assert_array_equal(model.impute(region=STAGE1).values, stage1_pred)
    # the model now imputes in stage-2 blocks (factors read from the store), equal to the block-wise writes
    imp = model.impute(region="c2:10kb-30kb")
    np.testing.assert_allclose(imp.values.reshape(24, -1), arr["imputed"][:, :, 4_400:5_200].reshape(24, -1),
                               atol=1e-5 if device == "cpu" else 2e-2)  # CUDA: bf16 autocast in both
    across = model.impute("B01", "H3K4me3", region="c1:30kb-50kb")  # stage-1 and stage-2 positions in one call
    assert np.isfinite(across.values).all() and across.sizes["position"] == 800
    g = model.genome_factors("c2:0-10kb")
    np.testing.assert_array_equal(g.sel(factor=g.resolution == "25bp").values, arr["genome_factors_25bp"][4_000:4_400])
    with pytest.raises(et.RegionError, match="no fitted"):
        model.impute(region="c1:70kb-80kb")  # runs past the stage-2 region


def _observed_mse(model, path) -> float:
    ds = et.open_dataset(path)
    errs = []
    for b, a in model.training_tracks[:6]:
        truth = ds.signal.sel(biosample=b, assay=a).epi.region("c2").values
        errs.append(np.mean((model.impute(b, a, region="c2").values[0, 0] - truth) ** 2))
    return float(np.mean(errs))


def test_one_and_two_workers_identical_even_with_a_worker_killed(trained, tmp_path):
    """In-process (one worker, sub-chunk blocks grouped per chunk) vs a 2-process LocalCluster, one of
    whose workers is killed (SIGKILL) part-way: its tasks are redone elsewhere, results are identical."""
    import threading

    from distributed import Client, LocalCluster

    kw = dict(region=STAGE2, block_size="5kb", epochs=12, write_imputed=True, progress=False)
    path1, m1 = _copy(trained, tmp_path, "one.zarr")
    m1.fit_genome(scheduler="synchronous", **kw)
    path2, m2 = _copy(trained, tmp_path, "two.zarr")
    killed = []

    def kill_one_worker(pid):
        while len(read_markers(path2, "factors")) < 2 and time.time() < deadline:
            time.sleep(0.005)
        killed.append(len(read_markers(path2, "factors")))
        os.kill(pid, signal.SIGKILL)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        assert len(pids) == 2
        deadline = time.time() + 60
        killer = threading.Thread(target=kill_one_worker, args=(pids[0],))
        killer.start()
        report = m2.fit_genome(client=client, **kw)
        killer.join()
    assert killed and killed[0] < 18  # the worker died while blocks were still running
    assert (report.status == "fitted").all() and len(report) == 18
    a1, a2 = _arrays(path1), _arrays(path2)
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name], err_msg=name)
    obs = et.open_dataset(path1)["observed"].values
    assert np.isfinite(a1["imputed"][~obs][:, 1_600:3_000]).all() and np.isnan(a1["imputed"][obs]).all()


DRIVER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {repo!r})
    import epitensor as et
    torch.set_num_threads(1)
    model = et.Avocado.load({model!r}, et.open_dataset({store!r}), device="cpu")
    model.fit_genome({store!r}, region={region!r}, block_size="5kb", epochs=40, write_imputed=True,
                     scheduler="synchronous", progress=False)
""")


def test_kill_driver_and_resume_equals_uninterrupted(trained, tmp_path):
    path_a, model_a = _copy(trained, tmp_path, "a.zarr")
    path_b, _ = _copy(trained, tmp_path, "b.zarr")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), model=str(trained[1]), store=str(path_b), region="c2"))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300  # two blocks take seconds on an idle machine, a minute or more on a loaded one
    while time.time() < deadline and proc.poll() is None and len(read_markers(path_b, "factors")) < 2:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(read_markers(path_b, "factors"))
    assert 2 <= n_done < 11  # killed part-way (c2 has 11 blocks of 5 kb)
    chunk = next(f for f in sorted((path_b / "genome_factors_25bp" / "c").rglob("*")) if f.is_file())
    leftover = chunk.parent / f"{chunk.name}.0123456789abcdef.partial"  # as a kill mid-chunk-write leaves
    leftover.write_bytes(b"half a chunk")
    model_b = et.Avocado.load(trained[1], et.open_dataset(path_b), device="cpu")
    resumed = model_b.fit_genome(path_b, region="c2", block_size="5kb", epochs=40, write_imputed=True,
                                 scheduler="synchronous", progress=False)
    assert (resumed.status == "finished before").sum() >= n_done - 1  # a block whose imputations were cut is redone
    assert (resumed.status == "fitted").sum() == 11 - n_done
    model_a.fit_genome(path_a, region="c2", block_size="5kb", epochs=40, write_imputed=True, scheduler="synchronous",
                       progress=False)
    assert not leftover.exists() and not list(path_b.rglob("*.partial"))
    a, b = _arrays(path_a), _arrays(path_b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---------------------------------------------------------------------- imputation by blocks
def test_impute_genome_unobserved_pairs_with_estimate(trained, tmp_path):
    path, model = _copy(trained, tmp_path)
    model.fit_genome(region="c2", block_size="25kb", epochs=2, scheduler="synchronous", progress=False)
    obs = et.open_dataset(path)["observed"].values
    plan = model.impute_genome(pairs="unobserved", region="c2", dry_run=True, progress=False)
    assert int(plan.predictions[0]) == int((~obs).sum()) * 2_200
    assert "imputed" not in zarr.open_group(str(path))  # a dry run writes nothing
    report = model.impute_genome(pairs="unobserved", block_size="25kb", scheduler="threads", progress=False,
                                 precision="float32")  # later writes keep the variable's precision
    assert (report.status == "imputed").all() and report.n_predictions.sum() == (~obs).sum() * 2_200
    imputed = _arrays(path, ["imputed"])["imputed"]
    assert np.isfinite(imputed[~obs][:, 4_000:6_200]).all() and np.isnan(imputed[obs]).all()
    assert np.isnan(imputed[:, :, :4_000]).all()
    again = model.impute_genome(pairs="unobserved", block_size="25kb", scheduler="threads", progress=False)
    assert (again.status == "finished before").all()
    # impute_to_store over a stage-2 region goes by blocks, and over the stage-1 region as before
    b, a = model.biosamples[0], model.assays[0]
    model.impute_to_store(biosamples=[b], assays=[a], region="c1:0-40kb", progress=False)
    model.impute_to_store(biosamples=[b], assays=[a], region="c2:0-25kb", progress=False)
    stored = _arrays(path, ["imputed"])["imputed"][0, 0]
    np.testing.assert_allclose(stored[:1_600], model.impute(b, a, region="c1:0-40kb").values[0, 0], atol=1e-6)
    np.testing.assert_allclose(stored[4_000:5_000], model.impute(b, a, region="c2:0-25kb").values[0, 0], atol=1e-6)
    # a model loaded later finds its stage-2 factors in the store (matched by the frozen weights' fingerprint)
    loaded = et.Avocado.load(trained[1], et.open_dataset(path), device="cpu")
    np.testing.assert_array_equal(loaded.impute(region="c2:0-25kb").values, model.impute(region="c2:0-25kb").values)


# ---------------------------------------------------------------------- errors
def test_errors(trained, tmp_path):
    path, model = _copy(trained, tmp_path)
    other = et.datasets.synthetic(tmp_path / "other.zarr", n_biosamples=3, n_assays=2, genome=GENOME, seed=1)
    with pytest.raises(et.ModelError, match="lacks the model's biosample"):
        model.fit_genome(other.attrs["source"], region="c2", progress=False)
    with pytest.raises(et.RegionError, match="multiple of 5 kbp"):
        model.fit_genome(region="c2", block_size="12kb", progress=False)
    with pytest.raises(et.RegionError, match="runs past the end of c2"):
        model.fit_genome(region="c2:0-60kb", progress=False)
    with pytest.raises(et.RegionError, match="not in genome"):
        model.fit_genome(region="chr1", progress=False)
    with pytest.raises(et.ModelError, match="not fitted"):
        et.Avocado(et.open_dataset(path), preset="paper", **TINY).fit_genome(region="c2", progress=False)
    with pytest.raises(et.RegionError, match="no genome factors"):
        model.impute_genome(region="c2", progress=False)


def _store_files(path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("call, arguments, message", [
    ("fit_genome", dict(epochs=-1), "epochs"),
    ("fit_genome", dict(epochs=2.5), "epochs"),
    ("fit_genome", dict(seed=-3), "seed"),
    ("fit_genome", dict(block_size="7kb"), "block_size"),
    ("fit_genome", dict(torch_threads=0), "torch_threads"),
    ("fit_genome", dict(workers=0), "workers"),
    ("fit_genome", dict(scheduler="bogus"), "unknown scheduler 'bogus'"),
    ("fit_genome", dict(device="tpu"), "unknown device 'tpu'"),
    ("fit_genome", dict(resources="GPU"), "resources"),
    ("fit_genome", dict(write_imputed="some"), "pairs must be"),
    ("impute_genome", dict(block_size="0"), "block_size"),
    ("impute_genome", dict(torch_threads=-1), "torch_threads"),
    ("impute_genome", dict(pairs="bogus"), "pairs must be"),
    ("impute_to_store", dict(block_size="1.5kb"), "block_size"),
    ("impute_to_store", dict(workers=-2), "workers"),
])
def test_bad_arguments_are_rejected_before_any_write(trained, tmp_path, call, arguments, message):
    path, model = _copy(trained, tmp_path)
    before = _store_files(path)
    with pytest.raises((et.ModelError, et.RegionError), match=message):
        getattr(model, call)(region="c2", progress=False, **arguments)
    assert _store_files(path) == before


def test_block_imputation_needs_the_training_tracks_it_averages(trained, tmp_path):
    """With baseline_weight, block-wise imputation reads the training tracks: a store lacking them is an error
    naming them, not NaN imputations."""
    root = tmp_path / "r.zarr"
    ds = et.datasets.synthetic(root, n_biosamples=5, n_assays=3, genome=GENOME, missing=0.3, seed=2)
    model = et.Avocado(ds, preset="paper", seed=0, baseline_weight=0.5, **TINY)
    model.fit(region=STAGE1, epochs=1, progress=False)
    b, a = model.training_tracks[0]
    group = zarr.open_group(str(root), mode="r+")
    observed = group["observed"][:]
    observed[list(ds.biosample.values).index(b), list(ds.assay.values).index(a)] = False
    group["observed"][:] = observed  # as if the track were not in this store
    before = _store_files(root)
    with pytest.raises(et.ModelError, match=rf"training track\(s\) \[\('{b}', '{a}'\)\]"):
        model.impute_genome(pairs=[(b, a)], region=STAGE1, block_size="5kb", scheduler="synchronous", progress=False)
    with pytest.raises(et.ModelError, match="training track"):
        model.fit_genome(region="c2", epochs=1, scheduler="synchronous", progress=False)
    assert _store_files(root) == before

def test_failed_block_is_reported_and_finished_blocks_stay(trained, tmp_path):
    path, model = _copy(trained, tmp_path)
    b, a = model.training_tracks[0]
    ds = et.open_dataset(path)
    bi, ai = list(ds.biosample.values).index(b), list(ds.assay.values).index(a)
    signal = zarr.open_group(str(path), mode="r+")["signal"]
    good = signal[bi, ai, 5_000:5_010]
    signal[bi, ai, 5_000:5_010] = np.inf  # corrupt the block c2:25kb-50kb
    with pytest.raises(BlockError, match=r"1 of 3 block\(s\) failed \(c2:25,000-50,000: DataError") as err:
        model.fit_genome(region="c2", block_size="25kb", epochs=2, scheduler="threads", progress=False)
    report = err.value.report
    assert list(report.status) == ["fitted", "failed", "fitted"]
    assert sorted(m.name for m in read_markers(path, "factors")) == ["4000-5000", "6000-6200"]
    before = _arrays(path, FACTORS)
    signal[bi, ai, 5_000:5_010] = good  # fix the data and run again: only the failed block runs
    again = model.fit_genome(region="c2", block_size="25kb", epochs=2, scheduler="threads", progress=False)
    assert list(again.status) == ["finished before", "fitted", "finished before"]
    after = _arrays(path, FACTORS)
    np.testing.assert_array_equal(after["genome_factors_25bp"][4_000:5_000], before["genome_factors_25bp"][4_000:5_000])
    assert np.isfinite(after["genome_factors_25bp"][5_000:6_000]).all()


def test_changed_settings_refit_and_replace_markers(trained, tmp_path):
    path, model = _copy(trained, tmp_path)
    model.fit_genome(region="c2", block_size="25kb", epochs=1, scheduler="synchronous", progress=False)
    first = _arrays(path, FACTORS)["genome_factors_25bp"][4_000:6_200]
    report = model.fit_genome(region="c2", block_size="50kb", epochs=2, scheduler="synchronous", progress=False)
    assert list(report.status) == ["fitted", "fitted"]
    assert sorted(m.name for m in read_markers(path, "factors")) == ["4000-6000", "6000-6200"]
    assert not np.array_equal(first, _arrays(path, FACTORS)["genome_factors_25bp"][4_000:6_200])
    meta = json.loads((path / "genome_fit" / "factors" / "4000-6000" / "zarr.json").read_text())["attributes"]
    assert meta["epochs"] == 2 and meta["model"]


@pytest.mark.parametrize("options", [dict(residual=True), dict(baseline_weight=0.5)])
def test_block_imputations_match_predict_with_average_activity(tmp_path, options):
    ds = et.datasets.synthetic(tmp_path / "r.zarr", n_biosamples=5, n_assays=3, genome=GENOME, missing=0.3, seed=2)
    model = et.Avocado(ds, preset="paper", seed=0, **TINY, **options)
    model.fit(region=STAGE1, epochs=2, progress=False)
    model.fit_genome(region="c2", block_size="25kb", epochs=2, write_imputed="all", scheduler="synchronous", progress=False,
                     precision="float32")
    imputed = _arrays(tmp_path / "r.zarr", ["imputed"])["imputed"][:, :, 4_000:6_200]
    np.testing.assert_allclose(model.impute(region="c2").values, imputed, atol=1e-5)
