"""The user-facing Avocado model: labels and training, delegating the rest.

The network is :class:`~epitensor.model.AvocadoModule` (tensors only); training data come from
:mod:`epitensor.model.data`, predictions from :mod:`epitensor.model.prediction`. :class:`Avocado`
maps the store's labels and genome-wide positions to table rows and returns labelled
xarray/pandas objects. Its other public methods come from mixins, one responsibility each:
imputation (:mod:`~epitensor.model.imputation`), factors (:mod:`~epitensor.model.factors`),
save/load (:mod:`~epitensor.model.persistence`), adding labels (:mod:`~epitensor.model.extend`) and
stage 2 (:mod:`~epitensor.model.genome_scale`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..arguments import check_integer, check_seconds, check_seed
from ..exceptions import DataError, ModelError
from ..genome_index import genome_index
from ..store import label_index, open_dataset, read_tracks
from .config import AvocadoConfig, auto_preset
from .cross_assay import CrossAssayStack
from .data import as_labels, observed_pairs, pair_indices, training_data, training_pairs
from .device import resolve_device
from .extend import ExtensionMixin
from .factors import FactorsMixin
from .frozen import FingerprintCache
from .genome_scale import GenomeScaleMixin
from .imputation import ImputationMixin
from .module import AvocadoModule
from .offsets import uses_average
from .persistence import PersistenceMixin
from .positions import GenomeRows
from .training import best_baseline_weight, held_out_tracks, kernel_choice, resolve_options, train
from .validation import resolve_validation_tracks, validation_positions

#: Epochs of ``fit`` when none are given: the paper's fixed budget, or the cap of a validated fit.
DEFAULT_EPOCHS = 200


class Avocado(ImputationMixin, FactorsMixin, PersistenceMixin, ExtensionMixin, GenomeScaleMixin):
    """The Avocado multi-scale deep tensor factorization of an epigenome compendium.

    Parameters
    ----------
    ds : xarray.Dataset or path
        The store (opened with :func:`epitensor.open_dataset`, or its path). Labels and genome come
        from it.
    preset : {"auto", "paper", "small"}, default "auto"
        Hyper-parameter set. "auto" chooses from the compendium (:func:`epitensor.model.config.auto_preset`:
        ``small`` for few tracks per assay, else ``paper``, both stopping on held-out whole tracks),
        prints its choice in one line and records it in ``config.auto_choice``. "paper" is the
        published architecture and training, exactly (200 epochs, no validation); "small" the
        preset for compendia with few biosamples per assay (:data:`epitensor.model.PRESETS`).
    device : str, default "auto"
        "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", ...
    seed : int or None, default 0
        Seeds initialisation and sampling; with a seed, CPU training is deterministic.
    biosamples, assays : list of str, optional
        Restrict the model to these labels (default: all labels of the store).
    **options
        Any :class:`~epitensor.model.AvocadoConfig` field, overriding the preset
        (e.g. ``n_nodes=256``, ``n_layers=2``, ``batch_size=10_000``).

    Attributes
    ----------
    module : AvocadoModule
        The torch network and embeddings.
    config : AvocadoConfig
    history : pandas.DataFrame
        One row per training epoch (``loss``, ``val_mse`` when validating, ``seconds``).

    Examples
    --------
    >>> import epitensor as et
    >>> ds = et.datasets.synthetic(n_biosamples=4, n_assays=3, n_positions=2_000, missing=0.3, seed=0)
    >>> model = et.Avocado(ds, n_nodes=16, batch_size=1_000)  # doctest: +ELLIPSIS
    Avocado preset 'auto' -> small: 8 observed tracks, 2.7 per assay ...
    >>> history = model.fit(epochs=2, progress=False)
    >>> model.config.cross_assay, model.config.validation_tracks  # a small compendium: blended with the stack
    (True, 1)
    >>> len(model.training_tracks), len(model.validation_tracks)  # the network as validated (no refit)
    (7, 1)
    >>> model.impute("B00", "H3K4me3", region="synthetic:0-1000").dims
    ('biosample', 'assay', 'position')
    >>> model.factors("biosample").shape
    (4, 32)
    """

    def __init__(self, ds, *, preset: str = "auto", device="auto", seed: int | None = 0, biosamples=None,
                 assays=None, **options):
        self._ds = ds if isinstance(ds, xr.Dataset) else open_dataset(ds)
        store_b = [str(x) for x in self._ds.biosample.values]
        store_a = [str(x) for x in self._ds.assay.values]
        self.biosamples = store_b if biosamples is None else as_labels(biosamples)
        self.assays = store_a if assays is None else as_labels(assays)
        label_index(store_b, self.biosamples, "biosample")
        label_index(store_a, self.assays, "assay")
        self.config = self._configure(preset, options)
        self.genome = genome_index(self._ds).genome
        self.device = resolve_device(device)
        self.seed = seed
        self.history = pd.DataFrame()
        self.training_tracks: list[tuple[str, str]] = []
        self.validation_tracks: list[tuple[str, str]] = []
        self._rows = GenomeRows([])
        self._optimizer = None
        self._genome_store = None  # the store stage 2 last wrote this model's genome factors into
        self._fingerprint = FingerprintCache()
        self.module = self._new_module()
        self.stack: CrossAssayStack | None = None  # config.cross_assay: fitted by fit()

    def _new_module(self) -> AvocadoModule:
        """A new network and embeddings initialised from the model's seed (construction and ``refit``)."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(self.seed)
            return AvocadoModule(len(self.biosamples), len(self.assays), (0, 0, 0), self.config).to(self.device)

    def _configure(self, preset: str, options: dict) -> AvocadoConfig:
        """The config of ``preset`` with ``options``; "auto" decides from the observed tracks and says so."""
        if preset != "auto" or "auto_choice" in options:  # named presets, or a saved auto config being loaded
            return AvocadoConfig.from_preset(preset, **options)
        observed = self._ds["observed"].sel(biosample=self.biosamples, assay=self.assays).values
        base, overrides, reason = auto_preset(len(self.biosamples), len(self.assays), int(observed.sum()))
        config = AvocadoConfig.from_preset(base, **{**overrides, **options})
        config.preset, config.auto_choice = "auto", f"{base}: {reason}"
        print(f"Avocado preset 'auto' -> {config.auto_choice}. preset='paper' gives the published configuration.")
        return config

    def __repr__(self) -> str:
        fitted = f"fitted on {len(self._rows):,} positions, {len(self.history)} epochs" if len(self._rows) else "not fitted"
        return (f"Avocado({len(self.biosamples)} biosamples x {len(self.assays)} assays, preset={self.config.preset!r}, "
                f"{self.config.n_layers} x {self.config.n_nodes}, device={self.device}, {fitted})")

    # ------------------------------------------------------------------ labels and data
    @property
    def dataset(self) -> xr.Dataset:
        """The dataset (store) the model reads its tracks from."""
        return self._ds

    @property
    def fitted_positions(self) -> GenomeRows:
        """The genome-wide positions that have genome factors (and their table rows)."""
        return self._rows

    def indices(self, pairs) -> tuple[np.ndarray, np.ndarray]:
        """Table rows ``(biosample rows, assay rows)`` of the (biosample, assay) ``pairs``.

        Examples
        --------
        >>> b, a = model.indices(model.training_tracks)  # doctest: +SKIP
        """
        rows = pair_indices(pairs, self.biosamples, self.assays)
        return rows[:, 0], rows[:, 1]

    def observed_tracks(self) -> list[tuple[str, str]]:
        """Every (biosample, assay) of the model's labels observed in its dataset: the default training tracks."""
        obs = self._ds["observed"].sel(biosample=self.biosamples, assay=self.assays).values
        return observed_pairs(obs, self.biosamples, self.assays)

    def read_tracks(self, pairs, positions, variable: str = "signal") -> np.ndarray:
        """Values of ``variable`` for (biosample, assay) ``pairs`` at genome-wide ``positions``.

        Read by label from the dataset the model was given (see :func:`epitensor.store.direct.read_tracks`):
        straight from the store's chunks when it is an unmodified selection of a store, through
        xarray otherwise. Returns float32, shape (len(pairs), len(positions)).
        """
        return read_tracks(self._ds[variable], pairs, positions)

    def _index(self, labels, kind: str) -> np.ndarray:
        return label_index(self.biosamples if kind == "biosample" else self.assays, labels, kind)

    def _check_fitted(self):
        if not len(self._rows):
            raise ModelError("the model is not fitted yet; call model.fit(region=..., epochs=...) first")

    # ------------------------------------------------------------------ training
    def fit(self, region=None, epochs: int | None = None, *, tracks=None, validation_tracks=None, refit=None,
            progress: bool = True, seed: int | None = None, time_limit: float | None = None, parameters=None,
            grad_masks=None) -> pd.DataFrame:
        """Train on the observed tracks over ``region``.

        Every epoch passes once over the region's positions, each paired with one training track
        drawn at random. Calling ``fit`` again continues training; a different region starts fresh
        genome factors for it.

        Parameters
        ----------
        region : str, tuple or list of them, optional
            Training region(s), e.g. ``"chr20"`` or ``["chr1:0-1M", "chr2:5M-6M"]``; default: every
            contig of the store.
        epochs : int, optional
            Passes over the training positions (at least 1). Default 200: the paper's fixed budget,
            or, when the config validates with ``patience``, the most that validation may use.
        tracks : list of (biosample, assay), optional
            Observed tracks to train on (default: all observed tracks of the model's labels).
        validation_tracks : int or list of (biosample, assay), optional
            Tracks held out whole and scored after every epoch (``val_mse``); with ``patience`` the
            fit stops when they stop improving and keeps the best epoch. A count picks them like
            the imputation task (:func:`epitensor.model.validation.choose_validation_tracks`).
            Default: ``config.validation_tracks``. They are in ``model.validation_tracks``.
        refit : bool, optional
            After validation, train a fresh model on every track (validation tracks included) for
            the epochs validation chose (default: ``config.refit``). Worth it when the validation
            tracks are a large share of the data (e.g. 5 of 20 tracks); its imputations can no
            longer be scored on those tracks.
        progress : bool, default True
            tqdm bar over epochs.
        seed : int, optional
            Sampler seed (default: the model's seed plus the epochs already trained).
        time_limit : float, optional
            Stop after the epoch during which this many seconds have passed (a training budget; > 0).
        parameters, grad_masks : optional
            Train only these parameters / rows (see :func:`epitensor.model.training.train`).

        Every argument is checked before the model changes.

        Returns
        -------
        pandas.DataFrame
            The history of this call (``model.history`` holds every call's); with ``refit`` a
            ``phase`` column says "validation" or "refit".

        Raises
        ------
        ModelError
            Invalid arguments (``epochs`` < 1 or not an integer, ``time_limit`` <= 0, ...), a biosample
            or assay without training track, a track not observed, validation tracks that would leave
            a biosample or assay without training track, or a diverging loss (the last good weights
            are kept).
        DataError
            Empty training set or non-finite values in the training data.
        """
        epochs = check_integer(DEFAULT_EPOCHS if epochs is None else epochs, "epochs", 1)
        seed, time_limit = check_seed(seed), check_seconds(time_limit)
        rows = GenomeRows.from_regions(region if region is not None else list(self.genome.contigs), self.genome)
        if not len(rows):
            raise DataError(f"the training region {region!r} holds no positions")
        pairs = training_pairs(tracks, self.observed_tracks(), self.biosamples, self.assays)
        spec = self.config.validation_tracks if validation_tracks is None else validation_tracks
        held = resolve_validation_tracks(spec, pairs, self.seed) if parameters is None and grad_masks is None else []
        refit = bool(self.config.refit if refit is None else refit) and bool(held)
        if rows != self._rows:
            self.reset_genome_factors(rows)
        if self.config.cross_assay and parameters is None and grad_masks is None:
            self._fit_stack(pairs, rows, progress)
        self.training_tracks = [p for p in pairs if p not in set(held)]
        self.validation_tracks = held
        data = self._training_data(self.training_tracks, rows, held)
        if parameters is not None or grad_masks is not None:
            self._optimizer = None
        self.config.kernel_choice = kernel_choice(self.config, self.device).describe()
        if progress:
            print(self.config.kernel_choice)
        hist = self._train(data, epochs, seed, progress, time_limit, parameters, grad_masks)
        if held and self.config.tune_baseline_weight:
            _, kernel = resolve_options(self.config, self.device)
            self.config.baseline_weight = round(best_baseline_weight(
                self.module, data.held_out, self.config, max(self.config.batch_size, 2**16), kernel), 4)
        if not refit:
            return hist
        chosen = int(np.nanargmin(hist["val_mse"].to_numpy())) + 1 if "val_mse" in hist else len(hist)
        self.history = self.history.iloc[: len(self.history) - len(hist)]
        hist = hist.assign(phase="validation")
        self.module = self._new_module()
        self.reset_genome_factors(rows)
        self.training_tracks, self.validation_tracks = pairs, []
        again = self._train(self._training_data(pairs, rows, []), chosen, seed, progress, None)
        hist = pd.concat([hist, again.assign(phase="refit")], ignore_index=True)
        earlier = self.history.iloc[: len(self.history) - len(again)]
        self.history = pd.concat([earlier, hist], ignore_index=True) if len(earlier) else hist
        return hist

    def _train(self, data, epochs, seed, progress, time_limit, parameters=None, grad_masks=None, *,
               keep_optimizer: bool = True, stage: str | None = None) -> pd.DataFrame:
        """Run the training loop on ``data`` and append its history (also when it fails).

        ``seed`` None: the model's seed plus the epochs already trained. The optimizer is kept for the
        next call when every parameter trained (and ``keep_optimizer``); ``stage`` labels the history.
        """
        seed = seed if seed is not None else (None if self.seed is None else self.seed + len(self.history))
        try:
            hist, opt = train(self.module, data, epochs, self.config, parameters=parameters, grad_masks=grad_masks,
                              device=self.device, seed=seed, progress=progress, epoch_offset=len(self.history),
                              optimizer=self._optimizer, time_limit=time_limit)
        except ModelError as err:
            self._optimizer = None
            self._append_history(getattr(err, "history", pd.DataFrame()))
            raise
        self._optimizer = opt if keep_optimizer and parameters is None and grad_masks is None else None
        if stage is not None and len(hist):
            hist.insert(1, "stage", stage)
        self._append_history(hist)
        return hist

    def reset_optimizer(self) -> None:
        """Drop the optimizer's state: the next :meth:`fit` starts a fresh Adam (e.g. with a changed
        ``config.learning_rate``) instead of continuing the last one."""
        self._optimizer = None

    def _append_history(self, hist: pd.DataFrame) -> None:
        if len(hist):
            self.history = pd.concat([self.history, hist], ignore_index=True) if len(self.history) else hist

    def reset_genome_factors(self, rows: GenomeRows) -> None:
        """Fresh genome tables covering ``rows`` (seeded); the network and biosample/assay factors are kept."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(self.seed + 1)
            self.module.set_genome_tables(rows.n_rows)
        self._rows = rows
        self._optimizer = None

    def _fit_stack(self, pairs, rows: GenomeRows, progress: bool) -> None:
        """Fit :attr:`stack` on every observed track ``pairs`` over ``rows`` (kept when it already is)."""
        key = (sorted(pairs), rows.intervals())
        if self.stack is not None and (sorted(self.stack.tracks), self.stack.fitted_on) == key:
            return
        self.stack = CrossAssayStack.fit(self.biosamples, self.assays, pairs, self.read_tracks(pairs, rows.positions),
                                         seed=self.seed or 0, progress=progress)
        self.stack.fitted_on = rows.intervals()

    def _training_data(self, pairs, rows: GenomeRows, held=()):
        """Training tensors of ``pairs`` over ``rows``; with ``held``, those validation tracks too."""
        b, a = self.indices(pairs)
        data = training_data(self.read_tracks(pairs, rows.positions), b, a, rows.rows(rows.positions), self.config,
                             n_assays=len(self.assays), device=self.device, seed=self.seed or 0,
                             track_names=[f"{p[0]}/{p[1]}" for p in pairs],
                             validation_fraction=0.0 if held else self.config.validation_fraction)
        if held:
            positions = validation_positions(rows.positions)  # the held-out tracks at up to VALIDATION_POSITIONS
            b, a = self.indices(held)
            average = self._baseline_at(b, a, positions, without=held) if uses_average(self.config) else None
            data.held_out = held_out_tracks(self.read_tracks(held, positions), b, a, rows.rows(positions), average,
                                            self.device)
        return data


__all__ = ["DEFAULT_EPOCHS", "Avocado"]
