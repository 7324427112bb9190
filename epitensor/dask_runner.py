"""One way to run epitensor's Dask work: choose the scheduler, run tasks, count progress, report failures.

Which scheduler :func:`connect` gives, in order of precedence:

1. ``client``: a :class:`distributed.Client` the caller connected (LocalCluster, a GPU cluster, ...);
2. ``scheduler``: an address such as ``"tcp://10.0.0.5:8786"`` (a Client is connected and closed
   afterwards), or a local dask scheduler name of :data:`LOCAL_SCHEDULERS`;
3. ``workers=N`` (unless ``local_workers``): a :class:`distributed.LocalCluster` of N single-threaded
   worker processes, started for the run and closed afterwards;
4. the active default Client, if the session has one (``scheduler`` None or ``"distributed"``);
5. dask's local threaded scheduler in this process (``workers`` threads with ``local_workers``).

The :class:`Run` it yields runs a graph of delayed tasks (:meth:`Run.compute`) or one function over
many argument tuples (:meth:`Run.map`), with the same progress counting and the same failure
rule on every scheduler: every task ends before the first error is raised, so nothing still
writes when the caller cleans up.

This module imports neither torch nor zarr, and imports ``distributed`` only where a cluster is
asked for or a Client already exists (importing it is slow).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from .exceptions import SchedulerError

#: Names of dask's schedulers in this process (anything else with ``:`` is a scheduler address).
LOCAL_SCHEDULERS = ("threads", "synchronous", "sync", "single-threaded", "processes")

#: A progress count: ``count(key, result)`` is how far a finished task moves the bar.
Count = Callable[[str, object], int]


def _one(key, result) -> int:
    return 1


def is_address(scheduler) -> bool:
    """Whether ``scheduler`` names a distributed scheduler (an address) rather than a local one.

    Examples
    --------
    >>> is_address("tcp://10.0.0.5:8786"), is_address("threads"), is_address(None)
    (True, False, False)
    """
    return isinstance(scheduler, str) and scheduler not in LOCAL_SCHEDULERS + ("distributed",)


def active_client():
    """The session's default :class:`distributed.Client`, or None when there is none.

    ``distributed`` is not imported for this: a Client can only exist once it has been.

    Examples
    --------
    >>> active_client() is None   # no Client was started in this session
    True
    """
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def progress_bar(total: int, desc: str, unit: str = "task", enabled: bool = True):
    """A tqdm progress bar of ``total`` units (hidden when not ``enabled``), for :class:`Run`'s ``progress``.

    Examples
    --------
    >>> with progress_bar(3, "blocks", unit="block", enabled=False) as bar:
    ...     bar.total
    3
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)


