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


def test_weighted_auroc_is_auroc_bit_for_bit_and_counts_weights():
    from scipy.stats import rankdata

    from synthlens.stats import weighted_auroc

    rng = np.random.default_rng(1)
    for trial in range(50):
        n_pos, n_neg = rng.integers(1, 400, 2)
        pos = rng.integers(0, 6, n_pos).astype(float) if trial % 2 else rng.normal(0.4, 1, n_pos)
        neg = rng.integers(0, 5, n_neg).astype(float) if trial % 2 else rng.normal(0, 1, n_neg)
        # the Mann-Whitney rank formula, written out: equal to the last bit
        ranks = rankdata(np.r_[pos, neg])
        u = (ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        assert auroc(pos, neg) == u
    scores = rng.integers(0, 4, 30).astype(float)
    flags = rng.random(30) < 0.4
    counts = rng.integers(0, 4, (5, 30)).astype(float)
    got = weighted_auroc(scores, flags, counts)
    for row, w in zip(got, counts, strict=True):  # weight k == the sample repeated k times
        rep = np.repeat(np.arange(30), w.astype(int))
        assert row == pytest.approx(auroc(scores[rep][flags[rep]], scores[rep][~flags[rep]]))
    assert np.isnan(weighted_auroc(scores, flags, np.where(flags, 0.0, 1.0)[None])[0])
    assert np.isnan(auroc(np.array([1.0, np.nan]), np.array([0.0])))


def test_macro_auroc_equals_sklearn_binary_and_one_vs_rest():
    from synthlens.stats import class_aurocs, macro_auroc

    rng = np.random.default_rng(2)
    for k in (2, 4):
        labels = rng.integers(0, k, 120)
        proba = rng.dirichlet(np.ones(k), 120) + np.eye(k)[labels] * 0.3
        proba /= proba.sum(axis=1, keepdims=True)
        expected = (roc_auc_score(labels, proba[:, 1]) if k == 2 else
                    roc_auc_score(labels, proba, multi_class="ovr", average="macro"))
        assert macro_auroc(labels, proba)[0] == pytest.approx(expected, abs=1e-12)
        np.testing.assert_allclose(class_aurocs(labels, proba)[0],
                                   [roc_auc_score(labels == c, proba[:, c]) for c in range(k)],
                                   atol=1e-12)
    with pytest.raises(ValueError, match="K >= 2"):
        macro_auroc(np.zeros(3, int), np.ones((3, 1)))
