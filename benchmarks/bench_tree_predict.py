"""Time to predict with a cross-assay regressor's trees (``epitensor.evaluation.trees.TreeEnsemble``).

The cross-assay regressor (``et.evaluation.cross_assay``, the model's ``cross_assay`` stack)
predicts every bin of a region: on the ENCODE peaks compendium that is 4 million rows of 48
features, 100 trees each. ``TreeEnsemble.predict`` walks the rows in pieces of
``PIECE_ROWS``, each converted to float64 once and walked by every tree. Measured in the same run:
the ensemble with several piece sizes (the package's default marked) and scikit-learn's own
``HistGradientBoostingRegressor.predict`` on the fitted regressor, with the largest difference
from it. Random features; a regressor of 7 or 63 leaves fitted on 120,000 rows.

Usage::

    python benchmarks/bench_tree_predict.py [--rows 2000000] [--features 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine  # (and the source tree on sys.path)
from sklearn.ensemble import HistGradientBoostingRegressor

from epitensor.evaluation import trees


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--features", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.random((120_000, args.features)).astype(np.float32)
    y = 2 * X[:, 0] + np.sin(5 * X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(0, 0.1, len(X))
    rows = rng.random((args.rows, args.features)).astype(np.float32)
    default = trees.PIECE_ROWS
    print(f"{args.rows:,} rows x {args.features} features, 100 trees, {args.threads} threads; {machine()}")
    table = []
    for leaves in (7, 63):
        reg = HistGradientBoostingRegressor(max_iter=100, max_leaf_nodes=leaves, early_stopping=False, random_state=0)
        reg.fit(X, y)
        ensemble = trees.TreeEnsemble.from_regressor(reg)
        t = time.perf_counter()
        reference = reg.predict(rows)
        table.append((leaves, "scikit-learn predict", time.perf_counter() - t, 0.0))
        for piece in sorted({default, 2**10, 2**14, 2**18}):
            trees.PIECE_ROWS = piece
            t = time.perf_counter()
            got = ensemble.predict(rows, args.threads)
            mark = " (default)" if piece == default else ""
            table.append((leaves, f"TreeEnsemble, pieces of {piece:,} rows{mark}", time.perf_counter() - t,
                          float(np.abs(got - reference).max())))
        trees.PIECE_ROWS = default
    print(f"\n{'leaves':>6}  {'method':<46} {'seconds':>8}  {'max |diff| from scikit-learn':>28}")
    for leaves, name, seconds, diff in table:
        print(f"{leaves:>6}  {name:<46} {seconds:>8.2f}  {diff:>28.2e}")


if __name__ == "__main__":
    main()
