"""Adding biosamples and assays to a trained Avocado model: freeze or fine-tune.

The ENCODE2018 paper (Table 2) adds a new biosample or assay to a pre-trained model in minutes by
fitting only its factor row, and compares that with fine-tuning everything and with retraining.

* ``mode="freeze"``: only the new rows of the biosample/assay tables train, on the observed tracks
  that involve a new label, over the model's training region (the positions whose genome factors
  live in the model). During training the old rows are a constant buffer concatenated with the new
  rows at lookup, and every other parameter has ``requires_grad=False``, so no optimiser can touch
  them: every existing parameter, and every existing imputation, is bit-identical afterwards.
  Genome factors fitted beyond the training region (stage 2) stay valid, since the network did not
  change, and the new rows are used with them genome-wide.
* ``mode="fine-tune"``: the new rows are appended and then *all* parameters train on the old
  training tracks plus the new ones over the training region. Genome factors fitted beyond the
  training region were fitted for the old network: fit them again after fine-tuning.
* Retraining from scratch stays :meth:`Avocado.fit` on a new model.

The new tracks come from a store: the model's own store grown with new labels
(:func:`epitensor.store.add_labels` then :func:`epitensor.write_track`), or another store with the
same genome, whose new labels are then appended to the model's store and whose new tracks are copied
into it, so the model keeps one store for imputation, factors and save/load.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn
from torch.nn import functional as F

from ..arguments import check_integer, check_seconds, check_seed
from ..exceptions import LabelError, ModelError, StoreNotFoundError
from ..genome import Genome
from ..store import (
    add_labels,
    label_index,
    open_dataset,
    open_group,
    read_tracks,
    store_path,
    write_track,
)
from .data import training_data

MODES = ("freeze", "fine-tune")


class _NewRowsTable(nn.Module):
    """An embedding table whose first rows are a constant buffer and whose last rows train.

    Stands in for ``nn.Embedding`` (``weight``, ``num_embeddings``, ``embedding_dim``, call) while
    only new rows are fitted.
    """

    def __init__(self, old: torch.Tensor, new: torch.Tensor):
        super().__init__()
        self.register_buffer("old", old)
        self.new = nn.Parameter(new)

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.old, self.new])

    @property
    def num_embeddings(self) -> int:
        return self.old.shape[0] + self.new.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.old.shape[1]

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return F.embedding(index, self.weight)


@contextlib.contextmanager
def only_new_rows(module: nn.Module, n_old: dict[str, int]):
    """Within the block only rows past ``n_old[kind]`` of the ``biosample``/``assay`` tables can train.

    Yields the list of trainable parameters (the new rows). Every other parameter has
    ``requires_grad=False`` and the old rows are a copy held as a buffer; on exit the tables are
    plain ``nn.Embedding`` again, old rows copied back bit for bit.
    """
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    split = {}
    for kind, n in n_old.items():
        weight = getattr(module, kind).weight.detach()
        if weight.shape[0] > n:
            split[kind] = _NewRowsTable(weight[:n].clone(), weight[n:].clone())
            setattr(module, kind, split[kind])
    try:
        yield [table.new for table in split.values()]
    finally:
        for kind, table in split.items():
            setattr(module, kind, nn.Embedding.from_pretrained(table.weight.detach().clone(), freeze=False))
        for p in trainable:
            p.requires_grad_(True)


class ExtensionMixin:
    """:meth:`add_biosamples` and :meth:`add_assays` of :class:`~epitensor.Avocado` (freeze or fine-tune)."""

    def add_biosamples(self, ds, biosamples=None, *, assays=(), tracks=None, mode: str = "freeze", epochs: int = 50,
                       progress: bool = True, seed: int | None = None, time_limit: float | None = None) -> pd.DataFrame:
        """Append new biosamples (and, with ``assays=``, new assays) to this trained model and fit them.

        ``mode="freeze"`` fits only the new rows on the training region (every existing parameter
        and imputation stays bit-identical); ``mode="fine-tune"`` then trains all parameters on the
        old and new tracks. ``epochs=0`` appends the rows at their initial values (a baseline).

        Parameters
        ----------
        ds : xarray.Dataset or path
            Store holding the new tracks: the model's store grown with the new labels, or another store
            with the same genome.
        biosamples, assays : str, list of str or None
            New labels to add, taken from ``ds``. ``None``: every label of ``ds`` the model lacks;
            ``[]``: none of that kind.
        tracks : list of (biosample, assay), optional
            Observed tracks of ``ds`` to fit on (default: every observed track of ``ds`` that involves a
            new label and whose other label the model knows or gains).
        mode : {"freeze", "fine-tune"}, default "freeze"
            Fit only the new rows (old parameters bit-identical), or train everything on old + new tracks.
        epochs : int, default 50
            Passes over the training region.
        progress : bool, default True
            tqdm bar over epochs.
        seed : int, optional
            Sampler seed (default: the model's seed plus the epochs already trained).
        time_limit : float, optional
            Stop after the epoch during which this many seconds have passed.

        Returns
        -------
        pandas.DataFrame
            The training history of this call (also appended to ``model.history``).

        Raises
        ------
        ModelError
            The model was never trained, an unknown mode, a new label without observed track, a track
            that cannot be used, or a track that would overwrite one of the model's store.
        LabelError
            A label the model already has, or a label ``ds`` lacks.
        GenomeError
            ``ds`` has another genome than the model.

        Examples
        --------
        >>> model.add_biosamples(new_ds, mode="freeze", epochs=20)          # doctest: +SKIP
        >>> model.impute(biosample="E065", assay="H3K27me3", region="pilot")  # doctest: +SKIP
        """
        return self._extend(ds, biosamples, assays, tracks, mode, epochs, progress, seed, time_limit)

    def add_assays(self, ds, assays=None, *, biosamples=(), tracks=None, mode: str = "freeze", epochs: int = 50,
                   progress: bool = True, seed: int | None = None, time_limit: float | None = None) -> pd.DataFrame:
        """Append new assays (and, with ``biosamples=``, new biosamples) to this trained model and fit them.

        The parameters are those of :meth:`add_biosamples`.

        Examples
        --------
        >>> model.add_assays(new_ds, mode="fine-tune", epochs=10)  # doctest: +SKIP
        """
        return self._extend(ds, biosamples, assays, tracks, mode, epochs, progress, seed, time_limit)

    def _extend(self, ds, biosamples, assays, tracks, mode, epochs, progress, seed, time_limit) -> pd.DataFrame:
        """Append the new labels' rows and fit them (the work of :meth:`add_biosamples` / :meth:`add_assays`)."""
        epochs, seed, time_limit = check_integer(epochs, "epochs", 0), check_seed(seed), check_seconds(time_limit)
        if self.stack is not None:
            raise ModelError("this model blends with a cross-assay stack fitted on its own labels (config.cross_assay, "
                             "which preset='auto' turns on for small compendia), which new biosamples or assays would "
                             "not have; fit a new et.Avocado on the combined store instead")
        if mode not in MODES:
            raise ModelError(f"mode must be one of {MODES}, got {mode!r} (to retrain from scratch, fit a new Avocado)")
        if not len(self.fitted_positions):
            raise ModelError("cannot add biosamples or assays to a model that was never trained; train it first with "
                             "model.fit(region=..., epochs=...), or fit a new model on every track")
        source = ds if isinstance(ds, xr.Dataset) else open_dataset(ds)
        Genome.from_attrs(source.attrs).check_same(self.genome, "the genome of the new tracks' store and the model's genome")
        new_b = _new_labels(self.biosamples, source, biosamples, "biosample")
        new_a = _new_labels(self.assays, source, assays, "assay")
        if not new_b and not new_a:
            raise LabelError(f"nothing to add: the store {_describe(source)} has no biosample or assay the model lacks; "
                             "labels are appended, so new tracks need new labels")
        pairs = _new_tracks(self, source, new_b, new_a, tracks)
        self._ds = _bring_into_model_store(self.dataset, source, new_b, new_a, pairs, self.genome)
        n_old = {"biosample": len(self.biosamples), "assay": len(self.assays)}
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(self.seed + 2 + len(self.history))
            self.module.extend_table("biosample", len(new_b))
            self.module.extend_table("assay", len(new_a))
        self.biosamples = [*self.biosamples, *new_b]
        self.assays = [*self.assays, *new_a]
        self._optimizer = None
        old_tracks = list(self.training_tracks)
        data_pairs = pairs if mode == "freeze" else [*old_tracks, *pairs]
        try:
            data = self._extension_data(data_pairs, old_tracks, residual_loo=mode == "fine-tune")
        except Exception:  # e.g. non-finite values: leave the model as it was
            self._drop_new_rows(n_old)
            raise
        # the average activity of old assays keeps its tracks under freeze (old imputations stay identical);
        # a new assay's average activity is that of its new tracks
        self.training_tracks = data_pairs if mode == "fine-tune" else [*old_tracks, *[p for p in pairs if p[1] in new_a]]
        stage = f"add ({mode})"
        if mode == "fine-tune":
            return self._train(data, epochs, seed, progress, time_limit, keep_optimizer=False, stage=stage)
        with only_new_rows(self.module, n_old) as params:
            return self._train(data, epochs, seed, progress, time_limit, params, stage=stage)

    def _drop_new_rows(self, n_old: dict[str, int]) -> None:
        """Undo the label and table growth of a failed extension (old rows are kept bit for bit)."""
        self.biosamples = self.biosamples[: n_old["biosample"]]
        self.assays = self.assays[: n_old["assay"]]
        for kind, n in n_old.items():
            weight = getattr(self.module, kind).weight.detach()[:n].clone()
            setattr(self.module, kind, nn.Embedding.from_pretrained(weight, freeze=False))

    def _extension_data(self, pairs, baseline_tracks, residual_loo: bool):
        """Training tensors of ``pairs`` over the training region, rows of the model's genome tables.

        With a residual config the targets are differences from the average activity: leave-one-out
        over ``pairs`` (``residual_loo``, as :meth:`fit` does), or, for tracks of assays the model
        already had, the mean of that assay's ``baseline_tracks`` (what imputation adds back).
        """
        positions = self.fitted_positions.positions
        values = self.read_tracks(pairs, positions)
        b, a = self.indices(pairs)
        known = None
        if self.config.residual and not residual_loo:
            old = np.array([p[1] in {t[1] for t in baseline_tracks} for p in pairs])
            if old.any():
                uniq, inv = np.unique(a[old], return_inverse=True)
                known = (old, self.average_activity([self.assays[i] for i in uniq], positions)[inv])
        return training_data(values, b, a, self.fitted_positions.rows(positions), self.config, n_assays=len(self.assays),
                             device=self.device, seed=self.seed or 0, track_names=[f"{p[0]}/{p[1]}" for p in pairs],
                             validation_fraction=self.config.validation_fraction, known_average=known)


# ---------------------------------------------------------------------- labels and tracks
def _describe(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("source", "(in memory)"))


def _new_labels(known: list[str], source: xr.Dataset, wanted, kind: str) -> list[str]:
    have = [str(x) for x in source[kind].values]
    if wanted is None:
        return [x for x in have if x not in set(known)]
    wanted = [wanted] if isinstance(wanted, str) else [str(x) for x in wanted]
    label_index(have, wanted, kind)
    existing = [x for x in wanted if x in set(known)]
    if existing:
        raise LabelError(f"the model already has {kind}(s) {existing}; labels are appended, so a new {kind} needs a new "
                         f"name (to train more on an existing one, use model.fit)")
    dup = sorted({x for x in wanted if wanted.count(x) > 1})
    if dup:
        raise LabelError(f"{kind}(s) {dup} are given more than once")
    return wanted


def _new_tracks(model, source: xr.Dataset, new_b: list[str], new_a: list[str], tracks) -> list[tuple[str, str]]:
    """Observed tracks of ``source`` that involve a new label and whose labels the extended model has."""
    all_b, all_a = {*model.biosamples, *new_b}, {*model.assays, *new_a}
    obs = source["observed"]
    sb, sa = [str(x) for x in source.biosample.values], [str(x) for x in source.assay.values]
    usable = [(sb[i], sa[j]) for i, j in zip(*np.nonzero(obs.values))
              if sb[i] in all_b and sa[j] in all_a and (sb[i] in new_b or sa[j] in new_a)]
    if tracks is None:
        pairs = usable
    else:
        pairs = [(str(b), str(a)) for b, a in tracks]
        bad = [p for p in pairs if p not in set(usable)]
        if bad:
            raise ModelError(f"tracks {bad[:10]} cannot be used to add {new_b + new_a}: a track must be observed in "
                             f"{_describe(source)}, involve a new label, and its other label must be one the model "
                             f"knows; usable tracks: {usable[:20]}")
    for kind, labels, k in (("biosample", new_b, 0), ("assay", new_a, 1)):
        lacking = [x for x in labels if not any(p[k] == x for p in pairs)]
        if lacking:
            raise ModelError(f"new {kind}(s) {lacking} have no observed track in {_describe(source)} to fit on (with the "
                             f"model's assays {model.assays[:20]} and biosamples {model.biosamples[:20]} plus the new ones); "
                             f"write at least one of their tracks into the store first")
    return pairs


def _same_store(a: xr.Dataset, b: xr.Dataset) -> bool:
    try:
        return store_path(a).resolve() == store_path(b).resolve()
    except StoreNotFoundError:
        return a is b


def _bring_into_model_store(own: xr.Dataset, source: xr.Dataset, new_b, new_a, pairs, genome: Genome) -> xr.Dataset:
    """The model's dataset ``own`` after extension: ``source`` itself when it is the model's (grown) store;
    otherwise the model's store with the new labels appended and the new tracks copied into it."""
    if _same_store(own, source):
        return source
    try:
        path = store_path(own)
    except StoreNotFoundError:
        raise ModelError("the model's dataset is not a store on disk, so the new labels cannot be added to it; build "
                         "the model on a store (epitensor.open_dataset(path))") from None
    root = open_group(path, mode="r+")
    have_b, have_a = set(root["biosample"][:].tolist()), set(root["assay"][:].tolist())
    observed = own["observed"]
    clash = [p for p in pairs if p[0] in have_b and p[1] in have_a
             and bool(observed.sel(biosample=p[0], assay=p[1]))]
    if clash:
        raise ModelError(f"the model's store {path} already holds tracks {clash[:10]}; add them from that store "
                         f"(model.add_biosamples({str(path)!r}, ...)) instead of from {_describe(source)}")
    add_b = {b: str(source.biosample_summary.sel(biosample=b).values) for b in new_b if b not in have_b}
    add_a = {a: str(source.assay_category.sel(assay=a).values) for a in new_a if a not in have_a}
    if add_b or add_a:
        add_labels(path, biosamples=add_b or None, assays=add_a or None)
    _copy_tracks(source, path, pairs, genome)
    return open_dataset(path)


def _copy_tracks(source: xr.Dataset, path: Path, pairs, genome: Genome) -> None:
    """Copy the ``signal`` of ``pairs`` from ``source`` (by label) into the store ``path``, contig by contig."""
    for b, a in pairs:
        for contig in genome.contigs:
            lo, hi = genome.contig_bins(contig)
            write_track(path, b, a, read_tracks(source["signal"], [(b, a)], range(lo, hi))[0], contig)


__all__ = ["MODES", "ExtensionMixin", "only_new_rows"]
