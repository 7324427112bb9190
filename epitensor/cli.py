"""The ``epitensor`` command line.

Every command has ``--help`` with an example, prints progress on long work, and exits non-zero
with a one-line ``error: ...`` message on bad input.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from pathlib import Path

import click

from .exceptions import EpitensorError


def _split(text: str | None) -> list[str] | None:
    """Comma-separated CLI list -> list (None stays None)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _regions(values: tuple[str, ...], genome=None) -> list[str] | None:
    """The regions of repeated ``--region`` options, each possibly a comma-separated list.

    Commas inside numbers (``chr20:1,000,000-2,000,000``) are thousands separators, not list
    separators (see :func:`epitensor.regions.split_regions`). No option gives None (the default).
    With ``genome``, every region is checked against it first, so a bad one fails before any write.
    """
    from .regions import as_regions, split_regions

    regions = [r for value in values for r in split_regions(value)] or None
    if regions and genome is not None:
        as_regions(regions, genome)
    return regions


def _region_option(default: str):
    """The ``--region`` option: repeatable, comma-separated lists allowed, thousands separators kept."""
    return click.option(
        "--region", "region", multiple=True, metavar="REGION",
        help=f"Region such as chr21 or chr20:1,000,000-2,000,000; repeat the option (or separate regions "
             f"with commas) for several: --region chr20:1,000,000-2,000,000 --region chr21. Default: {default}.",
    )


