"""The ``epitensor`` command line.

Every command has ``--help`` with an example, prints progress on long work, and exits non-zero
with a one-line ``error: ...`` message on bad input.
"""

from __future__ import annotations

import functools
import sys

import click

from .exceptions import EpitensorError


def _split(text: str | None) -> list[str] | None:
    """Comma-separated CLI list -> list (None stays None)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _friendly_errors(fn):
    """Turn project errors (and bad files) into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (EpitensorError, FileNotFoundError, PermissionError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


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
@click.option("--workers", type=int, default=None, help="Parallel local tasks (default: one per core).")
@click.option("--scheduler", default=None,
              help="threads, processes, sync, or a distributed scheduler address such as tcp://host:8786.")
@click.option("--transform", type=click.Choice(["arcsinh", "none"]), default=None, help="Signal transform (default arcsinh).")
@click.option("--missing-chroms", type=click.Choice(["error", "zero"]), default="error", show_default=True,
              help="A contig absent from a file: error, or treat as zero coverage.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Where URLs are downloaded.")
@click.option("--overwrite", is_flag=True, help="Replace tracks the store already holds.")
@_friendly_errors
def ingest(manifest, store, assembly, chroms, workers, scheduler, transform, missing_chroms, cache_dir, overwrite):
    """Ingest the bigWig files of a manifest into a store (parallel, resumable).

    MANIFEST is an ENCODE2018 experiment list or a TSV/CSV with biosample, assay and path columns.
    Rerun the same command after an interruption: only missing pieces are ingested.

    \b
    Example:
      epitensor ingest manifest.tsv compendium.zarr --assembly hg38 --chroms chr20,chr21 --workers 8
    """
    from .io import ingest as run_ingest

    client = _client(scheduler)
    path = run_ingest(manifest, store, assembly=assembly, chroms=_split(chroms), workers=workers,
                      scheduler=None if client else scheduler, client=client, transform=transform,
                      missing_chroms=missing_chroms, cache_dir=cache_dir, overwrite=overwrite)
    from .store import open_dataset

    click.echo(open_dataset(path).epi.summary())


@main.command()
@click.argument("store", type=click.Path())
@click.argument("bigwig", type=click.Path(dir_okay=False))
@click.option("--biosample", required=True, help="Biosample label.")
@click.option("--assay", required=True, help="Assay label.")
@click.option("--variable", default="signal", show_default=True, help="signal, imputed or held_out.")
@click.option("--region", default=None, help="Region(s), comma-separated, e.g. chr21 or chr21:10M-11M (default: all).")
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

    ds = open_dataset(store)
    if variable not in ds.data_vars:
        raise SchemaError(f"store {store} has no variable {variable!r}; it has {sorted(map(str, ds.data_vars))}")
    da = ds[variable]
    if region:
        da = da.epi.region(_split(region) if "," in region else region)
    da = da.sel(biosample=_label(ds, "biosample", biosample), assay=_label(ds, "assay", assay))
    click.echo(f"wrote {da.epi.to_bigwig(bigwig, inverse_transform=inverse_transform)}")


def _label(ds, kind: str, label: str) -> str:
    """Check a label exists (clear error listing the known ones)."""
    from .store import label_index

    label_index(ds[kind].values, label, kind)
    return label


def _client(scheduler: str | None):
    """A distributed Client for a scheduler address (tcp://...), else None."""
    if scheduler and "://" in scheduler:
        from distributed import Client

        return Client(scheduler)
    return None


@main.command()
@click.option("--out", type=click.Path(), default="demo-output", show_default=True, help="Output folder.")
@click.option("--synthetic", is_flag=True, help="Use the offline synthetic compendium (no data needed).")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the Roadmap .npz tracks (default: $EPITENSOR_DATA, else download).")
@click.option("--n-bins", type=int, default=None, help="Use only the first N positions.")
@_friendly_errors
def demo(out, synthetic, data, n_bins):
    """The main job on the Roadmap sample: build the store with five tracks hidden.

    \b
    Example:
      epitensor demo --out demo-output --data ../shared/data/roadmap_pilot
      epitensor demo --synthetic
    """
    from .demo import run_demo

    run_demo(out, synthetic=synthetic, data=data, n_bins=n_bins, echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
