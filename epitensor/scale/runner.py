"""Running stage-2 block tasks on Dask, through the one runner (:mod:`epitensor.dask_runner`).

The scheduler is chosen as :func:`epitensor.dask_runner.connect` says: a ``client``; a scheduler
address; a :class:`distributed.LocalCluster` of ``workers`` single-threaded processes; the active
default Client; else dask's local threaded scheduler in this process. On a cluster the frozen model
is scattered to every worker once and each task names it; with ``resources={"GPU": 1}`` each task
claims one GPU, so only workers started with ``--resources GPU=1`` (one per GPU) run them.
"""

from __future__ import annotations

import contextlib

import torch

from ..arguments import check_integer
from ..dask_runner import connect, progress_bar
from ..exceptions import ModelError
from ..model.device import parse_device
from ..store import StoreLocation

#: The local dask schedulers stage 2 runs on (one process; the processes scheduler would pickle the
#: frozen model into every task).
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
def torch_threads(n: int | None):
    """Temporarily pin torch threads in this process (local threaded scheduler)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _failed(args, err) -> list[dict]:
    """The records of a task that died on a cluster (worker killed, out of memory, ...)."""
    return [{"block": b.name, "first": b.first, "end": b.end, "status": "failed",
             "error": f"{type(err).__name__}: {err}"} for b in args[1]]


def _n_records(key, records) -> int:
    return len(records)


def run_tasks(fn, frozen, tasks, *, client=None, scheduler=None, workers=None, resources=None, progress=True,
              desc="blocks", extra=None, settings=None, path=None) -> list[dict]:
    """Run ``fn(frozen, path, blocks, settings[, extra[i]])`` for each group of blocks in ``tasks``.

    Returns the per-block records of every task, in task order. A task that dies on a cluster (e.g.
    its worker was killed more often than ``distributed.scheduler.allowed-failures``) yields
    ``failed`` records for its blocks; the others are collected regardless.

    Parameters
    ----------
    resources : dict, optional
        Dask worker resources each task claims, e.g. ``{"GPU": 1}`` with workers started as
        ``dask worker tcp://scheduler:8786 --nthreads 1 --resources GPU=1`` (one per GPU, with
        ``CUDA_VISIBLE_DEVICES`` set per worker). Ignored by the local threaded scheduler.
    """
    settings = settings or {}
    with progress_bar(sum(len(t) for t in tasks), desc, unit="block", enabled=progress) as bar, \
            connect(client, scheduler, workers) as run, \
            torch_threads(settings.get("torch_threads") if run.client is None else None):
        target = path if run.client is None or isinstance(path, StoreLocation) else str(path)
        args = [(target, t, settings) + (() if extra is None else (extra[i],)) for i, t in enumerate(tasks)]
        groups = run.map(fn, args, broadcast=frozen, resources=resources, progress=bar, count=_n_records,
                         failed=_failed)
    return [r for group in groups for r in group]
