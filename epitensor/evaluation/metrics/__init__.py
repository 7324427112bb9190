"""Imputation metrics of the Avocado papers and of the ENCODE Imputation Challenge (EIC).

Every metric follows the challenge's scoring code (``score_metrics.py`` / ``score.py`` of
ENCODE-DCC/imputation_challenge) definition for definition:

============  ==============================================================================
mse           mean squared error over all bins (the paper's ``mseGlobal``)
gwcorr        Pearson correlation (``numpy.corrcoef``)
gwspear       Spearman correlation (Pearson of average ranks, as ``scipy.stats.spearmanr``)
mse1obs       MSE over bins whose observed value is >= the value at rank ``int(0.01 N)``
              from the top (ties at the threshold are kept, so possibly more than 1%)
mse1imp       the same with the threshold taken on the imputed track
mseprom       MSE pooled over promoters: + strand bins ``[s-80, s)``, - strand ``[e, e+80)``
              with ``s = start // 25``, ``e = end // 25 + 1``; bins in several genes count
              once per gene (the challenge sums per gene, then divides)
msegene       MSE pooled over gene bodies ``[s, e)``
mseenh        MSE pooled over enhancers ``[start // 25, end // 25 + 1)``
msevar        squared error weighted by the per-bin variance of the assay across biosamples
              (population variance), divided by the sum of the weights
match1        fraction of the top-1% observed bins that are top-1% imputed bins
catch1obs     fraction of the top-1% observed bins within the top-5% imputed bins
catch1imp     fraction of the top-1% imputed bins within the top-5% observed bins
aucobs1       ROC AUC of the imputed values for telling the top-1% observed bins
aucimp1       ROC AUC of the observed values for telling the top-1% imputed bins
============  ==============================================================================

The challenge reports ``match1``/``catch1obs``/``catch1imp`` as counts; epitensor reports them
as fractions of ``n = int(0.01 N)`` (count = fraction * n), so tracks of different lengths compare.

The functions live in submodules by responsibility: :mod:`.names` (the tables and name
resolution), :mod:`.ranks` (sorts, ranks, thresholds), :mod:`.track` (one metric at a time),
:mod:`.peaks` (peak-level metrics) and :mod:`.combined` (:func:`score_arrays`, many metrics
sharing one sort per track). Ranks are invariant under a strictly increasing transform, so with
``transform=np.sinh`` (the challenge's untransformed scale) ranks come from the arcsinh values
and only the value-based metrics see the transformed values.

Examples
--------
>>> import numpy as np
>>> y_true = np.array([0.0, 1.0, 2.0, 3.0])
>>> y_pred = np.array([0.0, 1.0, 2.0, 5.0])
>>> mse(y_true, y_pred)
1.0
>>> round(gwspear(y_true, y_pred), 6)
1.0
"""

from .combined import score_arrays
from .names import (
    EIC_METRICS,
    HIGHER_IS_BETTER,
    PAPER_METRICS,
    PEAK_METRICS,
    REGION_METRICS,
    higher_is_better,
    resolve_metrics,
)
from .peaks import average_precision, epr, window_mean
from .ranks import average_ranks, doubled_ranks, sorted_with_order, top_threshold, top_thresholds
from .track import (
    aucimp1,
    aucobs1,
    catch1imp,
    catch1obs,
    gwcorr,
    gwspear,
    match1,
    mse,
    mse1imp,
    mse1obs,
    msevar,
    pearson,
    region_mse,
)

__all__ = [
    "EIC_METRICS", "HIGHER_IS_BETTER", "PAPER_METRICS", "PEAK_METRICS", "REGION_METRICS",
    "aucimp1", "aucobs1", "average_precision", "average_ranks", "catch1imp", "catch1obs",
    "doubled_ranks", "epr", "gwcorr", "gwspear", "higher_is_better", "match1", "mse", "mse1imp",
    "mse1obs", "msevar", "pearson", "region_mse", "resolve_metrics", "score_arrays",
    "sorted_with_order", "top_threshold", "top_thresholds", "window_mean",
]
