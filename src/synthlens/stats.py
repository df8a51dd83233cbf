"""Statistical primitives shared by every layer (torch-free): one percentile interval and one
AUROC (:func:`auroc`, and :func:`weighted_auroc` for bootstrap replicates, which it is built
on). Metrics, utility and analysis call these; nothing else computes either."""

from __future__ import annotations

import numpy as np


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
    the Mann-Whitney U statistic over ``n_pos * n_neg``; NaN when a score is NaN."""
    positive = np.asarray(positive, dtype=np.float64).ravel()
    negative = np.asarray(negative, dtype=np.float64).ravel()
    if positive.size == 0 or negative.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    scores = np.concatenate([positive, negative])
    is_positive = np.arange(scores.size) < positive.size
    return float(weighted_auroc(scores, is_positive)[0])


#: Bootstrap replicates processed per block by :func:`weighted_auroc` ((block, N) floats).
_BLOCK = 256


def weighted_auroc(scores: np.ndarray, positive: np.ndarray,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """AUROC of one score column for each row of sample ``weights`` ``(B, N)``:
    P(score_pos > score_neg) + ½ P(tie), every sample counted as often as its weight.

    A bootstrap replicate is the vector of how often each sample was drawn, so ``B``
    replicates cost one sort. Without ``weights`` (all 1) it is :func:`auroc` (the same
    float: every partial sum is a whole or half number). Returns ``(B,)``; NaN where a row
    weighs no positive or no negative, or where a score is NaN.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if positive.shape != scores.shape:
        raise ValueError(f"positive must flag each of the {scores.size} scores, got "
                         f"{positive.shape}")
    weights = (np.ones((1, scores.size)) if weights is None
               else np.atleast_2d(np.asarray(weights, dtype=np.float64)))
    if weights.shape[1] != scores.size:
        raise ValueError(f"weights must be (B, {scores.size}), got {weights.shape}")
    out = np.full(weights.shape[0], np.nan)
    if np.isnan(scores).any():
        return out
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    pos = positive[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    for lo in range(0, weights.shape[0], _BLOCK):
        w = weights[lo:lo + _BLOCK, order]
        w_pos = np.add.reduceat(w * pos, starts, axis=1)
        w_neg = np.add.reduceat(w * (1.0 - pos), starts, axis=1)
        below = np.cumsum(w_neg, axis=1) - w_neg
        num = (w_pos * (below + 0.5 * w_neg)).sum(axis=1)
        den = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + _BLOCK] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def class_aurocs(labels: np.ndarray, scores: np.ndarray,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """One-vs-rest AUROC of every class: column ``k`` of ``scores`` ``(N, K)`` ranks class
    ``k`` against the rest; ``(B, K)`` for weights ``(B, N)`` (``(1, K)`` without)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    return np.stack([weighted_auroc(scores[:, k], labels == k, weights)
                     for k in range(scores.shape[1])], axis=1)


def macro_auroc(labels: np.ndarray, scores: np.ndarray,
                weights: np.ndarray | None = None) -> np.ndarray:
    """The AUROC of a classifier's class scores ``(N, K)``: with two classes that of the
    positive class (label 1); with more, the unweighted mean of :func:`class_aurocs`
    (scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``). ``(B,)``."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (N, K) with K >= 2 classes, got {scores.shape}")
    if scores.shape[1] == 2:
        return weighted_auroc(scores[:, 1], labels == 1, weights)
    return class_aurocs(labels, scores, weights).mean(axis=1)
