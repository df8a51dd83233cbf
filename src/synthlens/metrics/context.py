"""What a metric is computed from, and the small contract every metric class follows.

A metric is a small class (as in torchmetrics) with a ``name``, a ``direction``, a ``family``,
what it ``needs``, the smallest sample size it accepts (``min_n``) and a ``compute`` that
turns an :class:`EvaluationContext` into a :class:`~synthlens.metrics.base.MetricResult`.
The context computes shared work (the neighbour sweeps, feature moments) lazily, once per
synthetic set, so metrics never repeat it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np

from synthlens.metrics.base import Direction, MetricResult
from synthlens.metrics.moments import Gaussian
from synthlens.metrics.reference import RealReference, SetNeighbourhoods

Family = Literal["fidelity", "variety", "privacy"]
Need = Literal["features", "holdout", "labels", "images", "classifier", "run"]
Classifier = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvaluationContext:
    """One synthetic set (features and/or images) with its reference and options."""

    reference: RealReference | None = None
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    classifier: Classifier | None = None
    class_names: Sequence[str] | None = None
    seed: int = 0
    n_bootstrap: int = 200
    level: float = 0.95
    options: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def neighbourhoods(self) -> SetNeighbourhoods:
        assert self.reference is not None and self.features is not None
        return self.reference.compare(self.features, self.labels,
                                      per_class=self.options.get("per_class", True),
                                      realism=self.options.get("realism", True))

    @cached_property
    def moments(self) -> Gaussian:
        assert self.features is not None
        return Gaussian.fit(self.features)

    @property
    def n(self) -> int:
        if self.features is not None:
            return int(self.features.shape[0])
        assert self.images is not None
        return int(self.images.shape[0])

    def class_name(self, label: int) -> str:
        names = self.class_names
        if names is None and self.reference is not None:
            names = getattr(self.reference, "class_names_", None)
        if names is not None and 0 <= int(label) < len(names):
            return str(names[int(label)])
        return str(int(label))

    def rng(self, salt: str) -> np.random.Generator:
        """A generator for one metric, independent of the order metrics run in."""
        return np.random.default_rng([self.seed, *salt.encode()])

    def feature_space(self) -> dict[str, Any] | None:
        return None if self.reference is None else self.reference.feature_space


class Metric:
    """Base class: subclasses set the class attributes and implement :meth:`compute`."""

    name: ClassVar[str]
    direction: ClassVar[Direction]
    family: ClassVar[Family]
    needs: ClassVar[tuple[Need, ...]] = ("features",)
    min_n: ClassVar[int] = 2
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    distances: ClassVar[tuple[str, ...]] = ("euclidean", "cosine", "hamming")
    """Feature distances the metric is defined for (FID needs float features, not codes)."""

    def compute(self, ctx: EvaluationContext) -> MetricResult:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------

    def result(self, ctx: EvaluationContext, value: float, *, ci: tuple[float, float] | None = None,
               per_class: dict[str, float] | None = None, **details: Any) -> MetricResult:
        details.setdefault("n", ctx.n)
        return MetricResult(self.name, value, self.direction, ci=ci, per_class=per_class,
                            feature_space=ctx.feature_space() if "features" in self.needs
                            else None, details=details)

    def skipped(self, ctx: EvaluationContext, reason: str) -> MetricResult:
        """The small-N guard's answer: no value, the reason kept in ``details``."""
        warnings.warn(f"{self.name}: {reason}", RuntimeWarning, stacklevel=3)
        return MetricResult(self.name, math.nan, self.direction,
                            feature_space=ctx.feature_space() if "features" in self.needs
                            else None, details={"n": ctx.n, "skipped": reason})


def bootstrap_ci(values: np.ndarray, ctx: EvaluationContext, salt: str,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a per-sample statistic (the mean by default).

    ``values`` has the resampled unit on axis 0. ``statistic`` maps a (B, n, ...) array of
    resamples to B values; the mean is done in chunks so memory stays small.
    """
    values = np.asarray(values)
    n = values.shape[0]
    if ctx.n_bootstrap <= 0 or n < 2:
        return None
    rng = ctx.rng("bootstrap/" + salt)
    stats = []
    chunk = max(1, int(4_000_000 // max(n, 1)))
    done = 0
    while done < ctx.n_bootstrap:
        b = min(chunk, ctx.n_bootstrap - done)
        idx = rng.integers(0, n, size=(b, n))
        sample = values[idx]
        stats.append(sample.mean(axis=1) if statistic is None else statistic(sample))
        done += b
    all_stats = np.concatenate(stats).astype(np.float64)
    all_stats = all_stats[np.isfinite(all_stats)]
    if all_stats.size == 0:
        return None
    tail = (1 - ctx.level) / 2 * 100
    lo, hi = np.percentile(all_stats, [tail, 100 - tail])
    return float(lo), float(hi)


def per_label_means(values: np.ndarray, labels: np.ndarray | None, ctx: EvaluationContext,
                    min_n: int = 1) -> dict[str, float] | None:
    """Mean of a per-sample value within each synthetic label (NaN below ``min_n``)."""
    if labels is None:
        return None
    out: dict[str, float] = {}
    for label in np.unique(labels):
        sel = labels == label
        out[ctx.class_name(int(label))] = (float(np.mean(values[sel])) if sel.sum() >= min_n
                                           else math.nan)
    return out
