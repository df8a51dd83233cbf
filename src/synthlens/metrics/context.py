"""What a metric is computed from, and the small contract every metric class follows.

A metric is a small class (as in torchmetrics). Its class attributes declare everything about
it, once: ``name``, ``direction``, ``family``, display ``label``, ``description``,
``reference``, what it ``needs``, the smallest sample size it accepts (``min_n``), the
feature ``distances`` it is defined for, and ``redundant_with`` where its value is a function
of another metric's. :mod:`synthlens.metrics.catalogue` reads these attributes; nothing else
repeats them. Hyperparameters are constructor arguments with one default each.

A :class:`SetMetric` scores one synthetic set: :meth:`SetMetric.compute` turns an
:class:`EvaluationContext` into a :class:`~synthlens.metrics.base.MetricResult`, applying the
small-N guard first; the base class also owns the per-class loop and the bootstrap interval.
The context computes shared work (the neighbour sweeps, feature moments) lazily, once per
synthetic set, so metrics never repeat it.

This module imports neither torch nor the k-NN engine, so the catalogue can be read cheaply.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np

from synthlens.metrics.base import UNDEFINED_FOR_CLASS, Direction, MetricResult, PerClass
from synthlens.metrics.moments import Gaussian, InnerProducts
from synthlens.metrics.reference import RealReference, SetNeighbourhoods
from synthlens.stats import percentile_ci

Family = Literal["fidelity", "variety", "privacy"]
Need = Literal["features", "holdout", "labels", "images", "classifier", "run"]
Classifier = Callable[[np.ndarray], np.ndarray]
PerClassOver = Literal["synthetic", "real", "holdout"]

FAMILIES: tuple[Family, ...] = ("fidelity", "variety", "privacy")

# How the small-N guard names a missing input ("needs images, their labels and a classifier").
_NEED_WORDS = {"features": "features", "images": "images", "labels": "their labels",
               "classifier": "a classifier",
               "holdout": "a held-out real set (RealReference.fit(holdout=...))"}


@dataclass
class EvaluationContext:
    """One synthetic set (features and/or images) with its reference.

    ``seed`` makes every bootstrap reproducible (each metric draws from its own stream, see
    :meth:`rng`); ``per_class`` asks the neighbour sweeps for class-conditional
    neighbourhoods too (the per-class values of the k-NN metrics).
    """

    reference: RealReference | None = None
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    classifier: Classifier | None = None
    class_names: Sequence[str] | None = None
    seed: int = 0
    per_class: bool = True

    @cached_property
    def neighbourhoods(self) -> SetNeighbourhoods:
        assert self.reference is not None and self.features is not None
        return self.reference.compare(self.features, self.labels, per_class=self.per_class,
                                      products=self.products)

    @cached_property
    def products(self) -> InnerProducts | None:
        """The set's inner products, shared by the sweeps and the moment metrics in a
        high-dimensional space (``None`` elsewhere: see
        :meth:`~synthlens.metrics.reference.RealReference.set_products`)."""
        given = self.__dict__.get("neighbourhoods")
        if given is not None and given.products is not None:
            return given.products
        if self.reference is None or self.features is None:
            return None
        return self.reference.set_products(self.features)

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

    def has(self, need: Need) -> bool:
        """Whether the input a metric ``needs`` is there."""
        if need == "holdout":
            return self.reference is not None and self.reference.holdout_ is not None
        return {"features": self.features, "labels": self.labels, "images": self.images,
                "classifier": self.classifier}.get(need) is not None

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
    """What every metric declares; :mod:`synthlens.metrics.catalogue` reads these attributes."""

    name: ClassVar[str]
    direction: ClassVar[Direction]
    family: ClassVar[Family]
    label: ClassVar[str]
    """Short display label (report, findings)."""
    description: ClassVar[str]
    """What is computed, in plain words (the report shows it)."""
    reference: ClassVar[str]
    needs: ClassVar[tuple[Need, ...]] = ("features",)
    min_n: ClassVar[int] = 2
    distances: ClassVar[tuple[str, ...]] = ("euclidean", "cosine", "hamming")
    """Feature distances the metric is defined for (FID needs float features, not codes)."""
    redundant_with: ClassVar[str | None] = None
    """Another metric this one is a function of (``privacy`` = 1 − ``copy_rate``): the
    analysis counts their shared signal once, under that metric."""


class SetMetric(Metric, ABC):
    """A metric of one synthetic set. Subclasses declare the class attributes and implement
    :meth:`score`; :meth:`compute` applies the small-N guard (:meth:`guard`) first.

    Parameters
    ----------
    n_bootstrap:
        Bootstrap resamples of the percentile interval (0: no interval). Metrics without an
        interval (see ``docs/metrics.md``) accept and ignore it.
    level:
        Confidence level of the interval.

    Subclasses with hyperparameters of their own take them as keyword arguments and pass
    ``**interval`` (these two) on, so each default is written once.
    """

    def __init__(self, *, n_bootstrap: int = 200, level: float = 0.95) -> None:
        self.n_bootstrap = int(n_bootstrap)
        self.level = float(level)

    def compute(self, ctx: EvaluationContext) -> MetricResult:
        reason = self.guard(ctx)
        if reason is not None:
            return self.skipped(ctx, reason)
        return self.score(ctx)

    @abstractmethod
    def score(self, ctx: EvaluationContext) -> MetricResult:
        """The metric itself, on a context that passed :meth:`guard`."""

    def guard(self, ctx: EvaluationContext) -> str | None:
        """The small-N guard: why the metric cannot be computed on ``ctx``, or None.

        Checks that every input in ``needs`` is there (naming those missing), that a held-out
        set (where needed) has at least ``min_n`` samples, and that the set has at least
        ``min_n`` samples.
        """
        missing = [_NEED_WORDS[need] for need in self.needs if not ctx.has(need)]
        if missing:
            return "needs " + _and(missing)
        if "holdout" in self.needs:
            assert ctx.reference is not None and ctx.reference.holdout_ is not None
            if ctx.reference.holdout_.shape[0] < self.min_n:
                return f"needs at least {self.min_n} held-out real samples"
        if ctx.n < self.min_n:
            unit = "images" if "images" in self.needs else "samples"
            return f"needs at least {self.min_n} {unit}, got {ctx.n}"
        return None

    # -- results ----------------------------------------------------------------------------------

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

    def mean_result(self, ctx: EvaluationContext, values: np.ndarray, *,
                    per_class: dict[str, float] | None = None, **details: Any) -> MetricResult:
        """A mean of one value per unit (sample, image pair), with its bootstrap interval."""
        return self.result(ctx, values.mean(), ci=self.bootstrap(ctx, values),
                           per_class=per_class, **details)

    # -- the one percentile bootstrap ---------------------------------------------------------

    def rng(self, ctx: EvaluationContext) -> np.random.Generator:
        """This metric's bootstrap stream."""
        return ctx.rng("bootstrap/" + self.name)

    def bootstrap(self, ctx: EvaluationContext, values: np.ndarray,
                  statistic: Callable[[np.ndarray], np.ndarray] | None = None
                  ) -> tuple[float, float] | None:
        """Percentile bootstrap interval of a per-sample statistic (the mean by default).

        ``values`` has the resampled unit on axis 0. ``statistic`` maps a (B, n, ...) array of
        resamples to B values; resamples are drawn in chunks so memory stays small.
        """
        values = np.asarray(values)
        n = values.shape[0]
        if self.n_bootstrap <= 0 or n < 2:
            return None
        rng = self.rng(ctx)
        stats = []
        chunk = max(1, int(4_000_000 // max(n, 1)))
        done = 0
        while done < self.n_bootstrap:
            b = min(chunk, self.n_bootstrap - done)
            idx = rng.integers(0, n, size=(b, n))
            sample = values[idx]
            stats.append(sample.mean(axis=1) if statistic is None else statistic(sample))
            done += b
        return percentile_ci(np.concatenate(stats), self.level)

    def replicates(self, ctx: EvaluationContext,
                   statistic: Callable[[np.random.Generator], float]
                   ) -> tuple[float, float] | None:
        """Percentile interval of ``n_bootstrap`` replicates ``statistic(rng)``, for statistics
        that resample more than one unit (undefined replicates, NaN, are dropped)."""
        if self.n_bootstrap <= 0:
            return None
        rng = self.rng(ctx)
        return percentile_ci(np.array([statistic(rng) for _ in range(self.n_bootstrap)]),
                             self.level)

    # -- the one per-class loop -----------------------------------------------------------------

    def per_class(self, ctx: EvaluationContext, value_of: Callable[[int, np.ndarray], float],
                  *, over: PerClassOver = "synthetic", min_n: int = 1, min_real: int = 0,
                  undefined: str = UNDEFINED_FOR_CLASS) -> PerClass | None:
        """``{class name: value_of(label, mask)}`` over every class, NaN (with the reason in
        the result's ``details["per_class_skipped"]``) where a class is absent or too small.

        ``over="synthetic"``: the labels of the synthetic set; ``mask`` selects that class's
        synthetic samples, at least ``min_n`` of them. ``over="real"``: the real training
        classes (both sets labelled); ``mask`` as before, and the real class needs at least
        ``min_real`` samples. ``over="holdout"``: the real training classes (real and
        held-out sets labelled); ``mask`` selects that class's held-out samples (at least
        ``min_n``), the real class needs ``min_real``. Every class of the data is listed
        (those of the real reference, else of ``class_names``), so a class the synthetic set
        lacks is NaN, not left out. ``undefined`` is the reason given where ``value_of``
        itself returns NaN. None without the labels.
        """
        ref = ctx.reference
        if over == "synthetic":
            if ctx.labels is None:
                return None
            of = ctx.labels
        else:
            if ref is None or ref.labels_ is None:
                return None
            of = ctx.labels if over == "real" else ref.holdout_labels_
            if of is None:
                return None
        classes = classes_of(ctx, of) if over == "synthetic" else list(ref.class_indices_)
        unit = "held-out real" if over == "holdout" else "synthetic"
        out = PerClass()
        for label in classes:
            name = ctx.class_name(label)
            mask = of == label
            count = int(mask.sum())
            n_real = None if over == "synthetic" or ref is None else \
                ref.class_indices_.get(label, np.empty(0)).size
            if count == 0:
                reason = f"no {unit} images of this class"
            elif count < min_n:
                reason = (f"{count} {unit} image{'s' if count > 1 else ''} of this class, "
                          f"below the minimum of {min_n}")
            elif n_real is not None and n_real < min_real:
                reason = (f"{n_real} real training image{'s' if n_real != 1 else ''} of this "
                          f"class, below the minimum of {min_real}")
            else:
                reason = None
            if reason is not None:
                out[name] = math.nan
                out.reasons[name] = reason
                continue
            value = float(value_of(label, mask))
            out[name] = value
            if not math.isfinite(value):
                out.reasons[name] = undefined
        return out

    def by_label(self, ctx: EvaluationContext, values: np.ndarray) -> dict[str, float] | None:
        """Per-sample ``values`` averaged within each synthetic label (a breakdown)."""
        return self.per_class(ctx, lambda _, mask: np.mean(values[mask]))

    def conditional(self, ctx: EvaluationContext,
                    value_of: Callable[[int, SetNeighbourhoods], float]
                    ) -> dict[str, float] | None:
        """Class-conditional values: ``value_of(label, neighbourhoods)`` of synthetic class c
        against real class c (NaN where either class is too small for its k-NN)."""
        if not ctx.per_class:
            return None
        nb = ctx.neighbourhoods
        k = ctx.reference.k if ctx.reference is not None else 0

        def value(label: int, _mask: np.ndarray) -> float:
            sub = nb.per_class.get(label)
            return math.nan if sub is None else value_of(label, sub)

        return self.per_class(ctx, value, over="real", min_n=self.min_n,
                              undefined=f"too few images of this class for its k-NN "
                                        f"neighbourhoods (needs more than k = {k} real and "
                                        "synthetic)")


def classes_of(ctx: EvaluationContext, labels: np.ndarray) -> list[int]:
    """Every class of the data: the real reference's, else ``class_names``', else those in
    ``labels``."""
    ref = ctx.reference
    if ref is not None and getattr(ref, "class_indices_", None):
        known = set(ref.class_indices_)
    elif ctx.class_names is not None:
        known = set(range(len(ctx.class_names)))
    else:
        known = set()
    return sorted(known | {int(c) for c in np.unique(labels)})


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
