"""Options, parameter types and helpers shared by the commands of the ``epitensor`` command line."""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from pathlib import Path

import click

from ..dask_runner import connect, is_address
from ..exceptions import EpitensorError, SchedulerError


def split_list(text: str | None) -> list[str] | None:
    """Comma-separated CLI list -> list (None stays None)."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def parse_regions(values: tuple[str, ...], genome=None) -> list[str] | None:
    """The regions of repeated ``--region`` options, each possibly a comma-separated list.

    Commas inside numbers (``chr20:1,000,000-2,000,000``) are thousands separators, not list
    separators (see :func:`epitensor.regions.split_regions`). No option gives None (the default).
    With ``genome``, every region is checked against it first, so a bad one fails before any write.
    """
    from ..regions import as_regions, split_regions

    regions = [r for value in values for r in split_regions(value)] or None
    if regions and genome is not None:
        as_regions(regions, genome)
    return regions


def region_option(default: str):
    """The ``--region`` option: repeatable, comma-separated lists allowed, thousands separators kept."""
    return click.option(
        "--region", "region", multiple=True, metavar="REGION",
        help=f"Region such as chr21 or chr20:1,000,000-2,000,000; repeat the option (or separate regions "
             f"with commas) for several: --region chr20:1,000,000-2,000,000 --region chr21. Default: {default}.",
    )


def friendly_errors(fn):
    """Turn project errors (and bad files) into one-line messages and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (EpitensorError, OSError) as err:  # OSError: missing/unwritable files, full disks
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


class SchedulerType(click.ParamType):
    """A local Dask scheduler name from ``names``, or a distributed scheduler address (``tcp://...``)."""

    name = "scheduler"

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def convert(self, value, param, ctx):
        if value is None or "://" in value or value in self.names:
            return value
        self.fail(f"{value!r} is not a scheduler: use {', '.join(self.names)} or an address such as "
                  f"tcp://host:8786", param, ctx)


class DeviceType(click.ParamType):
    """A torch device name: auto, cpu, cuda or cuda:N (checked without importing torch)."""

    name = "device"

    def convert(self, value, param, ctx):
        if re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            return value
        self.fail(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N (e.g. cuda:1)", param, ctx)


DEVICE_OPTION = click.option("--device", type=DeviceType(), default="auto", show_default=True,
                              help="auto (CUDA when there is one), cpu, cuda or cuda:N.")
EPOCHS = click.IntRange(min=1)
MINUTES = click.FloatRange(min=0, min_open=True)


@contextlib.contextmanager
def connected(scheduler: str | None):
    """A distributed Client for a scheduler address (tcp://...), closed afterwards; else None.

    Connecting here (:func:`epitensor.dask_runner.connect`), before any work, turns an unreachable
    scheduler into a usage error (exit 2) before anything is written.
    """
    if not is_address(scheduler):
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:
            run = stack.enter_context(connect(scheduler=scheduler))
        except SchedulerError as err:
            raise click.BadParameter(str(err), param_hint="'--scheduler'") from None
        yield run.client


def check_output_file(path, option: str):
    """Fail (exit 2) before any work when ``path`` cannot be written (:func:`epitensor.io.export.check_writable`)."""
    from ..exceptions import WriteError
    from ..io.export import check_writable

    try:
        check_writable(Path(path).expanduser().resolve())
    except WriteError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def load_model(model_dir, store):
    """The model saved in ``model_dir``, bound to the store at ``store``."""
    from ..model import Avocado
    from ..store import open_dataset

    return Avocado.load(model_dir, open_dataset(store))


SCALE_OPTIONS = [
    click.option("--block-size", default="1Mb", show_default=True, help="Block length, a multiple of 5 kbp."),
    click.option("--workers", type=click.IntRange(min=1), default=None, help="Start a LocalCluster of N single-threaded workers."),
    click.option("--scheduler", type=SchedulerType(("threads", "synchronous", "sync")), default=None,
                 help="A distributed scheduler address (tcp://host:8786), or threads/synchronous."),
    click.option("--gpu", is_flag=True, help='Each task claims one GPU (workers started with --resources "GPU=1").'),
    click.option("--dry-run", is_flag=True, help="Print the plan (blocks, predictions) and stop."),
]


def scale_options(fn):
    """Add the block, worker, scheduler, GPU and dry-run options of the genome-scale commands."""
    for option in reversed(SCALE_OPTIONS):
        fn = option(fn)
    return fn


def print_report(report):
    """One line counting a block report's rows by status (nothing for an empty report)."""
    if report is None or not len(report):
        return
    counts = report["status"].value_counts().to_dict() if "status" in report else {}
    click.echo(f"{len(report)} blocks: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def check_label(ds, kind: str, label: str) -> str:
    """Check a label exists (clear error listing the known ones)."""
    from ..store import label_index

    label_index(ds[kind].values, label, kind)
    return label
