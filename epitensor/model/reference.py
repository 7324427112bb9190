"""Import a model of the reference Avocado (Keras): ``NAME.json`` + ``NAME.h5`` from its ``model.save(NAME)``.

The reference (``avocado-epigenome``, Schreiber et al.) writes the hyper-parameters to ``NAME.json``
(``celltypes``, ``assays``, ``experiments``, ``n_celltype_factors``, ``n_assay_factors``,
``n_genomic_positions``, ``n_25bp_factors``, ``n_250bp_factors``, ``n_5kbp_factors``, ``n_layers``,
``n_nodes``, ``batch_size``) and the whole Keras model to ``NAME.h5``. Both are read here with
``json`` and ``h5py`` only (no TensorFlow): ``pip install 'epitensor[reference]'``.

How the two networks correspond (checked against the architecture ``NAME.h5`` records):

* ``celltype_embedding`` -> ``module.biosample`` and ``assay_embedding`` -> ``module.assay``, row
  for row in the order of the json's ``celltypes`` / ``assays``; the imported model keeps that
  order and finds each label in the store by name (the store may order them differently and hold
  more labels).
* ``genome_25bp_embedding``, ``genome_250bp_embedding``, ``genome_5kbp_embedding`` ->
  ``module.genome_25bp``, ``genome_250bp``, ``genome_5kbp``. The reference looks up row ``i``,
  ``i // 10`` and ``i // 200`` for its position ``i`` (0 .. n - 1); its two coarse tables have
  ``int(n / 10) + 1`` and ``int(n / 200) + 1`` rows, of which the first ``ceil(n / 10)`` and
  ``ceil(n / 200)`` are used (an unused last row is dropped).
* ``dense_0`` .. ``dense_{n_layers-1}`` (ReLU) -> ``module.hidden`` and ``y_pred`` (linear) ->
  ``module.output``; Keras kernels are (in, out), torch weights (out, in). Both concatenate the
  embeddings in the order celltype, assay, 25 bp, 250 bp, 5 kbp, and neither transforms the output:
  imputations are on the scale the reference was trained on, ``transform`` (arcsinh for the published
  models and the reference's data files), which must be the store's ``transform`` attribute.

Genome positions: the reference indexes one chromosome, or the concatenated pilot regions, from 0.
Its position ``i`` becomes the store's bin ``first + i``, where ``first`` is the first bin of
``region`` (default: the store's first contig). ``region`` must start on a multiple of 5 kbp (200
bins) of the genome-wide axis, so that the reference's ``i // 10`` and ``i // 200`` rows are the ones
epitensor computes from ``(first + i) // 10`` and ``// 200``, and must hold at least
``n_genomic_positions`` bins; the imported model covers exactly those ``n_genomic_positions`` bins
(``model.fitted_positions``).

Examples
--------
>>> model = et.Avocado.from_reference("avocado.json", "avocado.h5", "roadmap.zarr", region="pilot")  # doctest: +SKIP
>>> model.impute("E065", "H3K27me3", region="pilot:0-1,000,000")                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..exceptions import ModelError, ReferenceModelError
from ..genome_index import genome_index
from ..regions import as_regions, region_bins
from ..store import TRANSFORMS, open_dataset
from .positions import RESOLUTIONS, GenomeRows

#: Integer hyper-parameters of the reference json and the AvocadoConfig field each one sets.
HYPER_PARAMETERS = {
    "n_celltype_factors": "n_biosample_factors",
    "n_assay_factors": "n_assay_factors",
    "n_25bp_factors": "n_25bp_factors",
    "n_250bp_factors": "n_250bp_factors",
    "n_5kbp_factors": "n_5kbp_factors",
    "n_layers": "n_layers",
    "n_nodes": "n_nodes",
    "batch_size": "batch_size",
}
#: The reference's embedding layers, in the order its network concatenates them, and the module table of each.
EMBEDDINGS = {
    "celltype_embedding": "biosample",
    "assay_embedding": "assay",
    "genome_25bp_embedding": "genome_25bp",
    "genome_250bp_embedding": "genome_250bp",
    "genome_5kbp_embedding": "genome_5kbp",
}


def read_reference_config(json_path) -> dict:
    """The hyper-parameters of a reference model from its ``NAME.json``, checked.

    Returns
    -------
    dict
        ``celltypes``, ``assays`` (lists of str), ``experiments`` (list of (celltype, assay); empty
        when the json has none), ``n_genomic_positions`` and the integers of :data:`HYPER_PARAMETERS`.

    Raises
    ------
    ReferenceModelError
        The file is missing, not JSON, or not a reference model's json (a key missing, labels not a
        list of unique names, a size not a positive integer); the message names the file and the key.

    Examples
    --------
    >>> read_reference_config("avocado.json")["n_genomic_positions"]  # doctest: +SKIP
    1126469
    """
    path = Path(json_path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceModelError(f"{path} does not exist; pass the NAME.json the reference's model.save(NAME) wrote") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReferenceModelError(f"{path} is not valid JSON ({err}); pass the NAME.json the reference's "
                                  "model.save(NAME) wrote") from None
    if isinstance(meta, dict) and meta.get("format") == "epitensor-avocado":
        raise ReferenceModelError(f"{path} is an epitensor model's config.json, not a reference Avocado model; "
                                  "load it with epitensor.Avocado.load(its directory, store)")
    required = ["celltypes", "assays", "n_genomic_positions", *HYPER_PARAMETERS]
    missing = [k for k in required if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ReferenceModelError(f"{path} is not a reference Avocado model's json: it lacks {missing}; pass the "
                                  "NAME.json the reference's model.save(NAME) wrote")
    out = {}
    for key in ("celltypes", "assays"):
        labels = meta[key]
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
                and len(set(labels)) == len(labels)):
            raise ReferenceModelError(f"{path}: \"{key}\" must be a non-empty list of unique names, got {labels!r:.200}")
        out[key] = labels
    for key in ("n_genomic_positions", *HYPER_PARAMETERS):
        value = meta[key]
        low = 0 if key == "n_layers" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ReferenceModelError(f"{path}: \"{key}\" must be an integer >= {low}, got {value!r}")
        out[key] = value
    experiments = meta.get("experiments") or []
    if not (isinstance(experiments, list) and all(isinstance(e, list) and len(e) == 2 and e[0] in out["celltypes"]
                                                  and e[1] in out["assays"] for e in experiments)):
        raise ReferenceModelError(f"{path}: \"experiments\" must list [celltype, assay] pairs of its celltypes and "
                                  f"assays, got {experiments!r:.200}")
    out["experiments"] = [(str(c), str(a)) for c, a in experiments]
    return out


def reference_shapes(ref: dict) -> dict[str, list[tuple[int, ...]]]:
    """The weight shapes a reference model with hyper-parameters ``ref`` has, by Keras layer name.

    Examples
    --------
    >>> ref = {"celltypes": ["a", "b"], "assays": ["x"], "n_genomic_positions": 4_010, "n_celltype_factors": 4,
    ...        "n_assay_factors": 8, "n_25bp_factors": 5, "n_250bp_factors": 6, "n_5kbp_factors": 7,
    ...        "n_layers": 1, "n_nodes": 16, "batch_size": 1_000}
    >>> reference_shapes(ref)["genome_250bp_embedding"], reference_shapes(ref)["dense_0"]
    ([(402, 6)], [(30, 16), (16,)])
    """
    n = ref["n_genomic_positions"]
    shapes = {
        "celltype_embedding": [(len(ref["celltypes"]), ref["n_celltype_factors"])],
        "assay_embedding": [(len(ref["assays"]), ref["n_assay_factors"])],
        "genome_25bp_embedding": [(n, ref["n_25bp_factors"])],
        "genome_250bp_embedding": [(int(n / 10) + 1, ref["n_250bp_factors"])],
        "genome_5kbp_embedding": [(int(n / 200) + 1, ref["n_5kbp_factors"])],
    }
    width = sum(ref[k] for k in ("n_celltype_factors", "n_assay_factors", "n_25bp_factors", "n_250bp_factors",
                                 "n_5kbp_factors"))
    for i in range(ref["n_layers"]):
        shapes[f"dense_{i}"] = [(width, ref["n_nodes"]), (ref["n_nodes"],)]
        width = ref["n_nodes"]
    shapes["y_pred"] = [(width, 1), (1,)]
    return shapes


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ModelError("importing a reference Avocado model needs h5py: pip install 'epitensor[reference]'") from None
    return h5py


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _layer_weights(group, name: str) -> list[np.ndarray]:
    """The arrays of layer ``name`` in a Keras weights group, in the order of its ``weight_names``."""
    layer = group[name]
    names = [_text(w) for w in layer.attrs.get("weight_names", [])]
    return [np.asarray(layer[w], dtype=np.float32) for w in names]


def _check_architecture(path: Path, model_config, n_layers: int) -> None:
    """Refuse a Keras architecture other than the reference's: Dense activations, concatenation order."""
    try:
        layers = {layer["name"]: layer for layer in json.loads(_text(model_config))["config"]["layers"]}
        activations = {name: layers[name]["config"].get("activation") for name in
                       [*(f"dense_{i}" for i in range(n_layers)), "y_pred"] if name in layers}

        def source(name):  # the layer feeding ``name`` (Keras 2 inbound_nodes: [[[layer, node, tensor, kwargs]]])
            return layers[name]["inbound_nodes"][0]

        concat = next(n for n, layer in layers.items() if layer["class_name"] == "Concatenate")
        order = [source(flat[0])[0][0] for flat in source(concat)]
    except (KeyError, IndexError, TypeError, StopIteration, json.JSONDecodeError, AttributeError):
        raise ReferenceModelError(f"{path} does not hold the reference Avocado network (its model_config lacks the "
                                  "embeddings -> Concatenate -> Dense layers the reference builds)") from None
    wrong = {k: v for k, v in activations.items() if v != ("linear" if k == "y_pred" else "relu")}
    if wrong:
        raise ReferenceModelError(f"{path}: layers {wrong} have activations other than the reference's (ReLU "
                                  "hidden layers, linear y_pred)")
    if order != list(EMBEDDINGS):
        raise ReferenceModelError(f"{path} concatenates the embeddings in the order {order}, not the reference's "
                                  f"{list(EMBEDDINGS)}")


