"""Statistical primitives shared by every layer (torch-free): one percentile interval and one
AUROC. Metrics, utility and analysis call these; nothing else computes either."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def percentile_ci(samples: np.ndarray, level: float = 0.95, *,
                  min_finite: int = 1) -> tuple[float, float] | None:
    """Percentile interval at ``level`` of the finite ``samples`` (NaN and infinite replicates
    dropped); ``None`` when fewer than ``min_finite`` finite samples remain."""
    values = np.asarray(samples, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.size < min_finite:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve for scores where higher means positive (ties count half):
    the Mann-Whitney U statistic over ``n_pos * n_neg``."""
    positive = np.asarray(positive, dtype=np.float64).ravel()
    negative = np.asarray(negative, dtype=np.float64).ravel()
    if positive.size == 0 or negative.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = positive.size, negative.size
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