class Run:
    """Where tasks run: a distributed ``client``, or a local dask ``scheduler`` with ``workers`` threads.

    Made by :func:`connect`; ``client`` is None for a local scheduler.

    Examples
    --------
    >>> import dask
    >>> with connect(scheduler="sync") as run:
    ...     run.compute([dask.delayed(sum)([1, 2]), dask.delayed(max)(3, 4)])
    [3, 4]
    """

    def __init__(self, client=None, scheduler: str | None = None, workers: int | None = None):
        self.client = client
        self.scheduler = None if client is not None else (scheduler or "threads")
        self.workers = workers

    def __repr__(self) -> str:
        where = f"client={self.client!r}" if self.client is not None else f"scheduler={self.scheduler!r}"
        return f"Run({where}, workers={self.workers})"

    def compute(self, tasks: Sequence, *, progress=None, count: Count | None = None) -> list:
        """Compute dask ``tasks`` (delayed objects) together; their results, in order.

        Parameters
        ----------
        tasks : sequence of dask.delayed.Delayed
            The tasks whose results are wanted; tasks they depend on run too (and are counted).
        progress : tqdm bar or object with ``update(n)``, optional
            Moved by ``count(key, result)`` as each task of the graph finishes.
        count : callable, optional
            ``count(key, result) -> int``; default 1 per task. E.g. ``lambda key, _:
            str(key).startswith("ingest-chunk")`` counts only the chunk tasks.

        Returns
        -------
        list
            The results of ``tasks``.

        Raises
        ------
        Exception
            The first task error, after every other task has ended (on the threads scheduler
            the run's own thread pool is shut down first).

        Examples
        --------
        >>> import dask
        >>> with connect(scheduler="threads", workers=2, local_workers=True) as run:
        ...     run.compute([dask.delayed(pow)(2, k) for k in range(4)])
        [1, 2, 4, 8]
        """
        count = count or _one
        if self.client is not None:
            return self._gather(self.client.compute(list(tasks)), progress, count)
        return self._local(list(tasks), progress, count)

    def map(self, fn: Callable, args: Sequence[tuple], *, broadcast=None, resources: dict | None = None,
            progress=None, count: Count | None = None, failed: Callable | None = None,
            name: str | None = None) -> list:
        """Run ``fn(broadcast, *a)`` (or ``fn(*a)`` without ``broadcast``) for each tuple ``a`` of ``args``.

        Parameters
        ----------
        fn : callable
            The task; it must be importable on the workers (a module-level function).
        args : sequence of tuple
            One argument tuple per task.
        broadcast : object, optional
            A value every task takes first (e.g. a frozen model): on a cluster it is scattered to
            every worker once (``broadcast=True``) and the tasks name it.
        resources : dict, optional
            Dask worker resources each task claims on a cluster, e.g. ``{"GPU": 1}`` with workers
            started as ``dask worker tcp://scheduler:8786 --nthreads 1 --resources GPU=1``.
            Local schedulers have no resources and ignore it.
        progress : tqdm bar or object with ``update(n)``, optional
            Moved by ``count(key, result)`` as each task finishes.
        count : callable, optional
            ``count(key, result) -> int``; default 1 per task (e.g. ``lambda _, r: len(r)``).
        failed : callable, optional
            ``failed(a, error) -> result``: what a task that died on a cluster (its worker killed,
            out of memory, its error) returns instead; counted like a result. Without it, the first
            error is raised once every task has ended. Local runs always raise.
        name : str, optional
            Prefix of the task keys (default ``fn.__name__``).

        Returns
        -------
        list
            One result per tuple of ``args``, in their order.

        Examples
        --------
        >>> with connect(scheduler="sync") as run:
        ...     run.map(divmod, [(7, 2), (9, 4)])
        [(3, 1), (2, 1)]
        >>> with connect(scheduler="sync") as run:
        ...     run.map(pow, [(2,), (3,)], broadcast=10)
        [100, 1000]
        """
        count = count or _one
        head = () if broadcast is None else (broadcast,)
        token = uuid.uuid4().hex[:8]
        keys = [f"{name or fn.__name__}-{i}-{token}" for i in range(len(args))]
        if self.client is None:
            import dask

            tasks = [dask.delayed(fn, pure=False)(*head, *a, dask_key_name=k) for a, k in zip(args, keys)]
            return self._local(tasks, progress, count)
        if broadcast is not None:
            head = (self.client.scatter(broadcast, broadcast=True, hash=False),)
        futures = [self.client.submit(fn, *head, *a, key=k, pure=False, resources=resources)
                   for a, k in zip(args, keys)]
        on_failure = None
        if failed is not None:
            args_of = dict(zip(keys, args))

            def on_failure(key, err):
                return failed(args_of[key], err)

        return self._gather(futures, progress, count, on_failure)

    # ------------------------------------------------------------------ the two ways to run
    def _local(self, tasks: list, progress, count: Count) -> list:
        import dask
        from dask.callbacks import Callback

        class _Progress(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                progress.update(count(str(key), result))

        watch = _Progress() if progress is not None else contextlib.nullcontext()

        if self.scheduler == "threads":
            # the run's own pool, shut down (waiting for running tasks) before returning or raising,
            # so nothing is still writing when a failed run cleans up after itself
            with ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1) as pool, watch:
                return list(dask.compute(*tasks, scheduler="threads", pool=pool))
        kwargs = {"num_workers": self.workers} if self.workers else {}
        with watch:  # the processes scheduler shuts its pool down itself
            return list(dask.compute(*tasks, scheduler=self.scheduler, **kwargs))

    @staticmethod
    def _gather(futures: list, progress, count: Count, on_failure: Callable | None = None) -> list:
        from distributed import as_completed

        position = {f.key: i for i, f in enumerate(futures)}  # as_completed yields each future once
        results: list = [None] * len(futures)
        first_error = None
        for future in as_completed(futures):
            i = position[future.key]
            try:
                result = future.result()
            except Exception as err:  # the task raised, or its worker died
                if on_failure is None:
                    first_error = first_error or err
                    continue
                result = on_failure(future.key, err)
            results[i] = result
            if progress is not None:
                progress.update(count(str(future.key), result))
            future.release()
        if first_error is not None:
            raise first_error
        return results


@contextlib.contextmanager
def connect(client=None, scheduler: str | None = None, workers: int | None = None, *,
            local_workers: bool = False) -> Iterator[Run]:
    """Yield a :class:`Run` on the scheduler the arguments choose; close what this call opened.

    Parameters
    ----------
    client : distributed.Client, optional
        Run on it (left open).
    scheduler : str, optional
        A scheduler address (``"tcp://host:8786"``; connected here and closed afterwards), one of
        :data:`LOCAL_SCHEDULERS`, or ``"distributed"`` for the active default Client.
    workers : int, optional
        Without a scheduler: start a LocalCluster of this many single-threaded worker processes.
        With ``local_workers``: the number of threads (or processes) of the local scheduler instead.
    local_workers : bool, default False
        Whether ``workers`` sizes the local scheduler rather than starting a LocalCluster.

    Raises
    ------
    SchedulerError
        The scheduler address cannot be reached, or ``"distributed"`` was asked for without an
        active Client.

    Examples
    --------
    >>> with connect(scheduler="threads", workers=2, local_workers=True) as run:
    ...     run.scheduler, run.workers
    ('threads', 2)
    """
    if client is not None:
        yield Run(client)
        return
    if is_address(scheduler):
        from distributed import Client

        try:
            opened = Client(scheduler)
        except (OSError, TimeoutError, ValueError) as err:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {err}; check the address and "
                                 "that the scheduler is running") from None
        with opened:
            yield Run(opened)
        return
    if workers is not None and scheduler is None and not local_workers:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as opened:
            yield Run(opened)
        return
    if scheduler in (None, "distributed"):
        default = active_client()
        if default is not None:
            yield Run(default)
            return
        if scheduler == "distributed":
            raise SchedulerError("scheduler='distributed' needs an active distributed Client (distributed.Client(...) "
                                 "in this session); pass client=, a scheduler address, or a local scheduler")
    yield Run(scheduler=scheduler, workers=workers if local_workers else None)
