"""Commands that score and show results: ``evaluate`` and ``demo``."""

from __future__ import annotations

import click

from .group import main
from .options import DEVICE_OPTION, EPOCHS, MINUTES, check_output_file, friendly_errors


@main.command("evaluate")
@click.argument("store", type=click.Path())
@click.option("--imputed", "imputed_var", default="imputed", show_default=True, help="Variable holding the imputations.")
@click.option("--truth", default="held_out", show_default=True, help="Variable holding the true tracks (held_out or signal).")
@click.option("--annotations", default=None, help="hg19/hg38 (files found via $EPITENSOR_DATA) or a folder of BED files.")
@click.option("--eic-parity", is_flag=True, help="Reproduce the ENCODE Imputation Challenge's scoring choices.")
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also score the average-activity baseline.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the scores to this CSV file.")
@friendly_errors
def evaluate_command(store, imputed_var, truth, annotations, eic_parity, baseline, out):
    """Score imputations against the true tracks, one row per track, with the baseline beside them.

    \b
    Example:
      epitensor evaluate demo-output/roadmap.zarr --out scores.csv
      epitensor evaluate compendium.zarr --truth signal --annotations hg38 --eic-parity
    """
    import pandas as pd

    from ..evaluation import baselines, evaluate
    from ..evaluation.report import improvement_table
    from ..exceptions import SchemaError
    from ..store import open_dataset

    if out:
        check_output_file(out, "'--out'")
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
@click.option("--minutes", type=MINUTES, default=5.0, show_default=True, help="Training budget.")
@click.option("--epochs", type=EPOCHS, default=None, help="Upper bound on training epochs (default: the demo's choice).")
@click.option("--preset", default="small", show_default=True, help="Model preset: small (for small compendia) or paper.")
@DEVICE_OPTION
@friendly_errors
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
    from ..demo import run_demo

    extra = {} if epochs is None else {"epochs": epochs}
    run_demo(out, synthetic=synthetic, data=data, n_bins=n_bins or None, minutes=minutes, preset=preset,
             device=device, echo=click.echo, **extra)
