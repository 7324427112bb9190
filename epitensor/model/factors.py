"""Reading and writing a model's factors: biosample/assay tables and genome factors at any position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..exceptions import ModelError
from ..store import genome_attrs, store_path, write_embedding, write_genome_factors


class FactorsMixin:
    """:meth:`factors`, :meth:`genome_factors`, :meth:`genome_factors_at` and :meth:`write_factors` of
    :class:`~epitensor.Avocado`."""

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
        template = self._position_template(region)
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
        self._check_fitted()
        path = store_path(self._ds) if path is None else path
        for kind in ("biosample", "assay"):
            write_embedding(path, kind, self.factors(kind))
        tables = [t.weight.detach().float().cpu().numpy() for t in self.module.genome_tables()]
        write_genome_factors(path, self._rows, tables)


__all__ = ["FactorsMixin"]
