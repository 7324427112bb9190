"""The user-facing Avocado model: labels, device, training, imputation, factors and I/O.

The network itself is :class:`~epitensor.model.AvocadoModule` (tensors only); this class maps the
store's labels and genome-wide positions to table rows, loads the training data onto the device,
and returns results as labelled xarray/pandas objects.

Building blocks for stage-2 fitting and for extending a trained model:

* ``model.fitted_positions`` (:class:`GenomeRows`): which genome-wide positions the genome tables
  cover and the row of each position at 25 bp / 250 bp / 5 kbp.
* ``model.fit_genome_factors(region, epochs)``: fresh genome tables for ``region``, network and
  biosample/assay factors frozen (one 5-kbp-aligned block at a time); ``model.write_factors(path)``
  writes only the rows it covers.
* ``model.fit(..., parameters=[...], grad_masks={param: rows})``: train only some parameters, or only
  some rows of a table (others stay bit-identical); ``model.module.extend_table("biosample", n)``
  appends fresh rows; :func:`epitensor.model.training.train` is the loop on raw tensors.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..exceptions import DataError, ModelError
from ..genome import Genome
from ..genome_index import genome_index
from ..regions import as_regions, region_bins
from ..store import (
    add_track_variable,
    genome_attrs,
    label_index,
    open_dataset,
    open_group,
    precision_of,
    read_tracks,
    remove_interrupted_writes,
    store_path,
    sync_metadata,
)
from .config import AvocadoConfig, auto_preset
from .module import AvocadoModule
from .offsets import combine_with_average, leave_one_out_mean, offset_applies
from .positions import GenomeRows
from .training import (
    best_baseline_weight,
    build_training_data,
    held_out_tracks,
    kernel_choice,
    predict_pairs,
    resolve_options,
    train,
)
from .validation import resolve_validation_tracks, validation_positions

#: Epochs of ``fit`` when none are given: the paper's fixed budget, or the cap of a validated fit.
DEFAULT_EPOCHS = 200


def check_integer(value, name: str, minimum: int) -> int:
    """``value`` as an int, or ModelError unless it is an integer (not a bool) of at least ``minimum``.

    Examples
    --------
    >>> check_integer(3, "epochs", 1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seconds(value, name: str = "time_limit") -> float | None:
    """``value`` as float seconds (None stays None), or ModelError unless it is a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"{name} must be a positive number of seconds (or None for no limit), got {value!r}")
    return float(value)


def check_seed(seed) -> int | None:
    """``seed`` as an int (None stays None), or ModelError."""
    return None if seed is None else check_integer(seed, "seed", 0)


def parse_device(device="auto") -> torch.device | None:
    """The torch device named by ``device`` (None for "auto"), or ModelError for a name torch does not know."""
    if device == "auto" or device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def resolve_device(device="auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    device = parse_device(device)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return device


def _as_list(labels) -> list[str]:
    return [labels] if isinstance(labels, str) else [str(x) for x in labels]


class Avocado:
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
    >>> model.config.validation_tracks, len(model.training_tracks)  # refit on every track after validation
    (1, 8)
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
        self.biosamples = store_b if biosamples is None else _as_list(biosamples)
        self.assays = store_a if assays is None else _as_list(assays)
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
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.module = AvocadoModule(len(self.biosamples), len(self.assays), (0, 0, 0), self.config).to(self.device)

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

    # ------------------------------------------------------------------ labels
    def _index(self, labels, kind: str) -> np.ndarray:
        known = self.biosamples if kind == "biosample" else self.assays
        return label_index(known, labels, kind)

    @property
    def fitted_positions(self) -> GenomeRows:
        """The genome-wide positions that have genome factors (and their table rows)."""
        return self._rows

    def _check_fitted(self):
        if not len(self._rows):
            raise ModelError("the model is not fitted yet; call model.fit(region=..., epochs=...) first")

    # ------------------------------------------------------------------ data
    def read_tracks(self, pairs, positions, variable: str = "signal") -> np.ndarray:
        """Values of ``variable`` for (biosample, assay) ``pairs`` at genome-wide ``positions``.

        Read by label from the dataset the model was given (see :func:`epitensor.store.direct.read_tracks`):
        straight from the store's chunks when it is an unmodified selection of a store, through
        xarray otherwise. Returns float32, shape (len(pairs), len(positions)).
        """
        return read_tracks(self._ds[variable], pairs, positions)

    def _training_pairs(self, tracks) -> list[tuple[str, str]]:
        obs = self._ds["observed"].sel(biosample=self.biosamples, assay=self.assays).values
        observed = [(self.biosamples[i], self.assays[j]) for i, j in zip(*np.nonzero(obs))]
        if tracks is None:
            pairs = observed
        else:
            pairs = [(str(b), str(a)) for b, a in tracks]
            for b, a in pairs:
                self._index(b, "biosample"), self._index(a, "assay")
            missing = [p for p in pairs if p not in set(observed)]
            if missing:
                raise ModelError(f"tracks {missing[:10]} are not observed in the store, so they cannot be trained on; "
                                 "pass observed tracks only (ds.epi.tracks())")
        if not pairs:
            raise DataError("the training set is empty: no observed track among the model's biosamples and assays")
        no_b = sorted(set(self.biosamples) - {b for b, _ in pairs})
        no_a = sorted(set(self.assays) - {a for _, a in pairs})
        if no_b or no_a:
            raise ModelError(
                f"no observed training track for biosample(s) {no_b} and assay(s) {no_a}: their factors cannot be "
                "learned. Restrict the model with Avocado(ds, biosamples=[...], assays=[...]) or add tracks")
        return pairs

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
        pairs = self._training_pairs(tracks)
        spec = self.config.validation_tracks if validation_tracks is None else validation_tracks
        held = resolve_validation_tracks(spec, pairs, self.seed) if parameters is None and grad_masks is None else []
        refit = bool(self.config.refit if refit is None else refit) and bool(held)
        if rows != self._rows:
            self._set_genome(rows)
        self.training_tracks = [p for p in pairs if p not in set(held)]
        self.validation_tracks = held
        data = self._training_data(self.training_tracks, rows, held)
        if self._optimizer is None or parameters is not None or grad_masks is not None:
            self._optimizer = None
        seed = seed if seed is not None else (None if self.seed is None else self.seed + len(self.history))
        choice = kernel_choice(self.config, self.device)
        self.config.kernel_choice = choice.describe()
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
        self._fresh_module(rows)
        self.training_tracks, self.validation_tracks = pairs, []
        again = self._train(self._training_data(pairs, rows, []), chosen, seed, progress, None, None, None)
        hist = pd.concat([hist, again.assign(phase="refit")], ignore_index=True)
        earlier = self.history.iloc[: len(self.history) - len(again)]
        self.history = pd.concat([earlier, hist], ignore_index=True) if len(earlier) else hist
        return hist

    def _train(self, data, epochs, seed, progress, time_limit, parameters, grad_masks) -> pd.DataFrame:
        """Run the training loop on ``data`` and append its history (also when it fails)."""
        try:
            hist, opt = train(self.module, data, epochs, self.config, parameters=parameters, grad_masks=grad_masks,
                              device=self.device, seed=seed, progress=progress, epoch_offset=len(self.history),
                              optimizer=self._optimizer, time_limit=time_limit)
        except ModelError as err:
            self._optimizer = None
            self._append_history(getattr(err, "history", pd.DataFrame()))
            raise
        self._optimizer = opt if parameters is None and grad_masks is None else None
        self._append_history(hist)
        return hist

    def _fresh_module(self, rows: GenomeRows) -> None:
        """New network and embeddings, initialised as at construction (for ``refit``)."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(self.seed)
            self.module = AvocadoModule(len(self.biosamples), len(self.assays), (0, 0, 0), self.config).to(self.device)
        self._rows = GenomeRows([])
        self._set_genome(rows)

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
        pairs = self._training_pairs(self.training_tracks or None)
        self._set_genome(rows)
        data = self._training_data(pairs, rows)
        params = [t.weight for t in self.module.genome_tables()]
        seed = seed if seed is not None else (None if self.seed is None else self.seed + len(self.history))
        try:
            hist, _ = train(self.module, data, epochs, self.config, parameters=params, device=self.device, seed=seed,
                            progress=progress, epoch_offset=len(self.history), time_limit=time_limit)
        except ModelError as err:
            self._append_history(getattr(err, "history", pd.DataFrame()))
            raise
        self._append_history(hist)
        return hist

    def _append_history(self, hist: pd.DataFrame) -> None:
        if len(hist):
            self.history = pd.concat([self.history, hist], ignore_index=True) if len(self.history) else hist

    def _set_genome(self, rows: GenomeRows) -> None:
        """Fresh genome tables for ``rows`` (the network and biosample/assay factors are kept)."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(self.seed + 1)
            self.module.set_genome_tables(rows.n_rows)
        self._rows = rows
        self._optimizer = None

    def _training_data(self, pairs, rows: GenomeRows, held=()):
        values = self.read_tracks(pairs, rows.positions)
        b = self._index([p[0] for p in pairs], "biosample")
        a = self._index([p[1] for p in pairs], "assay")
        names = [f"{p[0]}/{p[1]}" for p in pairs]
        if self.config.residual and np.isfinite(values).all():
            values = values - leave_one_out_mean(values, a, len(self.assays))
        data = build_training_data(values, b, a, rows.rows(rows.positions), device=self.device,
                                   validation_fraction=0.0 if held else self.config.validation_fraction,
                                   seed=self.seed or 0, track_names=names)
        if held:
            data.held_out = self._held_out_data(held, rows)
        return data

    def _held_out_data(self, held, rows: GenomeRows):
        """The validation tracks at (up to :data:`VALIDATION_POSITIONS`) positions of the region."""
        positions = validation_positions(rows.positions)
        b = self._index([p[0] for p in held], "biosample")
        a = self._index([p[1] for p in held], "assay")
        average = None
        if self.config.residual or self.config.baseline_weight > 0:
            uniq, inv = np.unique(a, return_inverse=True)
            average = self._average_activity(uniq, positions)[inv]
        return held_out_tracks(self.read_tracks(held, positions), b, a, rows.rows(positions), average, self.device)

    # ------------------------------------------------------------------ prediction
    def _average_activity(self, assays_idx, positions) -> np.ndarray:
        """Mean of each assay's training tracks at ``positions``: (len(assays_idx), n)."""
        out = np.zeros((len(assays_idx), len(positions)), dtype=np.float32)
        for k, ai in enumerate(assays_idx):
            pairs = [p for p in self.training_tracks if p[1] == self.assays[ai]]
            if offset_applies(self.config, len(pairs)):
                out[k] = self.read_tracks(pairs, positions).mean(axis=0)
        return out

    @torch.inference_mode()
    def predict(self, biosample_idx, assay_idx, positions, batch_size: int | None = None) -> np.ndarray:
        """Predictions (arcsinh scale) for pairs of table rows at genome-wide positions.

        Low-level: ``biosample_idx``/``assay_idx`` are row numbers of equal length (one per pair);
        returns float32 (n_pairs, n_positions). Use :meth:`impute` for labelled results.
        """
        self._check_fitted()
        batch_size = None if batch_size is None else check_integer(batch_size, "batch_size", 1)
        positions = np.asarray(positions, dtype=np.int64)
        module, rows = self._genome_rows(positions, "imputation region")
        r = [torch.as_tensor(x, device=self.device) for x in rows]
        bi = torch.as_tensor(np.asarray(biosample_idx, dtype=np.int64), device=self.device)
        ai = torch.as_tensor(np.asarray(assay_idx, dtype=np.int64), device=self.device)
        _, kernel = resolve_options(self.config, self.device)
        self.module.eval()
        out = predict_pairs(module, bi, ai, r, batch_size or max(self.config.batch_size, 2**16), kernel).cpu().numpy()
        if self.config.residual or self.config.baseline_weight > 0:
            uniq, inv = np.unique(np.asarray(assay_idx), return_inverse=True)
            out = combine_with_average(out, self._average_activity(uniq, positions)[inv], self.config)
        return out

    def impute(self, biosample=None, assay=None, region=None, *, batch_size: int | None = None) -> xr.DataArray:
        """Imputed signal for every (biosample, assay) pair over ``region``, as a labelled DataArray.

        Parameters
        ----------
        biosample, assay : str or list of str, optional
            Labels (default: all of the model's). Every combination is imputed.
        region : str, tuple or list of them, optional
            Where (default: the fitted positions' first region). Must lie inside the fitted positions.
        batch_size : int, optional
            Predictions per forward pass.

        Returns
        -------
        xarray.DataArray
            Dims ``(biosample, assay, position)``, float32 on the arcsinh scale, with the store's
            ``position``/``chrom``/``start``/``end`` coordinates and genome attributes, named ``imputed``.

        Raises
        ------
        LabelError
            Unknown labels (the message lists the known ones).
        RegionError
            Positions without fitted genome factors.
        ModelError
            ``batch_size`` < 1, or (with ``residual``/``baseline_weight``) the store lacks training
            tracks whose average the imputations add (the message names them).

        Examples
        --------
        >>> imp = model.impute("E065", "H3K4me3", region="pilot:0-200000")  # doctest: +SKIP
        """
        self._check_fitted()
        batch_size = None if batch_size is None else check_integer(batch_size, "batch_size", 1)
        bs = self.biosamples if biosample is None else _as_list(biosample)
        as_ = self.assays if assay is None else _as_list(assay)
        b_idx, a_idx = self._index(bs, "biosample"), self._index(as_, "assay")
        self._check_offset_tracks(self._ds, as_)
        template = self._ds["signal"].isel(biosample=0, assay=0, drop=True).epi.region(self._region_or_default(region))
        positions = template["position"].values
        bb, aa = np.meshgrid(b_idx, a_idx, indexing="ij")
        pred = self.predict(bb.ravel(), aa.ravel(), positions, batch_size).reshape(len(bs), len(as_), len(positions))
        coords = {k: v for k, v in template.coords.items() if "position" in v.dims}
        coords.update(biosample=np.array(bs, dtype=object), assay=np.array(as_, dtype=object))
        attrs = {**genome_attrs(self._ds.attrs), "long_name": "imputed signal"}
        return xr.DataArray(pred, dims=("biosample", "assay", "position"), coords=coords, name="imputed", attrs=attrs)

    def _region_or_default(self, region):
        """``region``, or the first run of fitted positions as a (contig, start, end) region."""
        if region is not None:
            return region
        self._check_fitted()
        lo, hi = self._rows.intervals()[0]
        names, starts = self.genome.locate([lo])
        contig, start = str(names[0]), int(starts[0])
        return (contig, start, min(start + (hi - lo) * self.genome.bin_size, self.genome.length(contig)))

    def impute_to_store(self, path=None, biosamples=None, assays=None, region=None, *, progress: bool = True,
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
        PrecisionError
            ``imputed`` exists at another precision than ``precision``.

        Examples
        --------
        >>> model.impute_to_store(biosamples=["E065"], assays=["H3K4me3"], region="pilot")  # doctest: +SKIP
        """
        from tqdm.auto import tqdm

        from ..scale.stage2 import use_blocks

        self._check_fitted()
        bs = self.biosamples if biosamples is None else _as_list(biosamples)
        as_ = self.assays if assays is None else _as_list(assays)
        b_idx, a_idx = self._index(bs, "biosample"), self._index(as_, "assay")
        if use_blocks(self, region, client, scheduler, workers, block_size):
            return self.impute_genome(path, pairs=[(b, a) for b in bs for a in as_], region=self._region_or_default(region),
                                      block_size=block_size or "1Mb", client=client, scheduler=scheduler,
                                      workers=workers, progress=progress, precision=precision)
        # every check before the first write: labels, genome, region coverage, the tracks read
        path = store_path(self._ds) if path is None else path
        root = open_group(path, mode="r+")
        Genome.from_attrs(root.attrs).check_same(self.genome, "the store's and the model's genomes")
        sb = label_index(root["biosample"][:], bs, "biosample")
        sa = label_index(root["assay"][:], as_, "assay")
        self._check_offset_tracks(self._ds, as_)
        step = self.genome.chunk_bins
        pieces = []
        for reg in as_regions(self._region_or_default(region), self.genome):
            lo, hi = region_bins(reg, self.genome)
            self._check_covered(np.arange(lo, hi), f"region {reg}")
            cuts = [lo, *range((lo // step + 1) * step, hi, step), hi]
            pieces += list(zip(cuts[:-1], cuts[1:]))
        remove_interrupted_writes(path)  # what a killed earlier run left
        arr = add_track_variable(path, "imputed", long_name="imputed signal", exist_ok=True, precision=precision)
        sync_metadata(path)
        stored = precision_of(arr.attrs)
        bb, aa = np.meshgrid(b_idx, a_idx, indexing="ij")
        sbb, saa = np.meshgrid(sb, sa, indexing="ij")
        for lo, hi in tqdm(pieces, desc="imputing", unit="piece", disable=not progress):
            pred = self.predict(bb.ravel(), aa.ravel(), np.arange(lo, hi))
            for k, (i, j) in enumerate(zip(sbb.ravel(), saa.ravel())):
                arr[i, j, lo:hi] = stored.round(pred[k])

    # ------------------------------------------------------------------ genome scale (stage 2)
    def _genome_rows(self, positions, what: str):
        """(module, rows) for predicting at ``positions``: stage-2 factors from the store where fitted."""
        from ..scale.stage2 import resolve_genome_rows

        return resolve_genome_rows(self, positions, what)

    def _check_offset_tracks(self, ds, assays) -> None:
        """ModelError if ``ds`` lacks training tracks that imputations of ``assays`` read (average activity)."""
        from ..scale.stage2 import check_training_tracks

        check_training_tracks(ds, self.offset_tracks(assays), "imputing with this model's average-activity offset")

    def offset_tracks(self, assays=None) -> list[tuple[str, str]]:
        """The training tracks whose mean imputations of ``assays`` add (``residual``/``baseline_weight``)."""
        if not (self.config.residual or self.config.baseline_weight > 0):
            return []
        wanted = set(self.assays if assays is None else _as_list(assays))
        out = []
        for assay in wanted:
            pairs = [p for p in self.training_tracks if p[1] == assay]
            if offset_applies(self.config, len(pairs)):
                out += pairs
        return sorted(out)

    def _check_covered(self, positions, what: str) -> None:
        from ..scale.stage2 import check_covered

        check_covered(self, positions, what)

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
        from ..scale.stage2 import fit_genome

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
        from ..scale.stage2 import impute_genome

        return impute_genome(self, store, pairs, region, block_size, client=client, scheduler=scheduler,
                             workers=workers, resources=resources, device=device, torch_threads=torch_threads,
                             overwrite=overwrite, progress=progress, dry_run=dry_run, precision=precision)

    # ------------------------------------------------------------------ factors
    def factors(self, kind: str = "biosample") -> pd.DataFrame:
        """Biosample or assay factors as a DataFrame indexed by label (one column per factor).

        Examples
        --------
        >>> model.factors("assay").head()  # doctest: +SKIP
        """
        if kind not in ("biosample", "assay"):
            raise ModelError(f"kind must be 'biosample' or 'assay', got {kind!r} (genome factors: model.genome_factors(region))")
        weight = getattr(self.module, kind).weight.detach().float().cpu().numpy()
        labels = self.biosamples if kind == "biosample" else self.assays
        return pd.DataFrame(weight, index=pd.Index(labels, name=kind),
                            columns=pd.RangeIndex(weight.shape[1], name=f"factor_{kind}"))

    @torch.inference_mode()
    def genome_factors(self, region=None) -> xr.DataArray:
        """Genome factors of every bin of ``region`` at the three resolutions, as a DataArray.

        Returns
        -------
        xarray.DataArray
            Dims ``(position, factor)``: 25 + 40 + 45 factors (paper sizes) per bin; the ``resolution``
            coordinate along ``factor`` says which table each column comes from ("25bp", "250bp",
            "5kbp"); the 250 bp and 5 kbp values repeat over the bins that share their row.
        """
        self._check_fitted()
        template = self._ds["signal"].isel(biosample=0, assay=0, drop=True).epi.region(self._region_or_default(region))
        values = self.genome_factors_at(template["position"].values)
        c = self.config
        res = np.repeat(["25bp", "250bp", "5kbp"], [c.n_25bp_factors, c.n_250bp_factors, c.n_5kbp_factors])
        coords = {k: v for k, v in template.coords.items() if "position" in v.dims}
        coords.update(factor=np.arange(values.shape[1]), resolution=("factor", res.astype(object)))
        return xr.DataArray(values, dims=("position", "factor"), coords=coords, name="genome_factors",
                            attrs=genome_attrs(self._ds.attrs))

    @torch.inference_mode()
    def genome_factors_at(self, positions) -> np.ndarray:
        """Genome factor vectors at genome-wide bin numbers, as a ``(len(positions), factors)`` array.

        The columns are those of :meth:`genome_factors` (25 bp, then 250 bp, then 5 kbp factors).
        :func:`epitensor.latent.factors_at_regions` builds labelled features from it.

        Raises
        ------
        RegionError
            Positions without fitted genome factors (outside the training region and the blocks
            fitted by :meth:`fit_genome`).
        """
        self._check_fitted()
        module, rows = self._genome_rows(np.asarray(positions, dtype=np.int64), "genome factor region")
        r = [torch.as_tensor(x, device=self.device) for x in rows]
        return module.genome_features(*r).float().cpu().numpy()

    def write_factors(self, path=None) -> None:
        """Write ``biosample_factors``, ``assay_factors`` and ``genome_factors_{25bp,250bp,5kbp}`` to the store.

        Genome factors are written at genome-wide indexing (rows ``position``, ``position // 10``,
        ``position // 200``; NaN where nothing was fitted); only the fitted rows are written, so
        factors of other blocks already in the store stay.
        """
        from ..store import write_embedding, write_genome_factors

        self._check_fitted()
        path = store_path(self._ds) if path is None else path
        for kind in ("biosample", "assay"):
            write_embedding(path, kind, self.factors(kind))
        tables = [t.weight.detach().float().cpu().numpy() for t in self.module.genome_tables()]
        write_genome_factors(path, self._rows, tables)

    # ------------------------------------------------------------------ extension
    def add_biosamples(self, ds, biosamples=None, *, assays=(), tracks=None, mode: str = "freeze", epochs: int = 50,
                       progress: bool = True, seed: int | None = None, time_limit: float | None = None) -> pd.DataFrame:
        """Append new biosamples (and, with ``assays=``, new assays) to this trained model and fit them.

        ``mode="freeze"`` fits only the new rows on the training region (every existing parameter
        and imputation stays bit-identical); ``mode="fine-tune"`` then trains all parameters on the
        old and new tracks. ``epochs=0`` appends the rows at their initial values (a baseline). See
        :func:`epitensor.model.extend.extend_model` for every parameter.

        Examples
        --------
        >>> model.add_biosamples(new_ds, mode="freeze", epochs=20)          # doctest: +SKIP
        >>> model.impute(biosample="E065", assay="H3K27me3", region="pilot")  # doctest: +SKIP
        """
        from .extend import extend_model

        epochs, seed, time_limit = check_integer(epochs, "epochs", 0), check_seed(seed), check_seconds(time_limit)
        return extend_model(self, ds, biosamples=biosamples, assays=assays, tracks=tracks, mode=mode, epochs=epochs,
                            progress=progress, seed=seed, time_limit=time_limit)

    def add_assays(self, ds, assays=None, *, biosamples=(), tracks=None, mode: str = "freeze", epochs: int = 50,
                   progress: bool = True, seed: int | None = None, time_limit: float | None = None) -> pd.DataFrame:
        """Append new assays (and, with ``biosamples=``, new biosamples) to this trained model and fit them.

        See :meth:`add_biosamples` and :func:`epitensor.model.extend.extend_model`.

        Examples
        --------
        >>> model.add_assays(new_ds, mode="fine-tune", epochs=10)  # doctest: +SKIP
        """
        from .extend import extend_model

        epochs, seed, time_limit = check_integer(epochs, "epochs", 0), check_seed(seed), check_seconds(time_limit)
        return extend_model(self, ds, biosamples=biosamples, assays=assays, tracks=tracks, mode=mode, epochs=epochs,
                            progress=progress, seed=seed, time_limit=time_limit)

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> None:
        """Save to a directory: ``config.json`` (labels, genome, hyper-parameters, versions, fitted
        positions, history, and the name and SHA-256 of the weights file) and ``weights-<hash>.pt``
        (state dict).

        Crash-safe: killed at any point, the directory holds the old model or the new one (renaming
        ``config.json`` into place is the switch); the next save removes what a killed one left. Only
        the model's own files are replaced: other files in the directory stay, and a directory that
        holds other files but no model is refused (:class:`~epitensor.exceptions.ModelFileError`).

        Examples
        --------
        >>> model.save("model/")                 # doctest: +SKIP
        >>> et.Avocado.load("model/", ds)        # doctest: +SKIP
        """
        from .io import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path, ds, device="auto") -> Avocado:
        """Load a model saved with :meth:`save`, checked against the store ``ds``.

        Raises
        ------
        ModelFileError
            ``path`` is not a model, or its files are damaged: ``config.json`` not JSON or lacking keys,
            weights truncated, not matching their recorded SHA-256, or holding objects other than
            tensors (never unpickled: weights are read with ``torch.load(weights_only=True)``).
        ModelError
            The store lacks labels of the model or has another genome (the message names the difference).
        """
        from .io import load_model

        return load_model(cls, path, ds, device)

    @classmethod
    def from_reference(cls, json_path, h5_path, ds, *, region=None, transform: str = "arcsinh", device="auto",
                       seed: int | None = 0) -> Avocado:
        """Import a model of the reference Avocado (Keras): the ``NAME.json`` and ``NAME.h5`` of its ``model.save(NAME)``.

        Read with h5py (``pip install 'epitensor[reference]'``), never TensorFlow. The result is a
        fitted model like any other: it imputes the reference's predictions (float32, same function),
        saves with :meth:`save`, loads with :meth:`load`, and can be trained further. See
        :mod:`epitensor.model.reference` for how the layers and positions correspond.

        Parameters
        ----------
        json_path, h5_path : str or Path
            The reference's hyper-parameters and weights.
        ds : xarray.Dataset or path
            The store. It must hold every celltype and assay of the model (matched by name, in any
            order; the model keeps the reference's order); it may hold more.
        region : str or tuple, optional
            Where the reference's positions lie: its position ``i`` is bin ``i`` of ``region``
            (default: the store's first contig). It must start on a multiple of 5 kbp and hold at
            least ``n_genomic_positions`` bins; the model covers the first ``n_genomic_positions``.
        transform : {"arcsinh", "none"}, default "arcsinh"
            The scale of the signal the reference model was trained on (arcsinh for the published
            models); it must be the store's ``transform``, as neither network transforms its output.
        device : str, default "auto"
            As in :class:`Avocado`. Predictions stay float32 (``config.autocast=False``) on every device.
        seed : int or None, default 0
            Seed of further training.

        Raises
        ------
        ReferenceModelError
            The json is not a reference model's, or the h5 is not HDF5, lacks layers, or holds weights
            that do not fit the json (the message names the file and what is wrong).
        ModelError
            The store lacks celltypes or assays of the model, holds signal on another scale than
            ``transform``, or ``region`` does not fit its positions.

        Examples
        --------
        >>> model = et.Avocado.from_reference("avocado.json", "avocado.h5", "roadmap.zarr", region="pilot")  # doctest: +SKIP
        >>> model.impute("E065", "H3K27me3", region="pilot:0-1,000,000")                                   # doctest: +SKIP
        >>> model.save("imported-model/")                                                                  # doctest: +SKIP
        """
        from .reference import import_reference

        return import_reference(cls, json_path, h5_path, ds, region=region, transform=transform, device=device, seed=seed)


def check_compatible(model_labels: dict, genome_attrs: dict, ds: xr.Dataset) -> None:
    """Raise ModelError naming how the store ``ds`` differs from what a saved model needs."""
    for kind in ("biosample", "assay"):
        have = {str(x) for x in ds[kind].values}
        missing = [x for x in model_labels[kind] if x not in have]
        if missing:
            raise ModelError(f"the store lacks the model's {kind}(s) {missing[:20]}; load the model against the store it was "
                             "trained on (or one that has these labels)")
    try:
        Genome.from_attrs(genome_attrs).check_same(Genome.from_attrs(ds.attrs), "the model's and the store's genomes")
    except Exception as err:
        raise ModelError(str(err)) from None


__all__ = ["Avocado", "check_compatible", "check_integer", "check_seconds", "check_seed", "parse_device", "resolve_device"]
