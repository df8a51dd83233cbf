"""Utility scores and statistics against scikit-learn, SciPy and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from synthlens.stats import percentile_ci
from synthlens.utility.evaluate import MIN_CI_REPLICATES
from synthlens.utility.scores import compute_scores, per_class_scores, score_names
from synthlens.utility.stats import (
    bootstrap_weights,
    min_wilcoxon_p,
    wilcoxon_note,
    wilcoxon_p,
)


def _random_case(n_classes: int, n: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    # rounded probabilities produce ties, which AUROC must score as one half
    proba = np.round(rng.dirichlet(np.ones(n_classes), n), 2)
    proba /= proba.sum(axis=1, keepdims=True)
    return labels, proba


def _sklearn_scores(labels, proba, ordinal):
    pred = proba.argmax(axis=1)
    out = {
        "accuracy": skm.accuracy_score(labels, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(labels, pred),
        "auroc": (skm.roc_auc_score(labels, proba[:, 1]) if proba.shape[1] == 2 else
                  skm.roc_auc_score(labels, proba, multi_class="ovr", average="macro")),
        "f1_macro": skm.f1_score(labels, pred, average="macro"),
    }
    if ordinal:
        out["qwk"] = skm.cohen_kappa_score(labels, pred, weights="quadratic")
    return out


@pytest.mark.parametrize(("n_classes", "task"), [(2, "binary"), (4, "multiclass"),
                                                 (5, "ordinal")])
def test_scores_match_sklearn(n_classes, task):
    labels, proba = _random_case(n_classes)
    ours = compute_scores(labels, proba, task)
    ref = _sklearn_scores(labels, proba, task == "ordinal")
    assert set(ours) == set(ref) == set(score_names(task))
    for name, value in ref.items():
        assert ours[name].shape == (1,)
        assert ours[name][0] == pytest.approx(value, abs=1e-12), name


@pytest.mark.parametrize(("n_classes", "task"), [(2, "binary"), (3, "ordinal")])
def test_weighted_scores_equal_scores_of_the_resampled_set(n_classes, task):
    """A bootstrap weight row must give the score of the test set with each image repeated
    that many times (the definition of a bootstrap replicate)."""
    labels, proba = _random_case(n_classes, n=80, seed=3)
    weights = bootstrap_weights(len(labels), 7, seed=1)
    ours = compute_scores(labels, proba, task, weights)
    for b in range(weights.shape[0]):
        counts = weights[b].astype(int)
        ref = _sklearn_scores(np.repeat(labels, counts), np.repeat(proba, counts, axis=0),
                              task == "ordinal")
        for name, value in ref.items():
            assert ours[name][b] == pytest.approx(value, abs=1e-12), (name, b)


def test_hand_computed_binary_case():
    # labels 0,0,1,1 with positive-class scores 0.1, 0.6, 0.6, 0.9:
    # pairs (pos, neg): (0.6 vs 0.1) win, (0.6 vs 0.6) tie, (0.9 vs both) win -> 3.5 / 4
    labels = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.6, 0.9])
    scores = compute_scores(labels, np.stack([1 - p1, p1], axis=1), "binary")
    assert scores["auroc"][0] == pytest.approx(0.875)
    # predictions 0, 1, 1, 1: accuracy 3/4; recalls 1/2 and 1 -> balanced 3/4
    assert scores["accuracy"][0] == pytest.approx(0.75)
    assert scores["balanced_accuracy"][0] == pytest.approx(0.75)
    # F1: class 0: 2*1/(2*1+0+1) = 2/3; class 1: 2*2/(2*2+1+0) = 4/5
    assert scores["f1_macro"][0] == pytest.approx((2 / 3 + 4 / 5) / 2)
    per_class = per_class_scores(labels, np.stack([1 - p1, p1], axis=1))
    np.testing.assert_allclose(per_class["recall"], [0.5, 1.0])
    np.testing.assert_allclose(per_class["f1"], [2 / 3, 4 / 5])


def test_per_class_auroc_matches_one_vs_rest():
    labels, proba = _random_case(4, seed=5)
    per_class = per_class_scores(labels, proba)
    for k in range(4):
        assert per_class["auroc"][k] == pytest.approx(
            skm.roc_auc_score(labels == k, proba[:, k]))
    np.testing.assert_allclose(per_class["recall"],
                               skm.recall_score(labels, proba.argmax(1), average=None))


def test_qwk_penalises_far_errors_more():
    labels = np.array([0, 1, 2, 3, 4] * 4)
    near = np.eye(5)[np.clip(labels + 1, 0, 4)]
    far = np.eye(5)[np.clip(4 - labels, 0, 4)]
    assert compute_scores(labels, near, "ordinal")["qwk"][0] > \
        compute_scores(labels, far, "ordinal")["qwk"][0]


def test_score_input_errors():
    with pytest.raises(ValueError, match="task"):
        score_names("multilabel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        compute_scores(np.array([0, 3]), np.ones((2, 2)) / 2, "binary")
    with pytest.raises(ValueError, match="scores must be"):
        compute_scores(np.array([0, 1]), np.ones(2), "binary")


def test_wilcoxon_against_hand_computed_exact_values():
    # n = 3, all positive: P(W+ = 6) = 1/8 under H0, two-sided 1/4
    assert wilcoxon_p([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    assert min_wilcoxon_p(3) == pytest.approx(0.25)
    assert min_wilcoxon_p(5) == pytest.approx(0.0625)
    # mixed signs: ranks 1, 2 positive, 3 negative -> W- = 3, P(W- <= 3) = 4/8 -> p = 1
    assert wilcoxon_p([1.0, 2.0, -3.0]) == pytest.approx(1.0)
    # zero differences are dropped; none left means no evidence at all
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert wilcoxon_p([0.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert "0.25" in wilcoxon_note(3) and "cannot reach p < 0.05" in wilcoxon_note(3)
    assert "cannot reach" not in wilcoxon_note(6)


def test_bootstrap_weights_and_percentile_ci():
    w = bootstrap_weights(50, 300, seed=0)
    assert w.shape == (300, 50)
    assert (w.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(w, bootstrap_weights(50, 300, seed=0))
    assert not np.array_equal(w, bootstrap_weights(50, 300, seed=1))
    lo, hi = percentile_ci(np.arange(1001, dtype=float), 0.9, min_finite=MIN_CI_REPLICATES)
    assert (lo, hi) == pytest.approx((50.0, 950.0))
    # utility intervals need MIN_CI_REPLICATES finite replicates
    few = np.r_[np.arange(MIN_CI_REPLICATES - 1.0), np.full(5, np.nan)]
    assert percentile_ci(few, 0.95, min_finite=MIN_CI_REPLICATES) is None
    assert percentile_ci(np.r_[few, 9.0], 0.95, min_finite=MIN_CI_REPLICATES) is not None
