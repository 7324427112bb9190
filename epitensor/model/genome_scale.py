"""Stage 2 and writing to stores: genome factors beyond the training region, imputations on disk.

:class:`GenomeScaleMixin` gives :class:`~epitensor.Avocado` its stage-2 methods: in memory
(:meth:`fit_genome_factors`), and block by block on Dask (:meth:`fit_genome`, :meth:`impute_genome`,
run by :mod:`epitensor.scale.stage2`), plus :meth:`impute_to_store`. It also keeps the model's view
of the store holding its stage-2 genome factors, which every prediction consults
(:mod:`epitensor.model.genome_factors`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import check_integer, check_seconds, check_seed
from ..exceptions import ArgumentError, DataError, ModelError, StoreNotFoundError
from ..genome import Genome
from ..regions import as_regions, region_bins
from ..store import (
    add_track_variable,
    open_group,
    precision_of,
    remove_interrupted_writes,
    store_path,
    sync_metadata,
)
from .data import as_labels, pairs_to_impute, training_pairs
from .genome_factors import (
    check_covered,
    factors_store,
    genome_rows,
    module_tables,
    stage2_intervals,
)
from .positions import GenomeRows


class GenomeScaleMixin:
    """Stage-2 genome factors and imputations written to a store, for :class:`~epitensor.Avocado`."""

    def fit_genome_factors(self, region, epochs: int = 200, *, progress: bool = True, seed: int | None = None,
                           time_limit: float | None = None) -> pd.DataFrame:
        """Stage 2: fit fresh genome factors for ``region`` with everything else frozen.

        The network and the biosample/assay factors do not change; the genome tables are replaced by
        new ones covering ``region`` (the previous genome factors are dropped: write them to the store
        with :meth:`write_factors` first if you need them). Blocks aligned to 5 kbp (200 bins) are
        independent, so a genome can be done block by block (and each block written with
        :meth:`write_factors`).

        Returns
        -------
        pandas.DataFrame
            The history of this fit (also appended to ``model.history``).

        Examples
        --------
        >>> model.fit_genome_factors("chr20:0-5,000,000", epochs=50)  # doctest: +SKIP
        """
        self._check_fitted()
        epochs = check_integer(epochs, "epochs", 0)  # 0: the fresh factors, a baseline (fit needs >= 1)
        seed, time_limit = check_seed(seed), check_seconds(time_limit)
        rows = GenomeRows.from_regions(region, self.genome)
        if not len(rows):
            raise DataError(f"the region {region!r} holds no positions")
        pairs = training_pairs(self.training_tracks or None, self.observed_tracks(), self.biosamples, self.assays)
        self.reset_genome_factors(rows)
        data = self._training_data(pairs, rows)
        return self._train(data, epochs, seed, progress, time_limit, module_tables(self.module))

    # ------------------------------------------------------------------ the store of stage-2 factors
    @property
    def genome_store(self):
        """The store holding this model's stage-2 genome factors (the last one :meth:`fit_genome` or
        :meth:`impute_genome` ran on, else the model's own), or None when it holds none."""
        path = self._genome_store
        if path is None:
            try:
                path = store_path(self._ds)
            except StoreNotFoundError:
                return None
        return factors_store(path)

    def record_genome_store(self, path) -> None:
        """Record that stage 2 wrote this model's genome factors into the store ``path``: predictions
        read the factors of its fitted blocks from there."""
        self._genome_store = store_path(path)

    @property
    def fingerprint(self) -> str:
        """Hash of the config and the frozen weights (network, biosample/assay factors): the model
        whose genome factors a stage-2 block of a store holds."""
        return self._fingerprint(self.module, self.config)

    def _stage2_intervals(self):
        return stage2_intervals(self.genome_store, lambda: self.fingerprint)

    def _genome_rows(self, positions, what: str):
        """(module, rows) for predicting at ``positions``: stage-2 factors from the store where fitted."""
        return genome_rows(self.module, self._rows, self.genome_store, self._stage2_intervals(), positions, self.device,
                           what)

    def _check_stage2_stack(self, what: str) -> None:
        """ModelError: stage 2's block workers do not know the cross-assay stack."""
        if getattr(self, "stack", None) is not None:
            raise ModelError(f"{what}: stage 2 on Dask does not apply this model's cross-assay stack (config.cross_assay, "
                             "which preset='auto' turns on for small compendia), so its imputations would differ from "
                             "model.impute(); fit a model with et.Avocado(ds, cross_assay=False) (command line: "
                             "epitensor train --preset small) for stage 2, or impute in this process: model.impute() / "
                             "model.impute_to_store() without Dask (command line: epitensor impute without Dask options)")

    def _use_blocks(self, region, client, scheduler, workers, block_size) -> bool:
        """Whether :meth:`impute_to_store` imputes by blocks (on Dask) for these arguments."""
        if any(x is not None for x in (client, scheduler, workers, block_size)):
            return True
        try:
            from distributed import default_client

            default_client()
            return True
        except (ImportError, ValueError):
            pass
        intervals = self._stage2_intervals()
        if not len(intervals):
            return False
        for reg in as_regions(self._region_or_default(region), self.genome):
            lo, hi = region_bins(reg, self.genome)
            if intervals.covers(np.arange(lo, hi)).any():
                return True
        return False

    # ------------------------------------------------------------------ imputations into a store
    def impute_to_store(self, path=None, biosamples=None, assays=None, region=None, *, pairs=None, progress: bool = True,
                        client=None, scheduler=None, workers=None, block_size=None, precision=None):
        """Write imputations into the store's ``imputed`` variable (never into ``signal``).

        Written region by region in chunk-aligned pieces, so the chunks of other regions are untouched.
        Labels, region and the training tracks read are checked before the first write; a run killed
        part-way is finished by running it again.

        Parameters
        ----------
        path : str or Path, optional
            The store (default: the one the model was built on).
        biosamples, assays : str or list of str, optional
            Labels to impute (default: all; every combination).
        region : str, tuple or list of them, optional
            Where (default: the first fitted region).
        pairs : "unobserved", "all" or list of (biosample, assay), optional
            The tracks to impute instead of every combination of ``biosamples`` and ``assays``:
            "unobserved" is every pair of the model's labels that the store lacks (the completion of
            the tensor), as in :meth:`impute_genome`.
        progress : bool, default True
            tqdm bar over pieces.
        client, scheduler, workers, block_size : optional
            Impute by blocks on Dask instead (:meth:`impute_genome`, ``block_size`` default "1Mb");
            also chosen when a distributed Client is active, or when the region has stage-2 genome
            factors (:meth:`fit_genome`). Returns that run's per-block report.
        precision : str, optional
            Storage precision of ``imputed`` (:mod:`epitensor.store.precision`), chosen when the
            variable is created: ``"float32"``, ``"bitround-N"`` or ``"quantize-N"``. Default: the
            variable's own, or for a new one ``"quantize-2"`` (``|stored - x| <= 2**-8`` on the
            store's scale, far below the model's own error on that scale).

        Raises
        ------
        ArgumentError
            ``pairs`` together with ``biosamples`` or ``assays``.
        PrecisionError
            ``imputed`` exists at another precision than ``precision``.

        Examples
        --------
        >>> model.impute_to_store(biosamples=["E065"], assays=["H3K4me3"], region="pilot")  # doctest: +SKIP
        >>> model.impute_to_store(pairs="unobserved", region="pilot")  # complete the tensor  # doctest: +SKIP
        """
        self._check_fitted()
        path = store_path(self._ds) if path is None else path
        if pairs is None:
            bs = self.biosamples if biosamples is None else as_labels(biosamples)
            as_ = self.assays if assays is None else as_labels(assays)
            self._index(bs, "biosample")  # unknown labels: LabelError before anything is read
            self._index(as_, "assay")
            pairs = [(b, a) for b in bs for a in as_]
        elif biosamples is not None or assays is not None:
            raise ArgumentError("impute_to_store: pass pairs, or biosamples and assays, not both")
        if self._use_blocks(region, client, scheduler, workers, block_size):
            return self.impute_genome(path, pairs=pairs, region=self._region_or_default(region),
                                      block_size=block_size or "1Mb", client=client, scheduler=scheduler,
                                      workers=workers, progress=progress, precision=precision)
        self._write_imputations(path, pairs, region, progress, precision)

    def _write_imputations(self, path, pairs, region, progress, precision) -> None:
        """Impute ``pairs`` in this process, chunk-aligned piece by piece, into the store's ``imputed``."""
        from tqdm.auto import tqdm

        from ..store import open_dataset

        # every check before the first write: labels, genome, region coverage, the tracks read
        root = open_group(path, mode="r+")
        Genome.from_attrs(root.attrs).check_same(self.genome, "the store's and the model's genomes")
        in_store, in_model, labels = pairs_to_impute(self, open_dataset(path), pairs)
        (sb, sa), (b_idx, a_idx) = in_store.T, in_model.T
        self._check_offset_tracks(self._ds, sorted({a for _, a in labels}))
        step = self.genome.chunk_bins
        intervals = self._stage2_intervals()
        pieces = []
        for reg in as_regions(self._region_or_default(region), self.genome):
            lo, hi = region_bins(reg, self.genome)
            check_covered(self._rows, intervals, np.arange(lo, hi), f"region {reg}")
            cuts = [lo, *range((lo // step + 1) * step, hi, step), hi]
            pieces += list(zip(cuts[:-1], cuts[1:]))
        remove_interrupted_writes(path)  # what a killed earlier run left
        arr = add_track_variable(path, "imputed", long_name="imputed signal", exist_ok=True, precision=precision)
        sync_metadata(path)
        stored = precision_of(arr.attrs)
        for lo, hi in tqdm(pieces, desc="imputing", unit="piece", disable=not progress):
            pred = self.predict(b_idx, a_idx, np.arange(lo, hi))
            for k, (i, j) in enumerate(zip(sb, sa)):
                arr[i, j, lo:hi] = stored.round(pred[k])

    # ------------------------------------------------------------------ stage 2 by blocks, on Dask
    def fit_genome(self, store=None, region=None, block_size="1Mb", epochs: int = 200, *, seed: int | None = None,
                   client=None, scheduler=None, workers=None, resources=None, device="auto", torch_threads: int = 1,
                   write_imputed=False, overwrite: bool = False, progress: bool = True,
                   dry_run: bool = False, precision=None) -> pd.DataFrame:
        """Stage 2: fit genome factors block by block, everything else frozen, on Dask; resumable.

        Each 5-kbp-aligned block is an independent task: it reads the block's observed training
        tracks from the store, fits fresh 25 bp / 250 bp / 5 kbp genome factors for the block (same
        loss, Adam and batch settings as :meth:`fit`; an epoch is one pass over the block's positions,
        each with a random training track; the seed is a hash of ``seed`` and the block's start),
        writes them into the store's ``genome_factors_*`` variables and, when asked, the block's
        imputations into ``imputed``, then a completion marker. Blocks already finished (same model,
        epochs and seed) are skipped, so a killed run is resumed by running the same call again; the
        result is identical to an uninterrupted run, whatever the number of workers. Afterwards
        :meth:`impute`, :meth:`impute_to_store` and :meth:`genome_factors` work over the fitted
        blocks: their factors are read from the store (where a block overlaps the stage-1 training
        region, its stage-2 factors are the ones used); elsewhere the model's stage-1 factors are used.
        Results are bit-identical across runs and worker counts on CPU (one torch thread per task);
        on GPUs they are reproducible up to floating-point non-determinism of CUDA kernels.

        Parameters
        ----------
        store : str or Path, optional
            The store (default: the model's own). Must hold the model's labels and training tracks.
        region : str, tuple or list of them, optional
            Where (default: every contig); widened to whole 5 kbp rows.
        block_size : str or int, default "1Mb"
            Block length in bp, a multiple of 5 kbp. Memory per task is about
            ``n_training_tracks x block bins x 4 bytes`` plus the block's factors. Multiples of the
            store's chunk length (1 Mb) make one task per block; divisors of it (e.g. 200 kb) are grouped
            so that one task writes each chunk (results do not depend on the grouping). Other sizes
            (e.g. 1.5 Mb) work but chain neighbouring blocks that share a chunk into one task.
        epochs : int, default 200
            Passes over each block's positions; 0 writes the blocks' freshly initialised factors (a
            baseline).
        seed : int, optional
            Run seed (default: the model's seed).
        client : distributed.Client, optional
            Run on this cluster (a LocalCluster, or GPU workers started with ``--resources GPU=1``).
        scheduler : str, optional
            A scheduler address (``"tcp://host:8786"``) or a local dask scheduler (``"threads"``,
            ``"synchronous"``). Default: the active Client if any, else dask's local threads.
        workers : int, optional
            Start a LocalCluster of this many single-threaded worker processes for the run.
        resources : dict, optional
            Worker resources each task claims, e.g. ``{"GPU": 1}`` (one task per GPU at a time).
        device : str, default "auto"
            Device of each worker: "auto" (its GPU if it has one), "cpu", "cuda".
        torch_threads : int, default 1
            Torch threads per task. 1 keeps one task per core from oversubscribing the CPU and makes
            results identical across worker counts; raise it for a few big CPU workers.
        write_imputed : bool or str or list of (biosample, assay), default False
            Also write each block's imputations: True or "unobserved" (every pair the store lacks),
            "all", or a list of pairs.
        overwrite : bool, default False
            Refit blocks already finished.
        precision : str, optional
            Storage precision of ``imputed`` when ``write_imputed`` (see :meth:`impute_to_store`).
        progress : bool, default True
            Print the plan (blocks, training samples, predictions) and show a bar over blocks.
        dry_run : bool, default False
            Return the plan without running anything.

        Returns
        -------
        pandas.DataFrame
            One row per block: ``block``, ``region``, ``status`` ("fitted", "finished before",
            "failed"), ``loss``, ``fit_seconds``, ``n_predictions``, ``impute_seconds``, ``error``;
            ``.attrs["plan"]`` holds the work estimate.

        Raises
        ------
        ModelError
            The store lacks the model's labels or training tracks, the model is not fitted, or an
            argument is invalid (negative ``epochs``, ``workers``/``torch_threads`` < 1, an unknown
            ``scheduler`` or ``device``). Every argument is checked before the store is written.
        RegionError
            A region outside the genome, or a block size that is not a multiple of 5 kbp.
        BlockError
            Some blocks failed (``error.report``); the finished ones are recorded, rerun to finish.

        Examples
        --------
        >>> from distributed import Client                                   # doctest: +SKIP
        >>> client = Client(n_workers=2, threads_per_worker=1)              # doctest: +SKIP
        >>> report = model.fit_genome("compendium.zarr", region="chr21", block_size="1Mb", epochs=100)  # doctest: +SKIP
        """
        self._check_stage2_stack("fit_genome")
        from ..scale.stage2 import fit_genome

        self._check_fitted()
        return fit_genome(self, store, region, block_size, epochs, seed=seed, client=client, scheduler=scheduler,
                          workers=workers, resources=resources, device=device, torch_threads=torch_threads,
                          write_imputed=write_imputed, overwrite=overwrite, progress=progress, dry_run=dry_run,
                          precision=precision)

    def impute_genome(self, store=None, pairs="unobserved", region=None, block_size="1Mb", *, client=None,
                      scheduler=None, workers=None, resources=None, device="auto", torch_threads: int = 1,
                      overwrite: bool = False, progress: bool = True, dry_run: bool = False,
                      precision=None) -> pd.DataFrame:
        """Write imputations of any set of (biosample, assay) pairs into ``imputed``, block by block on Dask.

        Genome factors come from the store where stage 2 fitted them, else from the model (stage 1).
        Blocks already written for the same pairs and factors are skipped (resumable).

        Parameters
        ----------
        pairs : "unobserved", "all" or list of (biosample, assay), default "unobserved"
            "unobserved": every pair of the model's labels the store lacks (the completion of the tensor).
        region : optional
            Default: every block whose genome factors this model fitted in the store.
        store, block_size, client, scheduler, workers, resources, device, torch_threads, overwrite, progress, dry_run
            As in :meth:`fit_genome`. The plan (number of predictions) is printed before starting.
        precision : str, optional
            Storage precision of ``imputed`` (see :meth:`impute_to_store`).

        Returns
        -------
        pandas.DataFrame
            One row per block (``status``, ``n_predictions``, ``impute_seconds``, ``error``).

        Examples
        --------
        >>> model.impute_genome(pairs="unobserved", region="chr21", dry_run=True)  # doctest: +SKIP
        """
        self._check_stage2_stack("impute_genome")
        from ..scale.stage2 import impute_genome

        self._check_fitted()
        return impute_genome(self, store, pairs, region, block_size, client=client, scheduler=scheduler,
                             workers=workers, resources=resources, device=device, torch_threads=torch_threads,
                             overwrite=overwrite, progress=progress, dry_run=dry_run, precision=precision)


__all__ = ["GenomeScaleMixin"]
