"""Imputation in memory: average activity, predictions by table rows, labelled imputations.

:class:`ImputationMixin` gives :class:`~epitensor.Avocado` :meth:`predict` and :meth:`impute`; the
numbers come from :func:`epitensor.model.prediction.predict_rows` and the average-activity offset of
:mod:`epitensor.model.offsets`, the same functions the stage-2 workers call.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..arguments import check_integer
from ..store import genome_attrs
from .data import as_labels, check_store_tracks
from .offsets import average_activity, offset_pairs, uses_average
from .prediction import predict_rows


class ImputationMixin:
    """:meth:`predict`, :meth:`impute`, :meth:`average_activity` and :meth:`offset_tracks` of
    :class:`~epitensor.Avocado`."""

    def average_activity(self, assays, positions) -> np.ndarray:
        """Mean of the training tracks of each of ``assays`` at genome-wide ``positions``: ``(len(assays), n)``.

        What imputations add under ``residual`` / ``baseline_weight`` (zeros for an assay whose
        offset does not apply, see :func:`epitensor.model.offsets.offset_applies`).
        """
        assays = as_labels(assays)
        pairs = offset_pairs(self.config, self.training_tracks, assays)
        values = self.read_tracks(pairs, positions) if pairs else np.zeros((0, len(positions)), dtype=np.float32)
        return average_activity(values, self.indices(pairs)[1], self._index(assays, "assay"), self.config)

    def _average_at(self, assay_idx, positions) -> np.ndarray:
        """The average activity of each of the table rows ``assay_idx`` (repeats allowed) at ``positions``."""
        uniq, inv = np.unique(np.asarray(assay_idx), return_inverse=True)
        return self.average_activity([self.assays[i] for i in uniq], positions)[inv]

    def _baseline_at(self, biosample_idx, assay_idx, positions, without=()) -> np.ndarray:
        """What the network's imputations of the table-row pairs are blended with: the cross-assay
        stack where :attr:`stack` has the pair (``without``: tracks that must not choose its
        weights), else the average activity."""
        average = self._average_at(assay_idx, positions)
        if self.stack is None:
            return average
        pairs = [(self.biosamples[b], self.assays[a]) for b, a in zip(np.asarray(biosample_idx), np.asarray(assay_idx))]
        stacked = self.stack.predict(pairs, positions, self.read_tracks, self.genome, without=without)
        return np.where(np.isfinite(stacked), stacked, average)

    def offset_tracks(self, assays=None) -> list[tuple[str, str]]:
        """The training tracks whose mean imputations of ``assays`` add (``residual``/``baseline_weight``)."""
        if not uses_average(self.config):
            return []
        pairs = offset_pairs(self.config, self.training_tracks, self.assays if assays is None else as_labels(assays))
        return sorted(set(pairs) | set(self.stack.tracks if self.stack is not None else ()))

    def _check_offset_tracks(self, ds, assays) -> None:
        """ModelError if ``ds`` lacks training tracks that imputations of ``assays`` read (average activity)."""
        check_store_tracks(ds, self.offset_tracks(assays), "imputing with this model's average-activity offset")

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
        self.module.eval()
        average = self._baseline_at(biosample_idx, assay_idx, positions) if uses_average(self.config) else None
        return predict_rows(module, self.config, biosample_idx, assay_idx, rows, self.device, batch_size=batch_size,
                            average=average)

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
        bs = self.biosamples if biosample is None else as_labels(biosample)
        as_ = self.assays if assay is None else as_labels(assay)
        b_idx, a_idx = self._index(bs, "biosample"), self._index(as_, "assay")
        self._check_offset_tracks(self._ds, as_)
        template = self._position_template(region)
        positions = template["position"].values
        bb, aa = np.meshgrid(b_idx, a_idx, indexing="ij")
        pred = self.predict(bb.ravel(), aa.ravel(), positions, batch_size).reshape(len(bs), len(as_), len(positions))
        coords = {k: v for k, v in template.coords.items() if "position" in v.dims}
        coords.update(biosample=np.array(bs, dtype=object), assay=np.array(as_, dtype=object))
        attrs = {**genome_attrs(self._ds.attrs), "long_name": "imputed signal"}
        return xr.DataArray(pred, dims=("biosample", "assay", "position"), coords=coords, name="imputed", attrs=attrs)

    def _position_template(self, region) -> xr.DataArray:
        """The store's positions (with their coordinates) over ``region`` or the first fitted region."""
        return self._ds["signal"].isel(biosample=0, assay=0, drop=True).epi.region(self._region_or_default(region))

    def _region_or_default(self, region):
        """``region``, or the first run of fitted positions as a (contig, start, end) region."""
        if region is not None:
            return region
        self._check_fitted()
        lo, hi = self._rows.intervals()[0]
        names, starts = self.genome.locate([lo])
        contig, start = str(names[0]), int(starts[0])
        return (contig, start, min(start + (hi - lo) * self.genome.bin_size, self.genome.length(contig)))


__all__ = ["ImputationMixin"]
