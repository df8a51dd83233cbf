"""Classification scores on a test split, vectorised over bootstrap replicates.

Every score is computed from integer labels and an ``(N, K)`` matrix of class scores
(probabilities, or decision values for a linear SVM): the prediction is the arg-max, AUROC
ranks each class's column. Scores accept an optional ``(B, N)`` matrix of non-negative
sample weights; a bootstrap replicate is the weight vector of how often each test image
was drawn, so ``B`` replicates cost a few array operations rather than ``B`` calls to
scikit-learn. With weights all 1 every score equals scikit-learn's (see the tests):

- ``accuracy``: share of correct predictions;
- ``balanced_accuracy``: mean recall over the classes present in the labels;
- ``auroc``: binary AUROC of the positive class (label 1), or the unweighted mean of the
  one-vs-rest AUROCs (``roc_auc_score(multi_class="ovr", average="macro")``), both
  :func:`synthlens.stats.macro_auroc`;
- ``f1_macro``: unweighted mean F1 over the classes present in labels or predictions;
- ``qwk``: Cohen's kappa with quadratic weights (ordinal tasks only).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from synthlens.stats import class_aurocs, macro_auroc

TaskType = Literal["binary", "multiclass", "ordinal"]
TASK_TYPES: tuple[str, ...] = ("binary", "multiclass", "ordinal")
BASE_SCORES: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auroc", "f1_macro")


def score_names(task: TaskType) -> tuple[str, ...]:
    """The scores reported for a task type (ordinal adds quadratic-weighted kappa)."""
    if task not in TASK_TYPES:
        raise ValueError(f"unknown task type {task!r}; choose from {TASK_TYPES}")
    return (*BASE_SCORES, "qwk") if task == "ordinal" else BASE_SCORES


def _check(labels: np.ndarray, scores: np.ndarray,
           weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, K) with N = {labels.shape[0]} labels, "
                         f"got {scores.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got "
                         f"[{labels.min()}, {labels.max()}]")
    if weights is None:
        weights = np.ones((1, labels.shape[0]))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != labels.shape[0] or (weights < 0).any():
        raise ValueError(f"weights must be non-negative and (B, {labels.shape[0]}), "
                         f"got {weights.shape}")
    return labels, scores, weights


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int,
              weights: np.ndarray) -> np.ndarray:
    """Weighted confusion matrices ``(B, K, K)``: rows are true classes, columns predicted."""
    cell = labels * n_classes + predictions
    onehot = np.zeros((labels.shape[0], n_classes * n_classes))
    onehot[np.arange(labels.shape[0]), cell] = 1.0
    return (weights @ onehot).reshape(-1, n_classes, n_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def compute_scores(labels: np.ndarray, scores: np.ndarray, task: TaskType,
                   weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every score of :func:`score_names` ``(task)``, each an array ``(B,)`` (``(1,)``
    without weights)."""
    names = score_names(task)
    labels, scores, weights = _check(labels, scores, weights)
    n_classes = scores.shape[1]
    predictions = scores.argmax(axis=1)
    cm = confusion(labels, predictions, n_classes, weights)
    diag = np.diagonal(cm, axis1=1, axis2=2)
    rows, cols, total = cm.sum(axis=2), cm.sum(axis=1), cm.sum(axis=(1, 2))
    out: dict[str, np.ndarray] = {"accuracy": _safe_div(diag.sum(axis=1), total)}
    present = rows > 0
    recall = _safe_div(diag, rows)
    out["balanced_accuracy"] = _safe_div(np.where(present, recall, 0.0).sum(axis=1),
                                         present.sum(axis=1))
    out["auroc"] = macro_auroc(labels, scores, weights)
    f1 = _safe_div(2 * diag, rows + cols)
    used = (rows + cols) > 0
    out["f1_macro"] = _safe_div(np.where(used, f1, 0.0).sum(axis=1), used.sum(axis=1))
    if "qwk" in names:
        idx = np.arange(n_classes)
        penalty = (idx[:, None] - idx[None, :]) ** 2 / max(n_classes - 1, 1) ** 2
        expected = rows[:, :, None] * cols[:, None, :] / np.where(total > 0, total, 1.0)[
            :, None, None]
        out["qwk"] = 1.0 - _safe_div((penalty * cm).sum(axis=(1, 2)),
                                     (penalty * expected).sum(axis=(1, 2)))
    return {name: out[name] for name in names}


def per_class_scores(labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class ``recall``, ``f1`` and one-vs-rest ``auroc``, each ``(K,)``."""
    labels, scores, weights = _check(labels, scores, None)
    n_classes = scores.shape[1]
    cm = confusion(labels, scores.argmax(axis=1), n_classes, weights)[0]
    diag, rows, cols = np.diagonal(cm), cm.sum(axis=1), cm.sum(axis=0)
    return {"recall": _safe_div(diag, rows),
            "f1": np.where(rows + cols > 0, _safe_div(2 * diag, rows + cols), np.nan),
            "auroc": class_aurocs(labels, scores)[0]}
