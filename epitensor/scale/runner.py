"""Running block tasks on Dask: the local threaded scheduler, a LocalCluster, or any Client.

Which scheduler runs the tasks, in order of precedence:

1. ``client``: a :class:`distributed.Client` the caller connected (LocalCluster, a GPU cluster, ...);
2. ``scheduler``: an address such as ``"tcp://10.0.0.5:8786"`` (a Client is connected and closed
   afterwards), or a local dask scheduler name (``"threads"``, ``"synchronous"``);
3. ``workers=N``: a :class:`distributed.LocalCluster` of N single-threaded worker processes is started
   for the run and closed afterwards;
4. the active default Client, if the session has one (``Client()`` was called);
5. dask's local threaded scheduler in this process.

On a distributed cluster the frozen model is scattered to every worker once (``broadcast``) and
each task names it; with ``resources={"GPU": 1}`` each task claims one GPU, so only workers started
with ``--resources GPU=1`` (one per GPU) run them (see ``docs`` of :func:`run_tasks`).
"""

from __future__ import annotations

import contextlib
import uuid

import torch

from ..arguments import check_integer
from ..exceptions import ModelError
from ..model.device import parse_device
from ..store import StoreLocation

LOCAL_SCHEDULERS = ("threads", "synchronous", "sync", "single-threaded")


def check_run_options(scheduler=None, workers=None, resources=None, device="auto", torch_threads=1) -> None:
    """Raise ModelError for run options that cannot work, before a run writes anything.

    ``scheduler`` must be a local dask scheduler name or an address (``"tcp://host:8786"``,
    ``"host:8786"``); ``workers`` and ``torch_threads`` positive integers; ``resources`` a dict;
    ``device`` one torch knows.
    """
    if scheduler is not None and not (isinstance(scheduler, str) and (scheduler in LOCAL_SCHEDULERS or ":" in scheduler)):
        raise ModelError(f"unknown scheduler {scheduler!r}; use one of {list(LOCAL_SCHEDULERS)} or a distributed "
                         "scheduler address such as 'tcp://host:8786'")
    if workers is not None:
        check_integer(workers, "workers", 1)
    if torch_threads is not None:
        check_integer(torch_threads, "torch_threads", 1)
    if resources is not None and not isinstance(resources, dict):
        raise ModelError(f"resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    parse_device(device)  # whether CUDA is there is checked on the workers, which may have GPUs this process lacks


@contextlib.contextmanager
def connect(client=None, scheduler=None, workers=None):
    """Yield ``(client or None, local scheduler name)`` for a run; close what this call opened."""
    if client is not None:
        yield client, None
        return
    if isinstance(scheduler, str) and scheduler not in LOCAL_SCHEDULERS:
        from distributed import Client

        with Client(scheduler) as c:
            yield c, None
        return
    if workers is not None and scheduler is None:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as c:
            yield c, None
        return
    if scheduler is None:
        try:
            from distributed import default_client

            yield default_client(), None
            return
        except (ImportError, ValueError):
            pass
    yield None, scheduler or "threads"


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily pin torch threads in this process (local threaded scheduler)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_tasks(fn, frozen, tasks, *, client=None, scheduler=None, workers=None, resources=None, progress=True,
              desc="blocks", extra=None, settings=None, path=None) -> list[dict]:
    """Run ``fn(frozen, path, blocks, settings[, extra[i]])`` for each group of ``tasks``.

    Returns the per-block records of every task. A task that dies (e.g. its worker was killed more
    often than ``distributed.scheduler.allowed-failures``) yields ``failed`` records for its blocks;
    the others are collected regardless.

    Parameters
    ----------
    resources : dict, optional
        Dask worker resources each task claims, e.g. ``{"GPU": 1}`` with workers started as
        ``dask worker tcp://scheduler:8786 --nthreads 1 --resources GPU=1`` (one per GPU, with
        ``CUDA_VISIBLE_DEVICES`` set per worker). Ignored by the local threaded scheduler.
    """
    from tqdm.auto import tqdm

    n_blocks = sum(len(t) for t in tasks)
    bar = tqdm(total=n_blocks, desc=desc, unit="block", disable=not progress)
    args = [(t,) if extra is None else (t, extra[i]) for i, t in enumerate(tasks)]
    records: list[dict] = []
    try:
        with connect(client, scheduler, workers) as (c, local):
            if c is None:
                records = _run_local(fn, frozen, path, settings, args, local, bar)
            else:
                records = _run_distributed(c, fn, frozen, path, settings, args, resources, bar)
    finally:
        bar.close()
    return records


def _run_local(fn, frozen, path, settings, args, scheduler, bar) -> list[dict]:
    import dask
    from dask.callbacks import Callback

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, id):
            if isinstance(result, list):
                bar.update(len(result))

    delayed = [dask.delayed(fn, pure=False)(frozen, path, a[0], settings, *a[1:]) for a in args]
    with torch_threads(settings.get("torch_threads")), _Progress():
        results = dask.compute(*delayed, scheduler=scheduler)
    return [r for group in results for r in group]


def _run_distributed(client, fn, frozen, path, settings, args, resources, bar) -> list[dict]:
    from distributed import as_completed

    frozen_f = client.scatter(frozen, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:8]
    futures = {}
    for a in args:
        blocks = a[0]
        key = f"{fn.__name__}-{blocks[0].name}-{token}"
        f = client.submit(fn, frozen_f, path if isinstance(path, StoreLocation) else str(path), blocks, settings, *a[1:], key=key, pure=False, resources=resources)
        futures[f] = blocks
    records = []
    for f in as_completed(list(futures)):
        blocks = futures[f]
        try:
            group = f.result()
        except Exception as err:  # the task itself died: worker killed, out of memory, ...
            group = [{"block": b.name, "first": b.first, "end": b.end, "status": "failed",
                      "error": f"{type(err).__name__}: {err}"} for b in blocks]
        records += group
        bar.update(len(group))
        f.release()
    return records