def _friendly_errors(fn):
    """Turn project errors (and bad files) into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (EpitensorError, OSError) as err:  # OSError: missing/unwritable files, full disks
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


class _Scheduler(click.ParamType):
    """A local Dask scheduler name from ``names``, or a distributed scheduler address (``tcp://...``)."""

    name = "scheduler"

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def convert(self, value, param, ctx):
        if value is None or "://" in value or value in self.names:
            return value
        self.fail(f"{value!r} is not a scheduler: use {', '.join(self.names)} or an address such as "
                  f"tcp://host:8786", param, ctx)


class _Device(click.ParamType):
    """A torch device name: auto, cpu, cuda or cuda:N (checked without importing torch)."""

    name = "device"

    def convert(self, value, param, ctx):
        if re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            return value
        self.fail(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N (e.g. cuda:1)", param, ctx)


_DEVICE_OPTION = click.option("--device", type=_Device(), default="auto", show_default=True,
                              help="auto (CUDA when there is one), cpu, cuda or cuda:N.")
_EPOCHS = click.IntRange(min=1)
_MINUTES = click.FloatRange(min=0, min_open=True)


@contextlib.contextmanager
def _connected(scheduler: str | None):
    """A distributed Client for a scheduler address (tcp://...), closed afterwards; else None.

    Connecting here, before any work, turns an unreachable scheduler into a usage error (exit 2)
    before anything is written.
    """
    if not scheduler or "://" not in scheduler:
        yield None
        return
    from distributed import Client

    try:
        client = Client(scheduler)
    except (OSError, TimeoutError, ValueError) as err:
        raise click.BadParameter(f"cannot reach the Dask scheduler at {scheduler}: {err}; check the address and "
                                 f"that the scheduler is running", param_hint="'--scheduler'") from None
    with client:
        yield client


def _check_output_file(path, option: str):
    """Fail (exit 2) before any work when ``path`` cannot be written (:func:`epitensor.io.export.check_writable`)."""
    from .exceptions import WriteError
    from .io.export import check_writable

    try:
        check_writable(Path(path).expanduser().resolve())
    except WriteError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="epitensor")
def main():
    """epitensor: complete the human epigenome with the Avocado tensor factorization.

    \b
    Example:
      epitensor demo --out demo-output
      epitensor info demo-output/roadmap.zarr
    """


@main.command()
@click.argument("store", type=click.Path())
@_friendly_errors
def info(store):
    """Print a store's summary: labels, observed fraction, contigs, variables.

    \b
    Example:
      epitensor info compendium.zarr
    """
    from .store import open_dataset

    click.echo(open_dataset(store).epi.summary())


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("store", type=click.Path())
@click.option("--assembly", default=None, help="hg19, hg38 or a chrom.sizes file (for a new store).")
@click.option("--chroms", default=None, help="Comma-separated contigs, e.g. chr20,chr21 (default: all).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel local tasks (default: one per core).")
@click.option("--scheduler", type=_Scheduler(("threads", "processes", "sync")), default=None,
              help="threads, processes, sync, or a distributed scheduler address such as tcp://host:8786.")
@click.option("--transform", type=click.Choice(["arcsinh", "none"]), default=None, help="Signal transform (default arcsinh).")
@click.option("--missing-chroms", type=click.Choice(["error", "zero"]), default="error", show_default=True,
              help="A contig absent from a file: error, or treat as zero coverage.")
@click.option("--peak-value", type=click.Choice(["coverage", "signalValue", "pValue", "qValue"]), default="coverage",
              show_default=True, help="What a bin of a peak-file track holds: 1/0 coverage or the largest value of a column.")
@click.option("--missing-files", type=click.Choice(["error", "report"]), default="error", show_default=True,
              help="A listed file that does not exist: error, or report it and leave its track unobserved.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Where URLs are downloaded.")
@click.option("--overwrite", is_flag=True, help="Replace tracks the store already holds.")
@_friendly_errors
def ingest(manifest, store, assembly, chroms, workers, scheduler, transform, missing_chroms, peak_value, missing_files,
           cache_dir, overwrite):
    """Ingest the bigWig or peak files (narrowPeak, broadPeak, BED) of a manifest into a store (parallel, resumable).

    MANIFEST is an ENCODE2018 experiment list or a TSV/CSV with biosample, assay and path columns
    (peak files of one track may be listed on several rows: replicates, merged).
    Rerun the same command after an interruption: only missing pieces are ingested.

    \b
    Example:
      epitensor ingest manifest.tsv compendium.zarr --assembly hg38 --chroms chr20,chr21 --workers 8
    """
    from .io import ingest as run_ingest

    with _connected(scheduler) as client:
        path = run_ingest(manifest, store, assembly=assembly, chroms=chroms, workers=workers,
                          scheduler=None if client else scheduler, client=client, transform=transform,
                          missing_chroms=missing_chroms, peak_value=peak_value, missing_files=missing_files,
                          cache_dir=cache_dir, overwrite=overwrite)
    from .store import open_dataset

    click.echo(open_dataset(path).epi.summary())


@main.command()
@click.argument("store", type=click.Path())
@click.argument("bigwig", type=click.Path(dir_okay=False))
@click.option("--biosample", required=True, help="Biosample label.")
@click.option("--assay", required=True, help="Assay label.")
@click.option("--variable", default="signal", show_default=True, help="signal, imputed or held_out.")
@_region_option("the whole genome")
@click.option("--inverse-transform", is_flag=True, help="Write sinh(values): the untransformed signal.")
@_friendly_errors
def export(store, bigwig, biosample, assay, variable, region, inverse_transform):
    """Export one track of a store to a bigWig file (25 bp fixed-step entries).

    \b
    Example:
      epitensor export compendium.zarr HepG2_H3K27ac.bw --biosample HepG2 --assay H3K27ac \\
          --variable imputed --region chr21 --inverse-transform
    """
    from .exceptions import SchemaError
    from .store import open_dataset

    _check_output_file(bigwig, "'BIGWIG'")
    ds = open_dataset(store)
    if variable not in ds.data_vars:
        raise SchemaError(f"store {store} has no variable {variable!r}; it has {sorted(map(str, ds.data_vars))}")
    da = ds[variable]
    if region:
        da = da.epi.region(_regions(region, ds.epi.genome))
    da = da.sel(biosample=_label(ds, "biosample", biosample), assay=_label(ds, "assay", assay))
    click.echo(f"wrote {da.epi.to_bigwig(bigwig, inverse_transform=inverse_transform)}")


def _label(ds, kind: str, label: str) -> str:
    """Check a label exists (clear error listing the known ones)."""
    from .store import label_index

    label_index(ds[kind].values, label, kind)
    return label


@main.command()
@click.argument("store", type=click.Path())
@click.argument("model_dir", type=click.Path(file_okay=False))
@_region_option("every contig")
@click.option("--epochs", type=_EPOCHS, default=None,
              help="Passes over the training positions [default: 200, or fewer when validation stops the fit].")
@click.option("--minutes", type=_MINUTES, default=None, help="Training budget (stop after the epoch that passes it).")
@click.option("--preset", type=click.Choice(["auto", "paper", "small"]), default="auto", show_default=True,
              help="auto (chosen from the compendium, stops on held-out tracks), paper (the published "
                   "configuration, exactly) or small.")
@_DEVICE_OPTION
@click.option("--cpu-kernels", type=click.Choice(["auto", "fp32", "onednn", "bf16"]), default="auto", show_default=True,
              help="Matrix-multiply path on CPU: auto measures them on this machine once and keeps the fastest.")
@click.option("--seed", type=int, default=0, show_default=True)
@_friendly_errors
def train(store, model_dir, region, epochs, minutes, preset, device, cpu_kernels, seed):
    """Train Avocado on the observed tracks of a store (stage 1) and save the model.

    Also writes the biosample and assay factors (and the training region's genome factors)
    into the store.

    \b
    Example:
      epitensor train compendium.zarr model/ --region chr20 --epochs 200 --preset paper
      epitensor train compendium.zarr model/ --region chr20:1,000,000-2,000,000 --region chr21
    """
    from .model import Avocado
    from .store import open_dataset

    ds = open_dataset(store)
    regions = _regions(region, ds.epi.genome)
    model = Avocado(ds, preset=preset, device=device, seed=seed, cpu_kernels=cpu_kernels)
    history = model.fit(region=regions, epochs=epochs, time_limit=None if minutes is None else minutes * 60)
    model.save(model_dir)
    model.write_factors(store)
    last = history.iloc[-1]
    click.echo(f"trained {len(history)} epochs, final loss {last['loss']:.4f}; saved {model_dir}")


@main.command("import-model")
@click.argument("json_file", metavar="NAME.json", type=click.Path(dir_okay=False))
@click.argument("h5_file", metavar="NAME.h5", type=click.Path(dir_okay=False))
@click.argument("store", type=click.Path())
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--region", default=None, metavar="REGION",
              help="Where the reference's positions lie: its position i is bin i of this region (a contig, or "
                   "contig:start-end starting on a multiple of 5 kbp). Default: the store's first contig.")