def read_reference_weights(h5_path, ref: dict) -> dict[str, list[np.ndarray]]:
    """The Keras weights of a reference model, by layer name, checked against its hyper-parameters.

    Reads a whole-model file (``model.save``: weights under ``model_weights``, architecture in
    ``model_config``, which is checked too) or a weights-only file (``save_weights``) with h5py.

    Raises
    ------
    ReferenceModelError
        Not an HDF5 file, layers missing, or weights whose shapes differ from what the json's
        hyper-parameters give (the message names the file, the layers and the shapes).

    Examples
    --------
    >>> ref = read_reference_config("avocado.json")                 # doctest: +SKIP
    >>> read_reference_weights("avocado.h5", ref)["dense_0"][0].shape  # doctest: +SKIP
    (398, 2048)
    """
    h5py = _h5py()
    path = Path(h5_path)
    if not path.is_file():
        raise ReferenceModelError(f"{path} does not exist; pass the NAME.h5 the reference's model.save(NAME) wrote")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ReferenceModelError(f"{path} is not a readable HDF5 file ({err}); pass the NAME.h5 the reference's "
                                  "model.save(NAME) wrote") from None
    expected = reference_shapes(ref)
    with f:
        group = f["model_weights"] if "model_weights" in f else f
        missing = [name for name in expected if name not in group]
        if missing:
            raise ReferenceModelError(f"{path} lacks the layer(s) {missing} of the reference model its json describes "
                                      f"(it has {sorted(group)[:30]}); pass the NAME.h5 saved with that NAME.json")
        if "model_config" in f.attrs:
            _check_architecture(path, f.attrs["model_config"], ref["n_layers"])
        weights = {}
        for name, shapes in expected.items():
            try:
                arrays = _layer_weights(group, name)
            except (KeyError, TypeError, ValueError) as err:
                raise ReferenceModelError(f"{path}: the weights of layer {name!r} cannot be read ({err}); the file "
                                          "is damaged or not a reference model's") from None
            got = [a.shape for a in arrays]
            if got != shapes:
                raise ReferenceModelError(f"{path}: layer {name!r} has weights of shapes {got}, but the json's "
                                          f"hyper-parameters give {shapes}; pass the NAME.h5 saved with that NAME.json")
            weights[name] = arrays
    return weights


