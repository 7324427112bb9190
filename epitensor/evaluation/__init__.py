"""Evaluation of imputations: the papers' and the ENCODE Imputation Challenge's metrics, baselines,
cross-validation folds, quality control, summary tables and figures.

The top-level :func:`epitensor.evaluate` is :func:`epitensor.evaluation.scoring.evaluate`; the
submodules are ``epitensor.evaluation.metrics``, ``.annotations``, ``.baselines`` (also
``epitensor.baselines``), ``.folds``, ``.stacking`` (a cross-assay regressor and its blend with the average activity), ``.smoothing`` (moving averages along the genome), ``.qc``, ``.report`` and ``.plot`` (also ``epitensor.plot``).
"""

from . import annotations, baselines, folds, metrics, plot, qc, report, scoring, smoothing, stacking
from .annotations import Annotations, load_annotations, read_bed
from .baselines import average_activity, most_similar_biosample
from .folds import cross_validate, cv_folds, fold_coverage, training_view
from .metrics import EIC_METRICS, PAPER_METRICS, score_arrays
from .qc import flag_outlier_tracks, qc_table, rank_next_experiments
from .report import improvement_table
from .scoring import evaluate
from .smoothing import smooth
from .stacking import cross_assay, stacked_baseline

__all__ = [
    "EIC_METRICS",
    "PAPER_METRICS",
    "Annotations",
    "annotations",
    "average_activity",
    "baselines",
    "cross_assay",
    "cross_validate",
    "cv_folds",
    "evaluate",
    "flag_outlier_tracks",
    "fold_coverage",
    "folds",
    "improvement_table",
    "load_annotations",
    "metrics",
    "most_similar_biosample",
    "plot",
    "qc",
    "qc_table",
    "rank_next_experiments",
    "read_bed",
    "report",
    "score_arrays",
    "scoring",
    "smooth",
    "smoothing",
    "stacked_baseline",
    "stacking",
    "training_view",
]