@click.option("--transform", type=click.Choice(["arcsinh", "none"]), default="arcsinh", show_default=True,
              help="Scale of the signal the model was trained on; must be the store's.")
@_DEVICE_OPTION
@_friendly_errors
def import_model(json_file, h5_file, store, model_dir, region, transform, device):
    """Import a model of the reference Avocado (Keras NAME.json + NAME.h5) and save it as an epitensor model.

    Celltypes and assays are matched to the store's labels by name. Needs h5py
    (pip install 'epitensor[reference]'); TensorFlow is not used.

    \b
    Example:
      epitensor import-model avocado.json avocado.h5 roadmap.zarr model/ --region pilot
      epitensor impute model/ roadmap.zarr --biosamples E065 --assays H3K27me3 --region pilot
    """
    from .model import Avocado

    model = Avocado.from_reference(json_file, h5_file, store, region=region, transform=transform, device=device)
    model.save(model_dir)
    click.echo(f"imported {len(model.biosamples)} celltypes x {len(model.assays)} assays, {model.config.n_layers} x "
               f"{model.config.n_nodes} network, {len(model.fitted_positions):,} positions "
               f"({model.fitted_positions.describe()}); saved {model_dir}")


def _load_model(model_dir, store):
    from .model import Avocado
    from .store import open_dataset

    return Avocado.load(model_dir, open_dataset(store))


_SCALE_OPTIONS = [
    click.option("--block-size", default="1Mb", show_default=True, help="Block length, a multiple of 5 kbp."),
    click.option("--workers", type=click.IntRange(min=1), default=None, help="Start a LocalCluster of N single-threaded workers."),
    click.option("--scheduler", type=_Scheduler(("threads", "synchronous", "sync")), default=None,
                 help="A distributed scheduler address (tcp://host:8786), or threads/synchronous."),
    click.option("--gpu", is_flag=True, help='Each task claims one GPU (workers started with --resources "GPU=1").'),
    click.option("--dry-run", is_flag=True, help="Print the plan (blocks, predictions) and stop."),
]