def reference_rows(genome, region, n_positions: int, json_path) -> GenomeRows:
    """The store positions of the reference's positions ``0 .. n_positions - 1``: the first bins of ``region``.

    Parameters
    ----------
    genome : Genome
        The store's genome.
    region : str or tuple, optional
        One region whose first bin is the reference's position 0 (default: the first contig).

    Raises
    ------
    ModelError
        Several regions, a start that is not a multiple of 200 bins (5 kbp) of the genome-wide axis,
        or a region with fewer than ``n_positions`` bins.

    Examples
    --------
    >>> from epitensor import Genome
    >>> reference_rows(Genome.single_contig("pilot", 5_000), None, 4_010, "tiny.json").n_rows
    (4010, 401, 21)
    """
    spec = genome.contigs[0] if region is None else region
    regions = as_regions(spec, genome)
    if len(regions) != 1:
        raise ModelError(f"region {spec!r} names {len(regions)} regions; a reference model indexes one run of "
                         "positions from 0: pass one region (a contig, or contig:start-end)")
    lo, hi = region_bins(regions[0], genome)
    step = RESOLUTIONS["5kbp"]
    if lo % step:
        raise ModelError(f"region {regions[0]} starts at genome-wide bin {lo:,}, not a multiple of {step} bins "
                         f"({step * genome.bin_size:,} bp): the reference's 250 bp and 5 kbp rows (position // 10, "
                         "// 200) would not line up with the store's; start the region on a multiple of 5 kbp")
    if hi - lo < n_positions:
        raise ModelError(f"{json_path} models {n_positions:,} genomic positions, but region {regions[0]} of the store "
                         f"holds only {hi - lo:,} bins; import into a region (region=...) of at least {n_positions:,} "
                         "bins: the reference's position i is the region's bin i")
    return GenomeRows(np.arange(lo, lo + n_positions, dtype=np.int64))


