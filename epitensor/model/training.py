"""The training loop: device-resident data, on-device sampling, fused Adam.

The observed tracks of the training region sit in one dense ``(n_tracks, n_positions)`` tensor on
the device (float16 on CUDA, float32 on CPU). Each step draws a slice of a per-epoch permutation of
the positions, pairs every position with one training track drawn uniformly at random (the paper's
sampling), gathers targets and indices with tensor ops, and takes one Adam step. No Python runs
per sample, and no DataLoader or dask runs inside the loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..allocator import keep_freed_memory
from ..exceptions import DataError, ModelError
from .config import AvocadoConfig
from .kernels import KernelChoice, kernel_context, resolve_cpu_path
from .module import AvocadoModule
from .offsets import combine_with_average


@dataclass
class TrainingData:
    """Training tensors on the device.

    Attributes
    ----------
    values : Tensor (n_tracks, n_positions)
        Targets (the signal, or its difference from the average activity when ``residual``);
        NaN marks entries hidden for validation.
    track_biosample, track_assay : Tensor (n_tracks,), int64
        Table rows of each track's biosample and assay.
    rows : Tensor (3, n_positions), int64
        Genome table rows (25 bp, 250 bp, 5 kbp) of each position.
    val_track, val_position, val_values : Tensor, optional
        Validation entries (track, column, target), or None.
    """

    values: torch.Tensor
    track_biosample: torch.Tensor
    track_assay: torch.Tensor
    rows: torch.Tensor
    val_track: torch.Tensor | None = None
    val_position: torch.Tensor | None = None
    val_values: torch.Tensor | None = None
    held_out: HeldOutTracks | None = None

    @property
    def n_tracks(self) -> int:
        return self.values.shape[0]

    @property
    def n_positions(self) -> int:
        return self.values.shape[1]

    @property
    def has_validation(self) -> bool:
        """Whether random entries are hidden for validation (NaN in ``values``)."""
        return self.val_values is not None and self.val_values.numel() > 0

    @property
    def validating(self) -> bool:
        """Whether each epoch is scored on held-out entries or held-out whole tracks."""
        return self.has_validation or self.held_out is not None


@dataclass
class HeldOutTracks:
    """Whole observed tracks kept out of training and scored after every epoch.

    Attributes
    ----------
    values : Tensor (n_tracks, n_positions), float32
        Their signal at the scored positions.
    biosample, assay : Tensor (n_tracks,), int64
        Table rows of each track's biosample and assay.
    rows : tuple of 3 Tensors (n_positions,), int64
        Genome table rows of the scored positions.
    average : Tensor (n_tracks, n_positions) or None
        The average activity of each track's assay over the training tracks (what imputation
        adds under ``residual`` / ``baseline_weight``), or None when neither option is set.
    """

    values: torch.Tensor
    biosample: torch.Tensor
    assay: torch.Tensor
    rows: tuple
    average: torch.Tensor | None = None


def held_out_tracks(values, biosample, assay, rows, average, device) -> HeldOutTracks:
    """:class:`HeldOutTracks` on ``device`` from numpy arrays (``average`` may be None)."""
    as_long = lambda x: torch.as_tensor(np.asarray(x, dtype=np.int64), device=device)  # noqa: E731
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise DataError("a validation track holds NaN or infinite values over the training region; "
                        "choose other validation_tracks")
    return HeldOutTracks(torch.as_tensor(values, device=device), as_long(biosample), as_long(assay),
                         tuple(as_long(r) for r in rows),
                         None if average is None else torch.as_tensor(np.asarray(average, np.float32), device=device))


def build_training_data(values: np.ndarray, track_biosample, track_assay, rows, *, device, validation_fraction=0.0,
                        seed=0, track_names=None, dtype=None) -> TrainingData:
    """Check ``values`` (n_tracks, n_positions, float32) and move everything to ``device``.

    With ``validation_fraction`` > 0 a random set of entries is hidden (NaN) and kept aside.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise DataError(f"the training set is empty ({values.shape[0]} tracks x {values.shape[1] if values.ndim == 2 else 0} positions); "
                        "choose a region with positions and a store with observed tracks")
    finite = np.isfinite(values)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        names = [track_names[i] for i in bad[:5]] if track_names is not None else bad[:5].tolist()
        raise DataError(f"the training data hold NaN or infinite values in {bad.size} track(s), e.g. {names}; "
                        "observed tracks must be finite over the training region (re-ingest them or mark them unobserved)")
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    val = (None, None, None)
    if validation_fraction > 0:
        rng = np.random.default_rng(seed + 7919)
        n_val = max(1, int(round(validation_fraction * values.size)))
        flat = rng.choice(values.size, size=n_val, replace=False)
        t, p = np.unravel_index(flat, values.shape)
        val = (torch.as_tensor(t, device=device), torch.as_tensor(p, device=device),
               torch.as_tensor(values[t, p], device=device))
        values = values.copy()
        values[t, p] = np.nan
    as_long = lambda x: torch.as_tensor(np.asarray(x, dtype=np.int64), device=device)  # noqa: E731
    return TrainingData(torch.as_tensor(values).to(device=device, dtype=dtype), as_long(track_biosample),
                        as_long(track_assay), as_long(np.stack(rows)), *val)


