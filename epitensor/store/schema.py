"""The store's schema: its version, variables, label kinds and assay categories, and the checks of
an opened dataset against them (:func:`validate`). No I/O: see ``epitensor/store/__init__.py``
for the layout on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..exceptions import LabelError, SchemaError
from ..genome import Genome
from ..genome_index import genome_index

SCHEMA_VERSION = 1
#: Variables laid out along the genome-wide position axis, stored in (1, 1, chunk_bins) chunks.
TRACK_VARIABLES = ("signal", "imputed", "held_out")
TRANSFORMS = ("arcsinh", "none")
ASSAY_CATEGORIES = ("histone", "tf", "accessibility", "rna", "other")
_HISTONE_PREFIXES = ("H2A", "H2B", "H3", "H4")
#: Label arrays (variable-length strings) and the subgroup holding them as core-typed UTF-8 bytes.
LABEL_ARRAYS = ("biosample", "assay", "biosample_summary", "assay_category")
LABEL_BYTES_GROUP = "labels_utf8"
#: Genome factor variables ``genome_factors_<res>`` and the bins per row of each (row = position // step).
FACTOR_RESOLUTIONS = {"25bp": 1, "250bp": 10, "5kbp": 200}
#: Attributes that describe the genome (and the transform) of a store, copied onto its track variables.
GENOME_ATTRS = ("assembly", "bin_size", "chunk_bins", "contigs", "contig_lengths", "contig_first_bins", "transform")


def assay_category(assay: str) -> str:
    """Best-guess category of an assay from its ENCODE/Roadmap name.

    Examples
    --------
    >>> [assay_category(a) for a in ["H3K27ac", "ChIP-seq_CTCF_signal_p-value", "DNase-seq", "CAGE_plus"]]
    ['histone', 'tf', 'accessibility', 'rna']
    """
    name = assay.removeprefix("ChIP-seq_").upper()
    if name.startswith(_HISTONE_PREFIXES) or name.startswith("H2AFZ"):
        return "histone"
    if name.startswith(("DNASE", "ATAC", "MNASE", "FAIRE")):
        return "accessibility"
    if any(k in name for k in ("RNA-SEQ", "CAGE", "RAMPAGE", "RNA_SEQ")):
        return "rna"
    if assay.startswith("ChIP-seq_") or assay.isupper():
        return "tf"
    return "other"


def _labels(values, kind: str, meta_name: str, default) -> tuple[list[str], list[str]]:
    """Normalise labels given as a list, a mapping label -> metadata, or a DataFrame."""
    if isinstance(values, pd.DataFrame):
        if kind not in values.columns:
            raise LabelError(f"the {kind} table needs a column named {kind!r}; it has {list(values.columns)}")
        names = values[kind].astype(str).tolist()
        meta = values[meta_name].astype(str).tolist() if meta_name in values.columns else [default(n) for n in names]
    elif isinstance(values, Mapping):
        names = [str(k) for k in values]
        meta = [str(v) for v in values.values()]
    elif isinstance(values, str) or not isinstance(values, Sequence | np.ndarray | pd.Index):
        raise LabelError(f"{kind}s must be a list of names, a mapping or a DataFrame; got {type(values).__name__}")
    else:
        names = [str(v) for v in values]
        meta = [default(n) for n in names]
    if not names:
        raise LabelError(f"at least one {kind} is needed")
    dup = pd.Index(names)[pd.Index(names).duplicated()].unique().tolist()
    if dup:
        raise LabelError(f"{kind} labels must be unique; duplicated: {dup}. Merge or rename those rows.")
    if any(not n.strip() for n in names):
        raise LabelError(f"{kind} labels must be non-empty strings")
    if any("\0" in t for t in names + meta):
        raise LabelError(f"{kind} labels and their {meta_name} must not contain NUL characters ('\\0'); remove them")
    return names, meta


def _new_labels(values, kind: str) -> tuple[list[str], list[str]]:
    """Labels and metadata of new biosamples (summaries) or assays (checked categories)."""
    if kind == "biosample":
        return _labels(values, "biosample", "biosample_summary", lambda n: n)
    names, categories = _labels(values, "assay", "assay_category", assay_category)
    bad = sorted({c for c in categories if c not in ASSAY_CATEGORIES})
    if bad:
        raise LabelError(f"unknown assay categories {bad}; use one of {ASSAY_CATEGORIES}")
    return names, categories


def label_index(labels, wanted, kind: str) -> np.ndarray:
    """Integer positions of ``wanted`` labels, with an error listing the known labels."""
    index = pd.Index(np.asarray(labels, dtype=object))
    wanted_list = [wanted] if isinstance(wanted, str) else list(wanted)
    pos = index.get_indexer(wanted_list)
    if (pos < 0).any():
        unknown = [w for w, p in zip(wanted_list, pos) if p < 0]
        known = ", ".join(map(str, index[:40])) + (" ..." if len(index) > 40 else "")
        raise LabelError(f"unknown {kind}(s) {unknown}; known {kind}s: {known}")
    return pos


def genome_attrs(attrs) -> dict:
    """The genome (and transform) attributes of ``attrs`` (:data:`GENOME_ATTRS`), to copy onto a variable.

    Examples
    --------
    >>> genome_attrs({"assembly": "hg38", "bin_size": 25, "source": "c.zarr"})
    {'assembly': 'hg38', 'bin_size': 25}
    """
    return {k: attrs[k] for k in GENOME_ATTRS if k in attrs}


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check that ``ds`` follows the epitensor schema; return it unchanged.

    Raises
    ------
    SchemaError
        Naming the first broken rule and how to fix it.
    """
    problems = schema_problems(ds)
    if problems:
        raise SchemaError("dataset breaks the epitensor schema: " + "; ".join(problems))
    return ds


