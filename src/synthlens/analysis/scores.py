"""One score per axis (fidelity, variety, privacy, utility) per set, for planes and radars.

Each metric is sign-aligned (better = higher) and min-max scaled across the compared sets,
so 0 is the worst and 1 the best set *of this run*; a category's score is the mean over
its metrics. A metric that is equal for every set carries no information and is left out,
and so is one that only repeats another's signal (``privacy`` beside ``copy_rate``).
The scores are relative: adding or removing a set changes them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from synthlens.analysis import table
from synthlens.analysis.categories import CATEGORIES, counted_once, metric_category


def minmax_rows(values: np.ndarray) -> np.ndarray:
    """Scale each row to [0, 1] over its finite entries; constant rows become all-NaN."""
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: handled below
        lo = np.nanmin(values, axis=-1, keepdims=True)
        hi = np.nanmax(values, axis=-1, keepdims=True)
    span = hi - lo
    ok = np.isfinite(span) & (span > 1e-12 * np.maximum(1.0, np.abs(hi)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (values - lo) / np.where(ok, span, 1.0)
    return np.where(ok, out, np.nan)


def category_metrics(results: dict[str, Any], set_names: list[str]) -> dict[str, list[str]]:
    """The metrics that feed each category's score (utility: raw scores, not gains; a metric
    that repeats another's signal, such as ``privacy`` = 1 − ``copy_rate``, counts once)."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for metric in counted_once(table.metric_names(results, set_names)):
        category = metric_category(metric)
        if category in out and not table.is_gain(metric):
            out[category].append(metric)
    return out


def aligned_matrix(results: dict[str, Any], set_names: list[str], metrics: list[str]
                   ) -> np.ndarray:
    """(n_metrics, n_sets) sign-aligned values, NaN where missing."""
    mat = np.full((len(metrics), len(set_names)), np.nan)
    for i, metric in enumerate(metrics):
        s = table.sign(results, metric)
        for j, name in enumerate(set_names):
            mat[i, j] = s * table.value(results, name, metric)
    return mat


def category_scores(results: dict[str, Any], set_names: list[str]
                    ) -> tuple[dict[str, dict[str, float | None]], dict[str, list[str]]]:
    """({set: {category: score in [0, 1] or None}}, {category: metrics that informed it})."""
    contributors = category_metrics(results, set_names)
    scores: dict[str, dict[str, float | None]] = {name: {} for name in set_names}
    used: dict[str, list[str]] = {}
    for category, metrics in contributors.items():
        if not metrics:
            continue
        scaled = minmax_rows(aligned_matrix(results, set_names, metrics))
        informative = [m for m, row in zip(metrics, scaled, strict=True)
                       if np.isfinite(row).any()]
        used[category] = informative
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a set with no metric: NaN
            mean = np.nanmean(scaled, axis=0) if informative else np.full(len(set_names),
                                                                           np.nan)
        for name, v in zip(set_names, mean, strict=True):
            scores[name][category] = float(v) if math.isfinite(v) else None
    return scores, used
