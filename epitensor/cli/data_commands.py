"""Commands on stores: ``info``, ``ingest``, ``export`` and ``check``."""

from __future__ import annotations

import sys

import click

from .group import main
from .options import (
    SchedulerType,
    check_label,
    check_output_file,
    connected,
    friendly_errors,
    parse_regions,
    region_option,
)


@main.command()
@click.argument("store", type=click.Path())
@friendly_errors
def info(store):
    """Print a store's summary: labels, observed fraction, contigs, variables.

    \b
    Example:
      epitensor info compendium.zarr
    """
    from ..store import open_dataset

    click.echo(open_dataset(store).epi.summary())


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.argument("store", type=click.Path())
@click.option("--assembly", default=None, help="hg19, hg38 or a chrom.sizes file (for a new store).")
@click.option("--chroms", default=None, help="Comma-separated contigs, e.g. chr20,chr21 (default: all).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel local tasks (default: one per core).")
@click.option("--scheduler", type=SchedulerType(("threads", "processes", "sync")), default=None,
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
@friendly_errors
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
    from ..io import ingest as run_ingest

    with connected(scheduler) as client:
        path = run_ingest(manifest, store, assembly=assembly, chroms=chroms, workers=workers,
                          scheduler=None if client else scheduler, client=client, transform=transform,
                          missing_chroms=missing_chroms, peak_value=peak_value, missing_files=missing_files,
                          cache_dir=cache_dir, overwrite=overwrite)
    from ..store import open_dataset

    click.echo(open_dataset(path).epi.summary())


@main.command()
@click.argument("store", type=click.Path())
@click.argument("bigwig", type=click.Path(dir_okay=False))
@click.option("--biosample", required=True, help="Biosample label.")
@click.option("--assay", required=True, help="Assay label.")
@click.option("--variable", default="signal", show_default=True, help="signal, imputed or held_out.")
@region_option("the whole genome")
@click.option("--inverse-transform", is_flag=True, help="Write sinh(values): the untransformed signal.")
@friendly_errors
def export(store, bigwig, biosample, assay, variable, region, inverse_transform):
    """Export one track of a store to a bigWig file (25 bp fixed-step entries).

    \b
    Example:
      epitensor export compendium.zarr HepG2_H3K27ac.bw --biosample HepG2 --assay H3K27ac \\
          --variable imputed --region chr21 --inverse-transform
    """
    from ..exceptions import SchemaError
    from ..store import open_dataset

    check_output_file(bigwig, "'BIGWIG'")
    ds = open_dataset(store)
    if variable not in ds.data_vars:
        raise SchemaError(f"store {store} has no variable {variable!r}; it has {sorted(map(str, ds.data_vars))}")
    da = ds[variable]
    if region:
        da = da.epi.region(parse_regions(region, ds.epi.genome))
    da = da.sel(biosample=check_label(ds, "biosample", biosample), assay=check_label(ds, "assay", assay))
    click.echo(f"wrote {da.epi.to_bigwig(bigwig, inverse_transform=inverse_transform)}")


@main.command("check")
@click.argument("store", type=click.Path())
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on big stores.")
@friendly_errors
def check_command(store, progress):
    """Verify every chunk of a store (checksums, decoding, required chunks), like git fsck.

    Prints one line per damaged chunk, naming its track, and exits 1 when anything is damaged,
    0 when the store is intact.

    \b
    Example:
      epitensor check compendium.zarr
    """
    from ..store import check_store

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