def schema_problems(ds) -> list[str]:
    """Every rule of the schema that ``ds`` breaks, as sentences (empty when it follows them)."""
    if not isinstance(ds, xr.Dataset):
        return [f"expected an xarray.Dataset, got {type(ds).__name__}"]
    problems = []
    if "signal" not in ds.variables:
        return ["no 'signal' variable (create stores with epitensor.create_store)"]
    sig = ds["signal"]
    if sig.dims != ("biosample", "assay", "position"):
        problems.append(f"signal must have dims (biosample, assay, position), has {sig.dims}")
    if sig.dtype != np.float32:
        problems.append(f"signal must be float32, is {sig.dtype}")
    for dim in ("biosample", "assay"):
        if dim not in ds.coords:
            problems.append(f"missing {dim!r} coordinate of labels")
        elif dim not in ds.dims:
            label = ds[dim].values.item()
            problems.append(f"{dim!r} is a scalar coordinate ({dim}={label!r}), not a dimension: keep the dimension "
                            f"by selecting with a list, ds.sel({dim}=[{label!r}]) (ds.expand_dims({dim!r}) alone leaves "
                            f"'observed' and the other coordinates without it)")
        elif not ds.indexes[dim].is_unique:
            dup = ds.indexes[dim][ds.indexes[dim].duplicated()].tolist()
            problems.append(f"{dim} labels are not unique: {dup}")
    if "observed" not in ds.variables:
        problems.append("missing the 'observed (biosample, assay)' mask")
    elif ds["observed"].dims != ("biosample", "assay") or ds["observed"].dtype != bool:
        problems.append(f"observed must be bool with dims (biosample, assay), is {ds['observed'].dtype} {ds['observed'].dims}")
    try:
        Genome.from_attrs(ds.attrs)
    except Exception as err:
        return problems + [str(err)]
    if "position" in sig.dims:
        try:
            genome_index(ds)  # positions known: an index, saved bin numbers, or the whole axis
        except SchemaError as err:
            problems.append(str(err))
    if ds.attrs.get("transform") not in TRANSFORMS:
        problems.append(f"attribute 'transform' must be one of {TRANSFORMS}, is {ds.attrs.get('transform')!r}")
    return problems
