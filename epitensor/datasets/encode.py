"""Readers for the ENCODE2018 experiment lists of the Avocado paper.

The lists (``ENCODE2018Core.tsv``, ``ENCODE2018Sparse.tsv``) have columns ``Biosample Index,
Biosample, Biosample summary, Assay, Accession, Download URL`` (URL relative to the ENCODE portal).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import LabelError
from ..store import assay_category

ENCODE_PORTAL = "https://www.encodeproject.org"
_REQUIRED = ("Biosample Index", "Biosample", "Biosample summary", "Assay", "Download URL")
_SUFFIXES = ("_signal_p-value", "_signal_of_all_reads", "_read-depth_normalized_signal")


def short_assay_name(assay: str) -> str:
    """Readable assay label from an ENCODE2018 assay name.

    Examples
    --------
    >>> short_assay_name("ChIP-seq_H3K27ac_signal_p-value")
    'H3K27ac'
    >>> short_assay_name("polyA_RNA-seq_plus_strand_signal_of_all_reads")
    'polyA_RNA-seq_plus_strand'
    """
    name = assay.removeprefix("ChIP-seq_")
    for suffix in _SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def read_encode_experiments(path, short_names: bool = True) -> pd.DataFrame:
    """Read an ENCODE2018 experiment list into a tidy table.

    Parameters
    ----------
    path : str or Path
        ``ENCODE2018Core.tsv`` or ``ENCODE2018Sparse.tsv`` (tab-separated).
    short_names : bool, default True
        Label assays ``H3K27ac`` rather than ``ChIP-seq_H3K27ac_signal_p-value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``biosample`` (the unique biosample summary), ``assay``, ``biosample_summary``
        (biosample term and index), ``assay_category``, ``accession``, ``url`` (absolute), ``encode_assay``.

    Examples
    --------
    >>> table = read_encode_experiments("ENCODE2018Core.tsv")          # doctest: +SKIP
    >>> table.groupby("assay_category").size()                          # doctest: +SKIP
    """
    raw = pd.read_csv(path, sep="\t", dtype=str)
    missing = [c for c in _REQUIRED if c not in raw.columns]
    accession = next((c for c in raw.columns if re.fullmatch(r"Accession.*", c)), None)
    if missing or accession is None:
        raise LabelError(
            f"{path} is not an ENCODE2018 experiment list: missing columns {missing + ([] if accession else ['Accession'])}; "
            f"it has {list(raw.columns)}"
        )
    assay = raw["Assay"].map(short_assay_name) if short_names else raw["Assay"]
    table = pd.DataFrame(
        {
            "biosample": raw["Biosample summary"].str.strip(),
            "assay": assay,
            "biosample_summary": raw["Biosample"].str.strip() + " (" + raw["Biosample Index"] + ")",
            "assay_category": raw["Assay"].map(assay_category),
            "accession": raw[accession],
            "url": ENCODE_PORTAL + raw["Download URL"],
            "encode_assay": raw["Assay"],
        }
    )
    dup = table.duplicated(["biosample", "assay"])
    if dup.any():
        raise LabelError(f"{path} lists some (biosample, assay) pairs twice: {table.loc[dup, ['biosample', 'assay']].head().values.tolist()}")
    return table


def experiment_mask(table: pd.DataFrame) -> xr.DataArray:
    """The (biosample, assay) observed mask of an experiment table, with label metadata.

    Biosamples and assays keep the order of first appearance.

    Examples
    --------
    >>> mask = experiment_mask(read_encode_experiments("ENCODE2018Core.tsv"))  # doctest: +SKIP
    >>> mask.shape, round(1 - float(mask.mean()), 3)                            # doctest: +SKIP
    ((400, 84), 0.886)
    """
    biosamples = pd.unique(table["biosample"])
    assays = pd.unique(table["assay"])
    mask = np.zeros((len(biosamples), len(assays)), dtype=bool)
    b = pd.Index(biosamples).get_indexer(table["biosample"])
    a = pd.Index(assays).get_indexer(table["assay"])
    mask[b, a] = True
    first = table.drop_duplicates("biosample").set_index("biosample")
    cats = table.drop_duplicates("assay").set_index("assay")
    return xr.DataArray(
        mask,
        dims=("biosample", "assay"),
        coords={
            "biosample": np.array(biosamples, dtype=object),
            "assay": np.array(assays, dtype=object),
            "biosample_summary": ("biosample", first.loc[biosamples, "biosample_summary"].to_numpy(dtype=object)),
            "assay_category": ("assay", cats.loc[assays, "assay_category"].to_numpy(dtype=object)),
        },
        name="observed",
    )