def _check_store(ref: dict, ds: xr.Dataset, json_path, transform: str) -> None:
    """ModelError unless the store has the model's labels and holds signal on the model's scale."""
    store = ds.attrs.get("source", "(in memory)")
    for kind, key in (("biosample", "celltypes"), ("assay", "assays")):
        have = {str(x) for x in ds[kind].values}
        missing = [x for x in ref[key] if x not in have]
        if missing:
            raise ModelError(f"the store {store} lacks the {kind}(s) {missing[:20]} of the reference model {json_path} "
                             f"(its \"{key}\"); import into a store with these labels (epitensor.add_labels adds "
                             "labels to a store)")
    if transform not in TRANSFORMS:
        raise ModelError(f"transform must be one of {TRANSFORMS} (the scale the reference model was trained on), "
                         f"got {transform!r}")
    if ds.attrs.get("transform", transform) != transform:
        raise ModelError(f"the store {store} holds signal with transform {ds.attrs['transform']!r}, but the reference "
                         f"model {json_path} predicts {transform!r}-scale signal (transform=...); import into a store "
                         "on the scale the model was trained on")


def import_reference(cls, json_path, h5_path, ds, *, region=None, transform: str = "arcsinh", device="auto",
                     seed: int | None = 0):
    """Build a fitted ``cls`` (:class:`~epitensor.Avocado`) from a reference model; see :meth:`Avocado.from_reference`.

    Every check on the json and the store comes before the (possibly large) h5 is read.
    """
    ref = read_reference_config(json_path)
    ds = ds if isinstance(ds, xr.Dataset) else open_dataset(ds)
    _check_store(ref, ds, json_path, transform)
    rows = reference_rows(genome_index(ds).genome, region, ref["n_genomic_positions"], json_path)
    weights = read_reference_weights(h5_path, ref)
    options = {field: ref[key] for key, field in HYPER_PARAMETERS.items()}
    # float32 everywhere, as the reference predicts: bf16 autocast (the "auto" choice on CUDA) would not match it
    model = cls(ds, preset="paper", device=device, seed=seed, biosamples=ref["celltypes"], assays=ref["assays"],
                autocast=False, **options)
    model.reset_genome_factors(rows)
    module = model.module
    with torch.no_grad():
        for name, table in EMBEDDINGS.items():
            weight = getattr(module, table).weight
            weight.copy_(torch.from_numpy(weights[name][0][: weight.shape[0]]))
        linears = [*module.hidden[::2], module.output]
        for linear, name in zip(linears, [*(f"dense_{i}" for i in range(ref["n_layers"])), "y_pred"]):
            kernel, bias = weights[name]
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
            linear.bias.copy_(torch.from_numpy(bias))
    model.training_tracks = ref["experiments"]
    return model


__all__ = ["import_reference", "read_reference_config", "read_reference_weights", "reference_rows",
           "reference_shapes"]