def make_optimizer(parameters, config: AvocadoConfig, device) -> torch.optim.Optimizer:
    """Adam with the Keras defaults; fused where the device supports it, else foreach."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ModelError("nothing to train: every parameter is frozen")
    kw = dict(lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps)
    if config.fused_adam in (True, "auto"):
        try:
            return torch.optim.Adam(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            if config.fused_adam is True:
                raise
    return torch.optim.Adam(params, foreach=True, **kw)


def resolve_options(config: AvocadoConfig, device) -> tuple[bool, str]:
    """(project_first_layer, kernel path) for ``device`` from the config's "auto" settings.

    The path is a name of :data:`epitensor.model.kernels.PATHS`: on CUDA "bf16" (autocast) or
    "fp32"; on CPU the one :func:`epitensor.model.kernels.resolve_cpu_path` chooses for the
    network's widths (by measurement unless forced).
    """
    project = config.project_first_layer
    if project == "auto":  # fewer FLOPs for the same function, on CPU as on CUDA (benchmarks/bench_training.py)
        project = True
    return bool(project), kernel_choice(config, device).path


def kernel_choice(config: AvocadoConfig, device="cpu") -> KernelChoice:
    """The kernel path for this configuration on ``device`` and why (see :mod:`epitensor.model.kernels`)."""
    if torch.device(device).type != "cpu":
        bf16 = config.autocast is not False
        return KernelChoice("bf16" if bf16 else "fp32", f"{torch.device(device).type}: autocast {'on' if bf16 else 'off'}", {})
    autocast = None if config.autocast == "auto" else bool(config.autocast)
    return resolve_cpu_path(config.cpu_kernels, autocast, config.n_input, config.n_nodes, config.n_layers)


def tune_cpu_allocator() -> None:
    """Keep freed memory in the heap for CPU training (see :mod:`epitensor.allocator`).

    Each CPU training step allocates and frees tens of MB of activations; served by fresh ``mmap``
    pages, which the kernel must zero and fault in every step, steps measured up to 1.6x slower.
    Process-wide; set ``EPITENSOR_NO_MALLOPT=1`` to skip it.
    """
    keep_freed_memory(1 << 30, 1 << 31)  # blocks below 1 GiB from the heap; keep up to 2 GiB free


def batch_loss(module: AvocadoModule, data: TrainingData, columns: torch.Tensor, tracks: torch.Tensor,
               config: AvocadoConfig, project: bool, kernel: str) -> torch.Tensor:
    """Loss of one batch: MSE (NaN targets skipped) plus the optional genome-factor L2 penalty."""
    y = data.values[tracks, columns].float()
    r = data.rows[:, columns]
    with kernel_context(y.device, kernel):
        pred = module(data.track_biosample[tracks], data.track_assay[tracks], r[0], r[1], r[2], project).float()
    if data.has_validation:
        keep = torch.isfinite(y)
        err = torch.where(keep, pred - torch.nan_to_num(y), 0.0)
        loss = err.square().sum() / keep.sum().clamp_min(1)
    else:
        loss = torch.mean((pred - y).square())
    if config.genome_l2 > 0:
        tables = module.genome_tables()
        penalty = sum(t(r[i]).square().sum(dim=1) for i, t in enumerate(tables) if t.weight.requires_grad)
        if not isinstance(penalty, int):
            loss = loss + config.genome_l2 * penalty.mean()
    return loss


@torch.no_grad()
def validation_mse(module: AvocadoModule, data: TrainingData, batch_size: int, project: bool, kernel: str) -> float:
    """MSE over the validation entries."""
    total, n = 0.0, data.val_values.numel()
    for s in range(0, n, batch_size):
        t, p = data.val_track[s : s + batch_size], data.val_position[s : s + batch_size]
        r = data.rows[:, p]
        with kernel_context(p.device, kernel):
            pred = module(data.track_biosample[t], data.track_assay[t], r[0], r[1], r[2], project).float()
        total += float((pred - data.val_values[s : s + batch_size]).square().sum())
    return total / n


def held_out_mse(module: AvocadoModule, held: HeldOutTracks, config: AvocadoConfig, batch_size: int,
                 kernel: str) -> float:
    """MSE of the imputations of the held-out tracks (the network's output combined with the average
    activity exactly as :meth:`epitensor.Avocado.predict` does), averaged over tracks and positions."""
    pred = predict_pairs(module, held.biosample, held.assay, held.rows, batch_size, kernel)
    if held.average is not None:
        pred = combine_with_average(pred, held.average, config)
    return float((pred - held.values).square().mean())


def best_baseline_weight(module: AvocadoModule, held: HeldOutTracks, config: AvocadoConfig, batch_size: int,
                         kernel: str) -> float:
    """The ``baseline_weight`` in [0, 1] that minimises the held-out tracks' MSE (closed form).

    The imputation is ``(1 - w) * net + w * avg`` (``net`` includes the average under
    ``residual``), so the best ``w`` is ``<net - y, net - avg> / |net - avg|^2``, clipped to [0, 1].
    """
    if held.average is None:
        raise ModelError("choosing baseline_weight on validation tracks needs their average activity "
                         "(set baseline_weight > 0 or residual=True)")
    net = predict_pairs(module, held.biosample, held.assay, held.rows, batch_size, kernel)
    if config.residual:
        net = net + held.average
    gap = net - held.average
    denom = float(gap.square().sum())
    if denom == 0:
        return float(config.baseline_weight)
    return min(1.0, max(0.0, float(((net - held.values) * gap).sum()) / denom))


@torch.inference_mode()
def predict_pairs(module: AvocadoModule, biosample: torch.Tensor, assay: torch.Tensor, rows, batch_size: int,
                  kernel: str = "fp32") -> torch.Tensor:
    """Predictions (n_pairs, n_positions) for row-index tensors: pairs ``biosample``/``assay`` and
    genome ``rows`` (three tensors of n_positions), in pieces of about ``batch_size`` predictions."""
    n_pairs, n_pos = len(biosample), len(rows[0])
    pair_chunk = max(1, min(n_pairs, batch_size // 1024))
    pos_chunk = max(1, batch_size // pair_chunk)
    out = torch.empty((n_pairs, n_pos), dtype=torch.float32, device=biosample.device)
    for s in range(0, n_pairs, pair_chunk):
        for t in range(0, n_pos, pos_chunk):
            with kernel_context(biosample.device, kernel):
                pred = module.predict_tracks(biosample[s : s + pair_chunk], assay[s : s + pair_chunk],
                                             *(r[t : t + pos_chunk] for r in rows))
            out[s : s + pair_chunk, t : t + pos_chunk] = pred.float()
    return out


def _snapshot(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train(module: AvocadoModule, data: TrainingData, epochs: int, config: AvocadoConfig, *, parameters=None,
          grad_masks=None, device="cpu", seed: int | None = 0, progress: bool = True, epoch_offset: int = 0,
          optimizer: torch.optim.Optimizer | None = None, time_limit: float | None = None,
          ) -> tuple[pd.DataFrame, torch.optim.Optimizer]:
    """Train ``module`` on ``data`` for ``epochs`` passes over the positions.

    Parameters
    ----------
    module : AvocadoModule
        Trained in place.
    data : TrainingData
        From :func:`build_training_data`.
    epochs : int
        Passes over the training positions; each position is paired with one random track per pass.
    config : AvocadoConfig
        Batch size, optimiser, options.
    parameters : iterable of Parameter, optional
        What to train (default: every parameter that requires grad). Freeze the rest by leaving them
        out, e.g. ``module.genome_tables()`` weights only for stage-2 genome-factor fitting.
    grad_masks : dict Parameter -> bool Tensor (n_rows,), optional
        Rows of an embedding that may change; the others get zero gradient, so Adam leaves them
        bit-identical (adding biosamples/assays to a trained model in freeze mode).
    seed : int or None
        Seed of the on-device sampler.
    progress : bool
        Show a tqdm bar over epochs.
    optimizer : Optimizer, optional
        Continue with this optimiser (its state is kept across calls to ``fit``).
    time_limit : float, optional
        Stop after the epoch during which this many seconds have passed.

    Returns
    -------
    history : DataFrame
        One row per epoch: ``epoch``, ``loss`` (mean training MSE), ``val_mse`` (with validation),
        ``seconds`` (cumulative), ``samples_per_s``.
    optimizer : Optimizer

    Raises
    ------
    ModelError
        The loss became NaN or infinite; the weights of the last good epoch are restored.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    if device.type == "cpu":
        tune_cpu_allocator()
    project, kernel = resolve_options(config, device)
    params = list(parameters) if parameters is not None else [p for p in module.parameters() if p.requires_grad]
    opt = optimizer or make_optimizer(params, config, device)
    chosen = {id(p) for p in params}
    frozen = [p for p in module.parameters() if p.requires_grad and id(p) not in chosen]
    for p in frozen:  # no gradient work for what is not trained
        p.requires_grad_(False)
    hooks = [p.register_hook(lambda g, m=m: g * m.to(g.dtype)[:, None]) for p, m in (grad_masks or {}).items()]
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**62))
    n, batch = data.n_positions, config.batch_size
    steps = math.ceil(n / batch)
    records, good, best = [], _snapshot(module), (math.inf, None, 0)
    start = time.perf_counter()
    module.train()
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
    try:
        for e in bar:
            perm = torch.randperm(n, device=device, generator=gen)
            total = torch.zeros((), device=device)
            for s in range(steps):
                cols = perm[s * batch : (s + 1) * batch]
                tracks = torch.randint(data.n_tracks, (cols.numel(),), device=device, generator=gen)
                loss = batch_loss(module, data, cols, tracks, config, project, kernel)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * cols.numel()
            mean_loss = float(total) / n
            if not math.isfinite(mean_loss):
                module.load_state_dict(good)
                err = ModelError(
                    f"the training loss became {mean_loss} in epoch {epoch_offset + e + 1}; training stopped and the "
                    f"weights of epoch {epoch_offset + e} were restored. Lower learning_rate or check the data scale"
                )
                err.history = pd.DataFrame.from_records(records)
                raise err
            good = _snapshot(module)
            rec = {"epoch": epoch_offset + e + 1, "loss": mean_loss}
            if data.validating:
                rec["val_mse"] = (held_out_mse(module, data.held_out, config, max(batch, 2**16), kernel)
                                  if data.held_out is not None else validation_mse(module, data, batch, project, kernel))
                if rec["val_mse"] < best[0]:
                    best = (rec["val_mse"], good, e)
            elapsed = time.perf_counter() - start
            rec.update(seconds=elapsed, samples_per_s=n * (e + 1) / elapsed)
            records.append(rec)
            bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items() if k in ("loss", "val_mse")})
            if config.patience is not None and data.validating and e - best[2] >= config.patience:
                break
            if time_limit is not None and elapsed >= time_limit:
                break
    finally:
        for h in hooks:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)
        module.eval()
    if data.validating and config.patience is not None and best[1] is not None:
        module.load_state_dict(best[1])
    return pd.DataFrame.from_records(records), opt
