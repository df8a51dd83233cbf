"""synthlens.analysis: does fidelity predict utility in this run, and how sure can we be?

:func:`analyse` turns a ``results.json`` dict into its ``analysis`` section (rank
correlations with bootstrap CIs and permutation p-values, the fidelity-variety trade-off,
utility gains over the real-only baseline, findings in plain words).
"""

from synthlens.analysis.categories import (
    CATEGORIES,
    counted_once,
    metric_category,
    metric_description,
    metric_label,
)
from synthlens.analysis.correlations import (
    ANALYSIS_VERSION,
    analyse,
    primary_utility,
    sample_size_statement,
    utility_status,
)
from synthlens.analysis.scores import category_scores
from synthlens.analysis.stats import (
    PermutationResult,
    benjamini_hochberg,
    correlation,
    kendall_rows,
    permutation_test,
    smallest_p_value,
    spearman_rows,
)

__all__ = [
    "ANALYSIS_VERSION",
    "CATEGORIES",
    "PermutationResult",
    "analyse",
    "benjamini_hochberg",
    "category_scores",
    "correlation",
    "counted_once",
    "kendall_rows",
    "metric_category",
    "metric_description",
    "metric_label",
    "permutation_test",
    "primary_utility",
    "sample_size_statement",
    "smallest_p_value",
    "spearman_rows",
    "utility_status",
]
