"""Running an ingestion's tasks with Dask: one graph per batch of pieces, on the local schedulers or
a ``distributed`` cluster, with a progress bar over chunks.

Tests may replace :func:`graph` (it is looked up here on every batch) to watch the batches.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from ..store import StoreLocation, TrackArray
from .ingest_tasks import ingest_chunk, write_piece_record
from .pieces import chunks_of


def graph(store, todo, genome):
    """The chunk tasks and record tasks of the pieces ``todo`` (dask delayed objects)."""
    from dask import delayed

    chunk_tasks, record_tasks = [], []
    length = {c: genome.length(c) for c in genome.contigs}
    shape = TrackArray.open(store, "signal", mode="r").shape
    target = store if isinstance(store, StoreLocation) else str(store)  # what the tasks open
    for j, p in enumerate(todo):
        spec = asdict(p)
        mine = [
            delayed(ingest_chunk, pure=False)(target, shape, spec, lo, hi, first, end, length[p.contig], genome.bin_size, genome if p.files else None, dask_key_name=f"ingest-chunk-{j}-{lo}")
            for lo, hi, first, end in chunks_of(p, genome)
        ]
        chunk_tasks += mine
        record_tasks.append(delayed(write_piece_record, pure=False)(target, spec, *mine, dask_key_name=f"ingest-record-{j}"))
    return chunk_tasks, record_tasks


def _active_client():
    if "distributed" not in sys.modules:  # no client can exist; importing distributed costs ~1 s
        return None
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def run(store, todo, genome, *, workers, scheduler, client, progress):
    """Ingest the pieces ``todo`` into ``store`` (in batches of at most :data:`BATCH_CHUNKS` chunks)."""
    if not todo:
        return
    from tqdm import tqdm

    if client is None and scheduler in (None, "distributed"):
        client = _active_client()
    total = sum(1 for p in todo for _ in chunks_of(p, genome))
    with tqdm(total=total, desc="ingest", unit="chunk", disable=not progress) as bar:
        for batch in _batches(todo, genome):
            chunk_tasks, record_tasks = graph(store, batch, genome)
            if client is not None:
                _run_distributed(client, chunk_tasks, record_tasks, bar)
            else:
                _run_local(record_tasks, scheduler or "threads", workers, bar)


#: Most chunk tasks in one Dask graph: a genome-wide compendium (thousands of tracks x 3,000
#: chunks) runs as a sequence of graphs of this size, so the scheduler's memory stays bounded.
BATCH_CHUNKS = 20_000


def _batches(todo, genome):
    batch, size = [], 0
    for p in todo:
        n = sum(1 for _ in chunks_of(p, genome))
        if batch and size + n > BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += n
    if batch:
        yield batch


def _run_local(record_tasks, scheduler, workers, bar):
    import dask
    from dask.callbacks import Callback

    class _Bar(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if str(key).startswith("ingest-chunk"):
                bar.update(1)

    kwargs = {"num_workers": workers} if workers else {}
    if scheduler == "threads":
        # our own pool, shut down (waiting for running tasks) before returning or raising, so
        # nothing is still writing when a failed run cleans up after itself
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool, _Bar():
            dask.compute(*record_tasks, scheduler="threads", pool=pool)
        return
    with _Bar():  # the processes scheduler shuts its pool down itself
        dask.compute(*record_tasks, scheduler=scheduler, **kwargs)


def _run_distributed(client, chunk_tasks, record_tasks, bar):
    from distributed import as_completed

    futures = client.compute(chunk_tasks + record_tasks)
    first_error = None
    for future in as_completed(futures):
        if future.status == "error":
            first_error = first_error or future
        elif str(future.key).startswith("ingest-chunk"):
            bar.update(1)
    if first_error is not None:
        first_error.result()  # raises the task's error