def _scale_options(fn):
    for option in reversed(_SCALE_OPTIONS):
        fn = option(fn)
    return fn


def _print_report(report):
    if report is None or not len(report):
        return
    counts = report["status"].value_counts().to_dict() if "status" in report else {}
    click.echo(f"{len(report)} blocks: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@main.command("fit-genome")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("store", type=click.Path())
@_region_option("every contig")
@click.option("--epochs", type=_EPOCHS, default=200, show_default=True, help="Passes over each block's positions.")
@click.option("--write-imputed", is_flag=True, help="Also write every block's imputations.")
@_scale_options
@_friendly_errors
def fit_genome(model_dir, store, region, epochs, write_imputed, block_size, workers, scheduler, gpu, dry_run):
    """Stage 2: fit genome factors block by block with everything else frozen (resumable).

    Rerun the same command after an interruption: finished blocks are skipped.

    \b
    Example:
      epitensor fit-genome model/ compendium.zarr --region chr21 --block-size 1Mb --workers 2
      epitensor fit-genome model/ compendium.zarr --scheduler tcp://scheduler:8786 --gpu
    """
    with _connected(scheduler) as client:
        model = _load_model(model_dir, store)
        report = model.fit_genome(store, region=_regions(region, model.genome), block_size=block_size, epochs=epochs,
                                  client=client, workers=workers, scheduler=None if client else scheduler,
                                  resources={"GPU": 1} if gpu else None, write_imputed=write_imputed, dry_run=dry_run)
    _print_report(report)


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("store", type=click.Path())
@click.option("--biosamples", default=None, help="Comma-separated biosamples (default: all).")
@click.option("--assays", default=None, help="Comma-separated assays (default: all).")
@click.option("--missing", is_flag=True, help="Impute every unobserved (biosample, assay) pair: complete the tensor.")
@_region_option("where the model has genome factors")
@click.option("--precision", default=None,
              help="Storage precision of a new `imputed`: float32, bitround-N or quantize-N (default quantize-2: "
                   "|stored - x| <= 2^-8 on the store's scale); an existing `imputed` keeps its own.")
@_scale_options
@_friendly_errors
def impute(model_dir, store, biosamples, assays, missing, region, precision, block_size, workers, scheduler, gpu, dry_run):
    """Write imputations into the store's `imputed` variable (never into `signal`).

    \b
    Example:
      epitensor impute model/ compendium.zarr --biosamples E065 --assays H3K36me3 --region pilot
      epitensor impute model/ compendium.zarr --missing --region chr21 --scheduler tcp://scheduler:8786
      epitensor impute model/ compendium.zarr --missing --region chr21 --precision float32
    """
    with _connected(scheduler) as client:
        model = _load_model(model_dir, store)
        run = dict(region=_regions(region, model.genome), client=client, workers=workers, scheduler=None if client else scheduler,
                   precision=precision)
        if missing or dry_run or gpu:
            pairs = "unobserved" if missing else [(b, a) for b in (_split(biosamples) or model.biosamples)
                                                  for a in (_split(assays) or model.assays)]
            report = model.impute_genome(store, pairs=pairs, block_size=block_size,
                                         resources={"GPU": 1} if gpu else None, dry_run=dry_run, **run)
        else:
            report = model.impute_to_store(store, biosamples=_split(biosamples), assays=_split(assays),
                                           block_size=block_size if (client or workers or scheduler) else None, **run)
    _print_report(report)
    click.echo(f"imputations written to {store} (variable 'imputed')")


@main.command("evaluate")
@click.argument("store", type=click.Path())
@click.option("--imputed", "imputed_var", default="imputed", show_default=True, help="Variable holding the imputations.")
@click.option("--truth", default="held_out", show_default=True, help="Variable holding the true tracks (held_out or signal).")
@click.option("--annotations", default=None, help="hg19/hg38 (files found via $EPITENSOR_DATA) or a folder of BED files.")
@click.option("--eic-parity", is_flag=True, help="Reproduce the ENCODE Imputation Challenge's scoring choices.")
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also score the average-activity baseline.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the scores to this CSV file.")
@_friendly_errors
def evaluate_command(store, imputed_var, truth, annotations, eic_parity, baseline, out):
    """Score imputations against the true tracks, one row per track, with the baseline beside them.

    \b
    Example:
      epitensor evaluate demo-output/roadmap.zarr --out scores.csv
      epitensor evaluate compendium.zarr --truth signal --annotations hg38 --eic-parity
    """
    import pandas as pd

    from .evaluation import baselines, evaluate
    from .evaluation.report import improvement_table
    from .exceptions import SchemaError
    from .store import open_dataset

    if out:
        _check_output_file(out, "'--out'")
    ds = open_dataset(store)
    for name in (imputed_var, truth):
        if name not in ds.data_vars:
            raise SchemaError(f"store {store} has no variable {name!r}; it has {sorted(map(str, ds.data_vars))}")
    kwargs = dict(annotations=annotations, eic_parity=eic_parity, variance_from=ds.signal, progress=False)
    scores = evaluate(ds[imputed_var], ds[truth], **kwargs).assign(method=imputed_var)
    table = scores
    if baseline:
        base = evaluate(baselines.average_activity(ds.signal), ds[truth], **kwargs).assign(method="average_activity")
        table = pd.concat([scores, base])
        click.echo(improvement_table(scores, base).to_string(float_format=lambda v: f"{v:.4f}"))
    else:
        click.echo(scores.to_string(float_format=lambda v: f"{v:.4f}"))
    if out:
        table.to_csv(out, index=False)
        click.echo(f"wrote {out}")


@main.command()
@click.option("--out", type=click.Path(), default="demo-output", show_default=True, help="Output folder.")
@click.option("--synthetic", is_flag=True, help="Use the offline synthetic compendium (no data needed).")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the Roadmap .npz tracks (default: $EPITENSOR_DATA, else download).")
@click.option("--n-bins", type=click.IntRange(min=0), default=200_000, show_default=True, help="Use the first N positions (0: all).")
@click.option("--minutes", type=_MINUTES, default=5.0, show_default=True, help="Training budget.")
@click.option("--epochs", type=_EPOCHS, default=None, help="Upper bound on training epochs (default: the demo's choice).")
@click.option("--preset", default="small", show_default=True, help="Model preset: small (for small compendia) or paper.")
@_DEVICE_OPTION
@_friendly_errors
def demo(out, synthetic, data, n_bins, minutes, epochs, preset, device):
    """The main job on the Roadmap sample: hide five tracks, train, impute, score, plot.

    Builds the store of the 25 Roadmap tracks with the five Latin-square tracks hidden, trains
    Avocado on the other 20, imputes the five into the store, scores them against the
    average-activity baseline and writes the store, model, score tables and figures to --out.

    \b
    Example:
      epitensor demo --out demo-output --data ../shared/data/roadmap_pilot
      epitensor demo --synthetic --minutes 1
    """
    from .demo import run_demo

    extra = {} if epochs is None else {"epochs": epochs}
    run_demo(out, synthetic=synthetic, data=data, n_bins=n_bins or None, minutes=minutes, preset=preset,
             device=device, echo=click.echo, **extra)


@main.command("check")
@click.argument("store", type=click.Path())
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on big stores.")
@_friendly_errors
def check_command(store, progress):
    """Verify every chunk of a store (checksums, decoding, required chunks), like git fsck.

    Prints one line per damaged chunk, naming its track, and exits 1 when anything is damaged,
    0 when the store is intact.

    \b
    Example:
      epitensor check compendium.zarr
    """
    from .store import check_store

    report = check_store(store, progress=progress)
    if report.empty:
        click.echo(f"{store}: every chunk is intact")
        return
    for row in report.itertuples(index=False):
        track = f"track {row.biosample}/{row.assay} of {row.variable}" if row.biosample is not None else row.variable
        click.echo(f"damaged {row.chunk} ({track}): {row.problem}")
    tracks = report.dropna(subset=["biosample"]).drop_duplicates(["variable", "biosample", "assay"])
    click.echo(f"{store}: {len(report)} damaged chunk(s), in {len(tracks)} track(s) and "
               f"{report['biosample'].isna().sum()} chunk(s) of other arrays. Delete the damaged chunk files and "
               "write those tracks again from their sources (labels or observed: rebuild the store)", err=True)
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
