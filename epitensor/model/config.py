"""Hyper-parameters of the Avocado model and named presets.

``paper`` is the published architecture and training (Schreiber et al. 2020, Genome Biology).
``small`` is for compendia with few biosamples per assay (e.g. the 5 x 5 Roadmap sample), where the
paper's per-position genome factors overfit; see :data:`PRESETS` for what it changes and why.
``auto`` (the default of :class:`epitensor.Avocado`) chooses one of them from the compendium and
adds validation on held-out whole tracks (:func:`auto_preset`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..exceptions import ModelError

#: The CPU kernel paths of :mod:`epitensor.model.kernels` (``cpu_kernels`` may also be "auto").
CPU_KERNEL_PATHS = ("fp32", "onednn", "bf16")


@dataclass
class AvocadoConfig:
    """Hyper-parameters of :class:`~epitensor.Avocado`.

    Attributes
    ----------
    n_biosample_factors, n_assay_factors : int, default 32, 256
        Width of the biosample and assay embeddings.
    n_25bp_factors, n_250bp_factors, n_5kbp_factors : int, default 25, 40, 45
        Width of the genome embeddings: one row per 25 bp bin, per 10 bins (250 bp) and per 200
        bins (5 kbp).
    n_layers, n_nodes : int, default 2, 2048
        Hidden Dense(ReLU) layers of the network and their width.
    batch_size : int, default 40,000
        Training samples per optimiser step.
    learning_rate, beta1, beta2, eps : float
        Adam with the Keras defaults (1e-3, 0.9, 0.999, 1e-7).
    init_scale : float, default 0.05
        Embeddings start uniform in ``[-init_scale, init_scale]`` (dense layers: Glorot uniform,
        zero bias), as in the reference.
    genome_l2 : float, default 0.0
        L2 penalty on the genome factors of each batch (mean over the batch of the squared norm
        of its rows), added to the MSE. The paper uses none.
    residual : bool, default False
        Predict the difference from the average activity (the per-bin mean of the assay over the
        training biosamples, leave-one-out for training tracks), so the network starts at the
        baseline and learns what the biosample changes. The paper does not.
    baseline_weight : float, default 0.0
        Imputations are ``(1 - w) * network + w * average activity`` (shrinkage toward the
        baseline; the network's output includes the average activity when ``residual``). Training is
        unchanged. The paper uses none.
    tune_baseline_weight : bool, default False
        After a fit with validation tracks, set ``baseline_weight`` to the value in [0, 1] that
        minimises their MSE (the network's share is chosen by evidence rather than fixed; a refit
        keeps it).
    cross_assay : bool, default False
        Blend with a cross-assay stack instead of the plain average activity
        (:mod:`epitensor.model.cross_assay`): per biosample, the average activity and a
        ChromImpute-style regressor of the biosample's own other marks, weighted as fitted on the
        training tracks. ``fit`` first trains one gradient-boosting regressor per (biosample,
        assay), so it suits small compendia (``preset="auto"`` turns it on for them); it needs
        ``baseline_weight`` > 0 or ``tune_baseline_weight`` to matter, and not ``residual``. The
        paper uses none.
    validation_fraction : float, default 0.0
        Fraction of the observed (track, position) entries of the training region hidden from
        training and used to score each epoch (``val_mse`` in the history).
    validation_tracks : int, default 0
        Observed tracks held out whole from training and scored after every epoch (``val_mse``):
        the imputation task itself, so the better guide for early stopping (see
        :mod:`epitensor.model.validation` for how they are chosen). Replaces
        ``validation_fraction`` when set. The paper uses none.
    patience : int or None, default None
        Stop when ``val_mse`` has not improved for this many epochs and restore the best weights
        (needs ``validation_fraction`` > 0 or validation tracks).
    refit : bool, default False
        After early stopping on validation tracks, train a fresh model on every track (the
        validation tracks too) for the number of epochs validation chose.
    project_first_layer : bool or "auto", default "auto"
        Use the linearity of the first Dense layer: project the biosample and assay rows of each
        distinct (biosample, assay) pair of a batch through their slice of its weights once, and
        gather the projected rows per sample as the accumulator of the genome part's matrix
        product. Same function (to float rounding), fewer FLOPs in training: the first layer then
        costs the genome factors' width per sample instead of the whole input's. "auto": on, on
        CPU and CUDA; ``False`` computes the layer on the concatenated input.
    autocast : bool or "auto", default "auto"
        bf16 autocast of the network; "auto": on for CUDA, and on CPU what ``cpu_kernels`` chooses.
        ``True`` on CPU is ``cpu_kernels="bf16"``.
    cpu_kernels : str, default "auto"
        Which matrix-multiply path runs the network on CPU: "fp32" (torch's kernels), "onednn"
        (fp32 through oneDNN) or "bf16" (autocast, fp32 master weights). "auto" measures them on
        this machine once and keeps fp32 unless another is clearly faster
        (:mod:`epitensor.model.kernels`; ``$EPITENSOR_CPU_KERNELS`` overrides "auto").
    kernel_choice : str
        The path the last fit or prediction on CPU used and why, in one line ("" before).
    fused_adam : bool or "auto", default "auto"
        Use the fused Adam kernel (much faster over the large genome tables); falls back to the
        foreach implementation where fused is unavailable.
    preset : str
        The preset these values came from ("auto" when :func:`auto_preset` chose them).
    auto_choice : str
        What ``preset="auto"`` chose and why, in one line ("" for the named presets).
    """

    n_biosample_factors: int = 32
    n_assay_factors: int = 256
    n_25bp_factors: int = 25
    n_250bp_factors: int = 40
    n_5kbp_factors: int = 45
    n_layers: int = 2
    n_nodes: int = 2048
    batch_size: int = 40_000
    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7
    init_scale: float = 0.05
    genome_l2: float = 0.0
    residual: bool = False
    baseline_weight: float = 0.0
    tune_baseline_weight: bool = False
    cross_assay: bool = False
    validation_fraction: float = 0.0
    validation_tracks: int = 0
    patience: int | None = None
    refit: bool = False
    project_first_layer: bool | str = "auto"
    autocast: bool | str = "auto"
    fused_adam: bool | str = "auto"
    cpu_kernels: str = "auto"
    kernel_choice: str = ""
    preset: str = field(default="paper")
    auto_choice: str = ""

    def __post_init__(self):
        ints = ("n_biosample_factors", "n_assay_factors", "n_25bp_factors", "n_250bp_factors",
                "n_5kbp_factors", "n_layers", "n_nodes", "batch_size")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name.endswith("factors") or name == "n_layers" else 1):
                raise ModelError(f"{name} must be a non-negative integer (batch_size, n_nodes >= 1), got {value!r}")
        if not 0.0 <= self.baseline_weight <= 1.0:
            raise ModelError(f"baseline_weight must be in [0, 1], got {self.baseline_weight}")
        if self.cross_assay and self.residual:
            raise ModelError("cross_assay blends the network's imputation with a stack of the average activity; "
                             "it cannot be combined with residual=True (choose one of them)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ModelError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if isinstance(self.validation_tracks, bool) or not isinstance(self.validation_tracks, int) or self.validation_tracks < 0:
            raise ModelError(f"validation_tracks must be a whole number >= 0, got {self.validation_tracks!r}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ModelError(f"patience must be a whole number of epochs >= 1 or None, got {self.patience!r}")
        if self.cpu_kernels not in ("auto", *CPU_KERNEL_PATHS):
            raise ModelError(f"cpu_kernels must be 'auto', 'fp32', 'onednn' or 'bf16', got {self.cpu_kernels!r}")
        if self.learning_rate <= 0 or self.genome_l2 < 0:
            raise ModelError("learning_rate must be positive and genome_l2 non-negative")

    @property
    def n_input(self) -> int:
        """Width of the concatenated embeddings (398 for the paper)."""
        return (self.n_biosample_factors + self.n_assay_factors + self.n_25bp_factors
                + self.n_250bp_factors + self.n_5kbp_factors)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AvocadoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"unknown Avocado options {unknown}; known options: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides) -> AvocadoConfig:
        """The hyper-parameters of a named preset, with ``overrides`` applied.

        Examples
        --------
        >>> AvocadoConfig.from_preset("paper", n_nodes=256).n_input
        398
        """
        if preset not in PRESETS and preset != "auto":
            raise ModelError(f"unknown preset {preset!r}; choose one of {sorted([*PRESETS, 'auto'])}")
        if preset == "auto":  # the values come from auto_preset, given as overrides (Avocado does this)
            return cls.from_dict({"preset": preset, **overrides})
        return cls.from_dict({**PRESETS[preset], "preset": preset, **overrides})


#: Named hyper-parameter sets.
#:
#: ``paper``: the published model (default).
#:
#: ``small``: for compendia with few biosamples per assay, where the paper's per-position genome
#: factors memorise the few observations of each position (the evidence, measured on the Roadmap
#: sample by benchmarks/roadmap_experiment.py, is in the notes of benchmarks/bench_training.py).
#: ``preset="auto"`` validates on whole held-out tracks rather than on random entries.
PRESETS: dict[str, dict] = {
    "paper": {},
    "small": {
        "n_25bp_factors": 8,
        "n_250bp_factors": 16,
        "n_5kbp_factors": 16,
        "n_nodes": 256,
        "batch_size": 10_000,
        "validation_fraction": 0.05,
        "patience": 3,
        "baseline_weight": 0.5,
    },
}

#: Below this many observed tracks per assay (on average), ``auto`` chooses ``small``.
FEW_TRACKS_PER_ASSAY = 10

#: At most this many (biosample, assay) pairs get ``auto``'s cross-assay stack (one regressor each).
CROSS_ASSAY_MAX_PAIRS = 100


def auto_preset(n_biosamples: int, n_assays: int, n_tracks: int) -> tuple[str, dict, str]:
    """The configuration ``preset="auto"`` chooses for a compendium, and why.

    The paper's architecture learns one genome factor vector per 25 bp bin from the tracks observed
    there; with few biosamples per assay those vectors memorise them and held-out tracks get worse
    with training (issues 4 and 13: on the 5 x 5 Roadmap sample). So:

    - fewer than :data:`FEW_TRACKS_PER_ASSAY` observed tracks per assay: the ``small`` preset
      (narrower network and genome factors), and, with at most :data:`CROSS_ASSAY_MAX_PAIRS`
      (biosample, assay) pairs, ``cross_assay``: imputations blended with the stack of the average
      activity and a cross-assay regressor (:mod:`epitensor.model.cross_assay`; one regressor per
      pair), the best imputation measured on such compendia. Larger ones blend with the average
      activity;
    - otherwise: the ``paper`` preset.

    Both validate on held-out whole tracks (``validation_tracks``: as many as the larger of the
    biosample and assay counts, at most a fifth of the tracks and at most 20) and stop when those
    stop improving (``patience``); ``small`` also chooses the network's share of its blend on them
    (``tune_baseline_weight``). Blending with the average activity, it then refits on every track for
    the chosen epochs, since its validation tracks are a large share of the data. With the stack it
    keeps the network it validated (``refit=False``): the stack already learns from every track, and
    the share was chosen for that network. A refitted one is another draw: on the Roadmap sample it
    was worse than the validated one in 2 of 4 seeds (``experiments/roadmap_seeds.py``).

    Parameters
    ----------
    n_biosamples, n_assays, n_tracks : int
        Labels of the model and observed tracks among them.

    Returns
    -------
    (preset, overrides, reason)

    Examples
    --------
    >>> auto_preset(5, 5, 20)[0], auto_preset(400, 84, 3814)[0]
    ('small', 'paper')
    >>> auto_preset(5, 5, 20)[1]["validation_tracks"], auto_preset(5, 5, 20)[1]["cross_assay"]
    (4, True)
    >>> auto_preset(5, 5, 20)[1]["refit"]  # the stack learns from every track; the network stays as validated
    False
    >>> auto_preset(6, 200, 382)[1]["cross_assay"]  # 1,200 pairs: one regressor each would take hours
    False
    """
    per_assay = n_tracks / max(n_assays, 1)
    n_val = max(1, min(max(n_biosamples, n_assays), n_tracks // 5, 20))
    facts = f"{n_tracks} observed tracks, {per_assay:.1f} per assay"
    if per_assay < FEW_TRACKS_PER_ASSAY:
        n_pairs = n_biosamples * n_assays
        stack = n_pairs <= CROSS_ASSAY_MAX_PAIRS
        overrides = {"validation_fraction": 0.0, "validation_tracks": n_val, "patience": 3, "refit": not stack,
                     "tune_baseline_weight": True, "cross_assay": stack}
        blend = (f"blends with a cross-assay stack (one regressor for each of the {n_pairs} pairs)" if stack else
                 f"blends with the average activity (a cross-assay stack would fit {n_pairs} regressors, "
                 f"> {CROSS_ASSAY_MAX_PAIRS})")
        then = "keeps the validated network" if stack else "then refits on all"
        return "small", overrides, (f"{facts} (< {FEW_TRACKS_PER_ASSAY}: the paper's per-bin genome factors overfit); "
                                    f"{blend}, stops on {n_val} held-out track(s) and chooses the blend on them, {then}")
    overrides = {"validation_tracks": n_val, "patience": 5}
    return "paper", overrides, f"{facts}: the published architecture, stopping on {n_val} held-out tracks"
