"""Running an ingestion's tasks with Dask: one graph per batch of pieces, on the local schedulers or
a ``distributed`` cluster, with a progress bar over chunks.

Tests may replace :func:`graph` (it is looked up here on every batch) to watch the batches.
"""

from __future__ import annotations

from dataclasses import asdict

from ..dask_runner import connect, progress_bar
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


def run(store, todo, genome, *, workers, scheduler, client, progress):
    """Ingest the pieces ``todo`` into ``store`` (in batches of at most :data:`BATCH_CHUNKS` chunks).

    The scheduler is chosen by :func:`epitensor.dask_runner.connect` (``workers`` sizes the local
    pool); the progress bar counts chunks.
    """
    if not todo:
        return
    total = sum(1 for p in todo for _ in chunks_of(p, genome))
    with progress_bar(total, "ingest", unit="chunk", enabled=progress) as bar, \
            connect(client, scheduler, workers, local_workers=True) as run_on:
        for batch in _batches(todo, genome):
            chunk_tasks, record_tasks = graph(store, batch, genome)
            run_on.compute(chunk_tasks + record_tasks, progress=bar, count=_is_chunk)


def _is_chunk(key, result) -> bool:
    return str(key).startswith("ingest-chunk")


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
