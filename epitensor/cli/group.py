"""The ``epitensor`` command group; the command modules add their commands to it."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="epitensor")
def main():
    """epitensor: complete the human epigenome with the Avocado tensor factorization.

    \b
    Example:
      epitensor demo --out demo-output
      epitensor info demo-output/roadmap.zarr
    """
