"""kill -9 at each write point of model save, fit_genome and impute_to_store; then rerun and compare.

A driver process imports epitensor once, then forks one child per kill point. Each child patches the
file-system calls every writer goes through (``os.replace``/``rename``/``unlink``/``remove``/``rmdir``/
``fsync``: zarr's local store, the project's chunk writer and the model saver all rename temporary files
into place) to SIGKILL itself on the N-th call, and runs the job on its own copy of the data. Another
child runs the job uninterrupted: the reference. The test then checks what a kill leaves and that the
rerun gives the reference's bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_genome_scale import GENOME, REPO, STAGE1, TINY

import epitensor as et
from epitensor.scale.markers import read_markers

DRIVER = textwrap.dedent("""
    import json, os, shutil, signal, sys, threading
    sys.path.insert(0, {repo!r})
    import torch
    torch.set_num_threads(1)
    import dask.array, distributed, tqdm.auto  # imported once here, not in every child
    import xarray.namedarray.parallelcompat
    import epitensor as et
    import epitensor.scale.stage2
    xarray.namedarray.parallelcompat.list_chunkmanagers()
    assert threading.active_count() == 1  # forking is safe: no thread holds a lock

    OPS = ("replace", "rename", "unlink", "remove", "rmdir", "fsync")

    def arm(kill_at):
        count, lock = [0], threading.Lock()
        for name in OPS:
            def hooked(*args, _real=getattr(os, name), **kwargs):
                with lock:
                    count[0] += 1
                    if count[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return _real(*args, **kwargs)
            setattr(os, name, hooked)
        return count

    def job(spec, work):
        store = os.path.join(work, "s.zarr")
        source = spec["source"] if spec["job"] == "save" else os.path.join(work, "model")
        model = et.Avocado.load(source, et.open_dataset(store), device="cpu")
        if spec["job"] == "save":
            model.save(os.path.join(work, "model"))
        elif spec["job"] == "fit_genome":
            model.fit_genome(store, **spec["kwargs"], scheduler="synchronous", progress=False)
        else:
            model.impute_to_store(store, **spec["kwargs"], progress=False)

    def run(spec, work, kill_at):
        shutil.copytree(spec["pristine"], work)
        pid = os.fork()
        if pid == 0:
            count = arm(kill_at)
            try:
                job(spec, work)
            except BaseException as err:
                print(work, repr(err), file=sys.stderr, flush=True)
                os._exit(1)
            with open(os.path.join(work, "ops"), "w") as f:
                f.write(str(count[0]))
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else os.waitstatus_to_exitcode(status)

    results = {{}}
    for spec in json.loads(sys.argv[1]):
        root = spec["root"]
        assert run(spec, os.path.join(root, "ref"), 0) == 0
        n_ops = int(open(os.path.join(root, "ref", "ops")).read())
        points = sorted(set(range(1, n_ops + 1)) if n_ops <= spec["max_points"] else
                        set(range(1, 6)) | {{int(x) for x in __import__("numpy").linspace(6, n_ops, spec["max_points"] - 5)}})
        outcomes = {{n: run(spec, os.path.join(root, f"kill-{{n}}"), n) for n in points}}
        results[spec["job"]] = {{"ops": n_ops, "outcomes": outcomes}}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A pristine folder with a small store (s.zarr) and a stage-1 model (model/), and a second model."""
    root = tmp_path_factory.mktemp("fault")
    pristine = root / "pristine"
    ds = et.datasets.synthetic(pristine / "s.zarr", n_biosamples=4, n_assays=3, genome=GENOME, missing=0.3, seed=2)
    model = et.Avocado(ds, preset="paper", seed=1, **TINY)
    model.fit(region=STAGE1, epochs=2, progress=False)
    model.save(pristine / "model")
    model.fit(region="c1:0-30kb", epochs=1, progress=False)  # other genome rows and history: another model
    model.save(root / "new_model")
    return pristine, root / "new_model"


#: Each job, its arguments and how many kill points to try (all of them when there are fewer write operations).
JOBS = {
    "save": dict(max_points=20),
    "fit_genome": dict(max_points=10, kwargs=dict(region="c2:0-10kb", block_size="5kb", epochs=1, write_imputed=True)),
    "impute_to_store": dict(max_points=10, kwargs=dict(biosamples=["B00"], region="c1:20kb-30kb")),  # two chunks
}


@pytest.fixture(scope="module")
def injected(stage1, tmp_path_factory) -> dict:
    """Run every job in one driver: for each, the uninterrupted reference in ``ref/``, each kill point in
    ``kill-N/``; returns {job: (folder, {"ops": number of write operations, "outcomes": {N: "killed"}})}."""
    pristine, new_source = stage1
    (pristine / "model" / "notes.txt").write_text("the user's own file")  # a save must leave it alone
    root = tmp_path_factory.mktemp("inject")
    specs = [dict(job=job, pristine=str(pristine), root=str(root / job), source=str(new_source),
                  kwargs=options.get("kwargs", {}), max_points=options["max_points"]) for job, options in JOBS.items()]
    script = root / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO)))
    done = subprocess.run([sys.executable, str(script), json.dumps(specs)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    for job, result in results.items():
        assert set(result["outcomes"].values()) == {"killed"}, (job, result)  # every point was reached
        print(job, result["ops"], "write operations; killed before operation", list(result["outcomes"]))
    return {job: (root / job, result) for job, result in results.items()}


def _files(path: Path, skip=("genome_fit",)) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes), except completion markers (they hold timings)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.relative_to(path).parts[0] not in skip}


def _state(model) -> dict:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def _same_model(model, expected) -> bool:
    a, b = _state(model), _state(expected)
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a) \
        and model.history.equals(expected.history)


def test_kill_during_save_leaves_old_or_new_model_and_next_save_sweeps(stage1, injected):
    pristine, new_source = stage1
    tmp_path, result = injected["save"]
    ds = et.open_dataset(pristine / "s.zarr")
    old, new = (et.Avocado.load(p, ds, device="cpu") for p in (pristine / "model", new_source))
    assert not _same_model(old, new)
    seen = []
    for n in result["outcomes"]:
        folder = tmp_path / f"kill-{n}"
        loaded = et.Avocado.load(folder / "model", et.open_dataset(folder / "s.zarr"), device="cpu")
        seen.append("old" if _same_model(loaded, old) else "new" if _same_model(loaded, new) else "neither")
        assert (folder / "model" / "notes.txt").read_text() == "the user's own file"
        new.save(folder / "model")  # the next save removes what the killed one left
        assert _files(folder / "model") == _files(tmp_path / "ref" / "model"), n
    assert "neither" not in seen and seen[0] == "old" and seen[-1] == "new", seen
    assert seen == sorted(seen, key=["old", "new"].index), seen  # one switch: old until it, new after
    assert sorted(p.name for p in (tmp_path / "ref" / "model").iterdir())[:2] == ["config.json", "notes.txt"]


def _assert_same_store(a: Path, b: Path) -> None:
    """Same files with the same bytes, and the same completion markers (by run key)."""
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], name
    for kind in ("factors", "imputed"):
        keys = [{m.name: attrs["key"] for m, attrs in read_markers(p, kind).items()} for p in (a, b)]
        assert keys[0] == keys[1], kind


def test_kill_during_fit_genome_and_rerun_is_byte_identical(injected):
    tmp_path, result = injected["fit_genome"]
    kwargs = JOBS["fit_genome"]["kwargs"]
    for n in result["outcomes"]:
        folder = tmp_path / f"kill-{n}"
        model = et.Avocado.load(folder / "model", et.open_dataset(folder / "s.zarr"), device="cpu")
        model.fit_genome(folder / "s.zarr", **kwargs, scheduler="synchronous", progress=False)
        _assert_same_store(folder / "s.zarr", tmp_path / "ref" / "s.zarr")


def test_kill_during_impute_to_store_and_rerun_is_byte_identical(injected):
    tmp_path, result = injected["impute_to_store"]
    kwargs = JOBS["impute_to_store"]["kwargs"]
    reference = tmp_path / "ref" / "s.zarr"
    imputed = et.open_dataset(reference)["imputed"].sel(biosample=["B00"]).epi.region("c1:20kb-30kb").values
    assert np.isfinite(imputed).all()
    for n in result["outcomes"]:
        folder = tmp_path / f"kill-{n}"
        model = et.Avocado.load(folder / "model", et.open_dataset(folder / "s.zarr"), device="cpu")
        model.impute_to_store(folder / "s.zarr", **kwargs, progress=False)
        _assert_same_store(folder / "s.zarr", reference)

