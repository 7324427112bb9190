"""Genome scale: stage-2 genome factors and imputation block by block, resumable, on Dask.

The user-facing entry points are :meth:`epitensor.Avocado.fit_genome` and
:meth:`epitensor.Avocado.impute_genome`, which call :mod:`~epitensor.scale.stage2`; this package
also holds the block planner (:mod:`~epitensor.scale.blocks`, exported here), the completion
markers (:mod:`~epitensor.scale.markers`), the worker-side task bodies
(:mod:`~epitensor.scale.worker`) and the Dask runner (:mod:`~epitensor.scale.runner`). Only the
planner is imported with the package, so that the model can read stage-2 factors without loading
the driver.

Examples
--------
>>> from epitensor.scale import plan_blocks
>>> import epitensor as et
>>> [b.name for b in plan_blocks("chr21:0-3Mb", et.Genome.from_assembly("hg38", contigs=["chr21"]), "1Mb")]
['0-40000', '40000-80000', '80000-120000']
"""

from .blocks import Block, block_bins, group_blocks, plan_blocks

__all__ = ["Block", "block_bins", "group_blocks", "plan_blocks"]
