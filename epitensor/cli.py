"""The ``epitensor`` command line.

Every command has ``--help`` with an example, prints progress on long work, and exits non-zero
with a one-line ``error: ...`` message on bad input.
"""

from __future__ import annotations

import functools
import sys

import click

from .exceptions import EpitensorError


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
