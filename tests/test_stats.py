"""The shared statistical primitives against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from synthlens.stats import auroc, percentile_ci


def test_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 40).astype(float)
    neg = rng.integers(0, 4, 60).astype(float)
    labels = np.r_[np.ones(40), np.zeros(60)]
    assert auroc(pos, neg) == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]), abs=1e-12)
    with pytest.raises(ValueError):
        auroc(pos, np.array([]))


def test_percentile_ci_drops_non_finite_and_honours_min_finite():
    samples = np.r_[np.arange(101, dtype=float), np.nan, np.inf]
    assert percentile_ci(samples, 0.9) == pytest.approx((5.0, 95.0))
    assert percentile_ci(np.array([np.nan])) is None
    assert percentile_ci(np.arange(5.0), min_finite=10) is None
