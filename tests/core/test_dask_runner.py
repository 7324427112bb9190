"""The Dask runner on dask's local schedulers and on a real distributed.LocalCluster."""

from __future__ import annotations

import ast
import threading
import time

import dask
import pytest

from epitensor import dask_runner
from epitensor.dask_runner import Run, connect
from epitensor.exceptions import SchedulerError


class Bar:
    """Records what a run moved its progress bar by."""

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def update(self, k):
        with self.lock:
            self.n += k


def square(x):
    return x * x


def scaled(factor, x):
    return factor * x


def boom(x):
    if x == 3:
        raise RuntimeError(f"task {x} failed")
    return x


def records(blocks):
    """A stage-2-like task: one record per block (a None block kills the task)."""
    if None in blocks:
        raise MemoryError("worker out of memory")
    return [{"block": b, "status": "done"} for b in blocks]


# ---------------------------------------------------------------------- local schedulers
@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_compute_counts_the_tasks_it_is_told_to(scheduler):
    chunks = [dask.delayed(square, pure=False)(i, dask_key_name=f"chunk-{i}") for i in range(6)]
    totals = [dask.delayed(sum, pure=False)(chunks[:3], dask_key_name="record-0"),
              dask.delayed(sum, pure=False)(chunks[3:], dask_key_name="record-1")]
    bar = Bar()
    with connect(scheduler=scheduler, workers=2, local_workers=True) as run:
        assert run.client is None and run.scheduler == scheduler and run.workers == 2
        got = run.compute(totals, progress=bar, count=lambda key, _: key.startswith("chunk"))
    assert got == [0 + 1 + 4, 9 + 16 + 25]
    assert bar.n == 6  # the chunk tasks only, each once


def test_map_passes_broadcast_first_and_counts_results():
    bar = Bar()
    with connect(scheduler="threads", workers=2, local_workers=True) as run:
        got = run.map(records, [(["b0", "b1"],), (["b2"],)], progress=bar, count=lambda _, r: len(r))
        assert run.map(scaled, [(1,), (2,), (3,)], broadcast=10) == [10, 20, 30]
    assert [r["block"] for group in got for r in group] == ["b0", "b1", "b2"]
    assert bar.n == 3


def test_a_failing_local_task_is_raised_after_the_running_ones_end():
    finished = []

    def slow(x):
        time.sleep(0.3)
        finished.append(x)
        return x

    tasks = [dask.delayed(slow, pure=False)(0), dask.delayed(boom, pure=False)(3)]
    with connect(scheduler="threads", workers=2, local_workers=True) as run:
        with pytest.raises(RuntimeError, match="task 3 failed"):
            run.compute(tasks)
    assert finished == [0]  # the run's own pool waited for the slow task before raising


def test_a_failing_local_map_task_is_raised_even_with_a_failed_handler():
    with connect(scheduler="sync") as run, pytest.raises(RuntimeError, match="task 3 failed"):
        run.map(boom, [(1,), (3,)], failed=lambda a, err: "failed")


def test_without_a_client_or_scheduler_the_local_threads_run():
    with connect() as run:
        assert run.client is None and run.scheduler == "threads" and run.workers is None
        assert run.map(square, [(2,), (3,)]) == [4, 9]


def test_distributed_without_a_client_is_a_clear_error():
    with pytest.raises(SchedulerError, match="needs an active distributed Client"):
        with connect(scheduler="distributed"):
            pass


def test_an_unreachable_address_is_a_scheduler_error():
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
            with connect(scheduler="tcp://127.0.0.1:9"):
                pass


def test_the_runner_imports_neither_torch_nor_zarr():
    tree = ast.parse(open(dask_runner.__file__).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"torch", "zarr"}


# ---------------------------------------------------------------------- a real LocalCluster
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                                  resources={"GPU": 1}) as cluster, distributed.Client(cluster) as c:
        yield c


def gpu_left(x):
    """The worker's free GPU resource while this task runs (0 when the task claimed it)."""
    from distributed import get_worker

    return get_worker().state.available_resources["GPU"]


def test_map_on_a_cluster_scatters_broadcast_and_claims_resources(client):
    bar = Bar()
    with connect(client) as run:
        assert run.client is client and run.scheduler is None
        assert run.map(scaled, [(1,), (2,), (3,)], broadcast=10, progress=bar) == [10, 20, 30]
        assert run.map(gpu_left, [(0,), (1,)], resources={"GPU": 1}) == [0, 0]
        assert run.map(gpu_left, [(0,)]) == [1]
    assert bar.n == 3


def test_a_dead_cluster_task_becomes_its_failed_result(client):
    bar = Bar()
    with connect(client) as run:
        got = run.map(records, [(["b0"],), ([None, "x"],), (["b3", "b4"],)], progress=bar, count=lambda _, r: len(r),
                      failed=lambda a, err: [{"block": b, "status": "failed", "error": type(err).__name__} for b in a[0]])
        assert got[0] == [{"block": "b0", "status": "done"}] and got[2][1]["block"] == "b4"
        assert got[1] == [{"block": None, "status": "failed", "error": "MemoryError"},
                          {"block": "x", "status": "failed", "error": "MemoryError"}]
        got = run.map(boom, [(1,), (3,), (5,)], failed=lambda a, err: f"failed: {err}")
    assert got == [1, "failed: task 3 failed", 5]
    assert bar.n == 5


def test_cluster_compute_raises_the_first_error_after_every_task_ends(client):
    chunks = [dask.delayed(boom, pure=False)(i, dask_key_name=f"chunk-{i}") for i in range(5)]
    bar = Bar()
    with connect(client) as run, pytest.raises(RuntimeError, match="task 3 failed"):
        run.compute(chunks, progress=bar, count=lambda key, _: key.startswith("chunk"))
    assert bar.n == 4  # every chunk but the failed one was counted before the error was raised


def test_the_active_client_and_an_address_are_found(client):
    with connect() as run:  # the session's default Client
        assert run.client is client
    assert dask_runner.active_client() is client
    with connect(scheduler=client.cluster.scheduler_address) as run:  # a Client of its own, closed afterwards
        assert run.client is not client
        assert run.map(square, [(4,)]) == [16]
        opened = run.client
    assert opened.status == "closed"


def test_workers_start_a_local_cluster():
    pytest.importorskip("distributed")
    with connect(workers=1) as run:
        assert isinstance(run, Run) and run.client is not None
        assert len(run.client.scheduler_info()["workers"]) == 1
        assert run.map(pow, [(3, 2)]) == [9]
