"""The latent representation at work: what a trained model's factors are for.

The second Avocado paper uses the learned factors as features for downstream models (gene
expression, FIREs, promoter-enhancer interactions, replication timing), as similarities between
biosamples or positions, as 2-D maps, and to choose a functionally diverse set of biosamples or
positions to measure next. The submodules:

- ``tasks``: the paper's downstream protocol (:func:`compare_features`, :func:`summarize_folds`);
- ``features``: features at regions (:func:`factors_at_regions`, :func:`tracks_at_regions`,
  :func:`annotate_positions`);
- ``similarity``: :func:`factor_similarity`, :func:`cluster_order`;
- ``embedding``: :func:`embed_factors` (UMAP with the ``viz`` extra, PCA otherwise);
- ``selection``: :func:`select_diverse`, :func:`diverse_biosamples_for_assay`;
- ``plot``: :func:`plot_feature_comparison`, :func:`plot_similarity`, :func:`plot_embedding`.

The reference demo's feature sets are :func:`epitensor.datasets.avocado_downstream`.
"""

from .embedding import embed_factors, umap_available
from .features import (
    POSITION_CLASSES,
    annotate_positions,
    factors_at_regions,
    region_table,
    tracks_at_regions,
)
from .plot import plot_embedding, plot_feature_comparison, plot_similarity
from .selection import diverse_biosamples_for_assay, select_diverse
from .similarity import cluster_order, factor_similarity
from .tasks import (
    BASELINE,
    baseline_average_precision,
    compare_features,
    downstream_folds,
    fold_average_precision,
    summarize_folds,
)

__all__ = [
    "BASELINE",
    "POSITION_CLASSES",
    "annotate_positions",
    "baseline_average_precision",
    "cluster_order",
    "compare_features",
    "diverse_biosamples_for_assay",
    "downstream_folds",
    "embed_factors",
    "factor_similarity",
    "factors_at_regions",
    "fold_average_precision",
    "plot_embedding",
    "plot_feature_comparison",
    "plot_similarity",
    "region_table",
    "select_diverse",
    "summarize_folds",
    "tracks_at_regions",
    "umap_available",
]
