"""Commands on models: ``train``, ``import-model``, ``fit-genome`` and ``impute``."""

from __future__ import annotations

import click

from .group import main
from .options import (
    DEVICE_OPTION,
    EPOCHS,
    MINUTES,
    connected,
    friendly_errors,
    load_model,
    parse_regions,
    print_report,
    region_option,
    scale_options,
    split_list,
)


@main.command()
@click.argument("store", type=click.Path())
@click.argument("model_dir", type=click.Path(file_okay=False))
@region_option("every contig")
@click.option("--epochs", type=EPOCHS, default=None,
              help="Passes over the training positions [default: 200, or fewer when validation stops the fit].")
@click.option("--minutes", type=MINUTES, default=None, help="Training budget (stop after the epoch that passes it).")
@click.option("--preset", type=click.Choice(["auto", "paper", "small"]), default="auto", show_default=True,
              help="auto (chosen from the compendium, stops on held-out tracks), paper (the published "
                   "configuration, exactly) or small.")
@DEVICE_OPTION
@click.option("--cpu-kernels", type=click.Choice(["auto", "fp32", "onednn", "bf16"]), default="auto", show_default=True,
              help="Matrix-multiply path on CPU: auto measures them on this machine once and keeps the fastest.")
@click.option("--seed", type=int, default=0, show_default=True)
@friendly_errors
def train(store, model_dir, region, epochs, minutes, preset, device, cpu_kernels, seed):
    """Train Avocado on the observed tracks of a store (stage 1) and save the model.

    Also writes the biosample and assay factors (and the training region's genome factors)
    into the store.

    \b
    Example:
      epitensor train compendium.zarr model/ --region chr20 --epochs 200 --preset paper
      epitensor train compendium.zarr model/ --region chr20:1,000,000-2,000,000 --region chr21
    """
    from ..model import Avocado
    from ..store import open_dataset

    ds = open_dataset(store)
    regions = parse_regions(region, ds.epi.genome)
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
@DEVICE_OPTION
@friendly_errors
def import_model(json_file, h5_file, store, model_dir, region, transform, device):
    """Import a model of the reference Avocado (Keras NAME.json + NAME.h5) and save it as an epitensor model.

    Celltypes and assays are matched to the store's labels by name. Needs h5py
    (pip install 'epitensor[reference]'); TensorFlow is not used.

    \b
    Example:
      epitensor import-model avocado.json avocado.h5 roadmap.zarr model/ --region pilot
      epitensor impute model/ roadmap.zarr --biosamples E065 --assays H3K27me3 --region pilot
    """
    from ..model import Avocado

    model = Avocado.from_reference(json_file, h5_file, store, region=region, transform=transform, device=device)
    model.save(model_dir)
    click.echo(f"imported {len(model.biosamples)} celltypes x {len(model.assays)} assays, {model.config.n_layers} x "
               f"{model.config.n_nodes} network, {len(model.fitted_positions):,} positions "
               f"({model.fitted_positions.describe()}); saved {model_dir}")


@main.command("fit-genome")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("store", type=click.Path())
@region_option("every contig")
@click.option("--epochs", type=EPOCHS, default=200, show_default=True, help="Passes over each block's positions.")
@click.option("--write-imputed", is_flag=True, help="Also write every block's imputations.")
@scale_options
@friendly_errors
def fit_genome(model_dir, store, region, epochs, write_imputed, block_size, workers, scheduler, gpu, dry_run):
    """Stage 2: fit genome factors block by block with everything else frozen (resumable).

    Rerun the same command after an interruption: finished blocks are skipped.

    \b
    Example:
      epitensor fit-genome model/ compendium.zarr --region chr21 --block-size 1Mb --workers 2
      epitensor fit-genome model/ compendium.zarr --scheduler tcp://scheduler:8786 --gpu
    """
    with connected(scheduler) as client:
        model = load_model(model_dir, store)
        report = model.fit_genome(store, region=parse_regions(region, model.genome), block_size=block_size, epochs=epochs,
                                  client=client, workers=workers, scheduler=None if client else scheduler,
                                  resources={"GPU": 1} if gpu else None, write_imputed=write_imputed, dry_run=dry_run)
    print_report(report)


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("store", type=click.Path())
@click.option("--biosamples", default=None, help="Comma-separated biosamples (default: all).")
@click.option("--assays", default=None, help="Comma-separated assays (default: all).")
@click.option("--missing", is_flag=True, help="Impute every unobserved (biosample, assay) pair: complete the tensor.")
@region_option("where the model has genome factors")
@click.option("--precision", default=None,
              help="Storage precision of a new `imputed`: float32, bitround-N or quantize-N (default quantize-2: "
                   "|stored - x| <= 2^-8 on the store's scale); an existing `imputed` keeps its own.")
@scale_options
@friendly_errors
def impute(model_dir, store, biosamples, assays, missing, region, precision, block_size, workers, scheduler, gpu, dry_run):
    """Write imputations into the store's `imputed` variable (never into `signal`).

    Imputes in this process, unless Dask options (--workers, --scheduler, --block-size) or the
    region's stage-2 genome factors call for blocks on Dask.

    \b
    Example:
      epitensor impute model/ compendium.zarr --biosamples E065 --assays H3K36me3 --region pilot
      epitensor impute model/ compendium.zarr --missing --region chr21 --scheduler tcp://scheduler:8786
      epitensor impute model/ compendium.zarr --missing --region chr21 --precision float32
    """
    with connected(scheduler) as client:
        model = load_model(model_dir, store)
        run = dict(region=parse_regions(region, model.genome), client=client, workers=workers, scheduler=None if client else scheduler,
                   precision=precision)
        if missing and (biosamples or assays):
            raise click.UsageError("--missing imputes every unobserved pair; leave out --biosamples/--assays, "
                                   "or name the tracks with them and drop --missing")
        pairs = "unobserved" if missing else [(b, a) for b in (split_list(biosamples) or model.biosamples)
                                              for a in (split_list(assays) or model.assays)]
        if dry_run or gpu:  # a plan of blocks, or GPU workers: stage 2's block imputation
            report = model.impute_genome(store, pairs=pairs, block_size=block_size,
                                         resources={"GPU": 1} if gpu else None, dry_run=dry_run, **run)
        else:  # in this process, unless Dask options (or the region's stage-2 factors) call for blocks
            report = model.impute_to_store(store, pairs=pairs, block_size=block_size if (client or workers or scheduler) else None,
                                           **run)
    print_report(report)
    click.echo(f"imputations written to {store} (variable 'imputed')")
