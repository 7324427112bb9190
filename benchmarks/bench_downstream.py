"""The reference Avocado downstream demo, reproduced: mean average precision of each feature set.

Runs :func:`epitensor.latent.compare_features` (the paper's protocol: shuffle with seed 0, 20
folds, fold i = rows i::20, the next fold for early stopping, gradient boosting) on the demo's
real feature sets (``epitensor.datasets.avocado_downstream``): FIREs in GM12878 (3,000 regions;
Roadmap measurements, ChromImpute, PREDICTD, Avocado imputations, Avocado genome factors) and
gene expression in IMR-90 (16,724 genes; the same minus the factors). Prints the MAP table with
standard errors, the wall and CPU time of each task, and runs the FIREs task twice to show the
numbers repeat exactly.

Usage::

    python benchmarks/bench_downstream.py                       # both tasks, 2 processes
    python benchmarks/bench_downstream.py --tasks FIREs --n-jobs 1
    python benchmarks/bench_downstream.py --data ../shared/data/avocado_downstream
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import psutil
from common import shared_data  # (and the source tree on sys.path)

from epitensor.datasets import avocado_downstream
from epitensor.latent import compare_features, summarize_folds

DEFAULT_DATA = shared_data("avocado_downstream")


def cpu_seconds() -> float:
    """CPU time of this process, its live children (joblib's worker processes) and finished ones."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + kids.ru_utime + kids.ru_stime


def run_task(task: str, data, n_jobs: int):
    features, labels = avocado_downstream(task, path=data)
    wall, cpu = time.perf_counter(), cpu_seconds()
    table = compare_features(features, labels, n_jobs=n_jobs)
    return table, time.perf_counter() - wall, cpu_seconds() - cpu, len(labels), float(labels.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("EPITENSOR_DOWNSTREAM", DEFAULT_DATA),
                        help="folder of the demo's .npy files (default: ../shared/data/avocado_downstream, else download)")
    parser.add_argument("--tasks", nargs="+", default=["FIREs", "RNAseq"], choices=["FIREs", "RNAseq"])
    parser.add_argument("--n-jobs", type=int, default=2, help="folds fitted in parallel (one thread each)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, n_jobs={args.n_jobs}")
    for task in args.tasks:
        table, wall, cpu, n, positives = run_task(task, args.data, args.n_jobs)
        summary = summarize_folds(table)
        print(f"\n## {task}: {n:,} rows, {positives:.1%} positive; {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"({cpu / 60:.2f} CPU minutes)\n")
        print("| feature set | MAP | standard error | mean boosting rounds |")
        print("|---|---|---|---|")
        for name, row in summary.iterrows():
            print(f"| {name} | {row.mean_average_precision:.4f} | {row.standard_error:.4f} | {row.mean_n_iter:.0f} |")
        if task == "FIREs":
            again, *_ = run_task(task, args.data, args.n_jobs)
            same = again["average_precision"].equals(table["average_precision"])
            print(f"\nsecond run identical fold by fold: {same}")


if __name__ == "__main__":
    main()
