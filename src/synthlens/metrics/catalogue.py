"""The one catalogue of metrics, read from the metric classes.

Each fact about a metric (name, direction, family, display label, description, reference,
what it needs, minimum N, the distances it is defined for, whether it repeats another metric)
is a class attribute of its class (:mod:`synthlens.metrics.fidelity`, ``.variety``,
``.privacy``); this module only collects them. The registry, the lists of feature and image
metrics, the analysis' categories and the report's labels and descriptions are all read from
here. It imports neither torch nor the k-NN engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthlens.errors import InputError
from synthlens.metrics.base import Direction
from synthlens.metrics.context import FAMILIES, Family, Metric
from synthlens.metrics.fidelity import (
    FID,
    KID,
    AlphaPrecision,
    Density,
    FidelityPrivacyAware,
    LabelConsistency,
    Precision,
)
from synthlens.metrics.privacy import (
    MIAAUC,
    Authenticity,
    CopyRate,
    DCRRatio,
    MemorisationRate,
    Privacy,
)
from synthlens.metrics.variety import (
    BetaRecall,
    Coverage,
    MeanImageKB,
    MSSSIMDiversity,
    Recall,
    Variety,
    Vendi,
)

METRIC_CLASSES: tuple[type[Metric], ...] = (
    FID, KID, Precision, Density, AlphaPrecision, FidelityPrivacyAware,
    Recall, Coverage, BetaRecall, Vendi, MeanImageKB, Variety, MSSSIMDiversity, LabelConsistency,
    Authenticity, CopyRate, Privacy, DCRRatio, MemorisationRate, MIAAUC,
)
"""Every metric, in the order of results tables. FEATURE_METRICS and IMAGE_METRICS keep this
order, and run folders fingerprint those lists: reordering rescores resumed runs."""

__all__ = ["FAMILIES", "FEATURE_METRICS", "IMAGE_METRICS", "METRIC_CLASSES", "REGISTRY",
           "RUN_METRICS", "MetricSpec", "default_feature_metrics", "metric_class",
           "metric_spec"]


@dataclass(frozen=True)
class MetricSpec:
    """What the analysis, the report and the docs read about a metric (its class's attributes)."""

    name: str
    direction: Direction
    family: Family
    label: str
    description: str
    reference: str
    needs: tuple[str, ...]
    min_n: int
    distances: tuple[str, ...]
    redundant_with: str | None

    @classmethod
    def of(cls, metric: type[Metric]) -> MetricSpec:
        return cls(metric.name, metric.direction, metric.family, metric.label,
                   metric.description, metric.reference, tuple(metric.needs), metric.min_n,
                   tuple(metric.distances), metric.redundant_with)


_CLASSES: dict[str, type[Metric]] = {cls.name: cls for cls in METRIC_CLASSES}

REGISTRY: dict[str, MetricSpec] = {name: MetricSpec.of(cls) for name, cls in _CLASSES.items()}

FEATURE_METRICS: tuple[str, ...] = tuple(
    cls.name for cls in METRIC_CLASSES if set(cls.needs) <= {"features", "holdout"})
"""Metrics computed from features alone (plus the reference's holdout)."""
IMAGE_METRICS: tuple[str, ...] = tuple(
    cls.name for cls in METRIC_CLASSES if "images" in cls.needs and "run" not in cls.needs)
"""Metrics computed from one set's images (``label_consistency`` also needs a classifier)."""
RUN_METRICS: tuple[str, ...] = tuple(cls.name for cls in METRIC_CLASSES if "run" in cls.needs)
"""Metrics of a set relative to the other sets of its run (``variety``)."""


def metric_class(name: str) -> type[Metric]:
    """The class of metric ``name`` (construct it with its hyperparameters)."""
    metric_spec(name)
    return _CLASSES[name]


def metric_spec(name: str) -> MetricSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError("metrics", f"unknown metric {name!r}; known: "
                                    f"{', '.join(sorted(REGISTRY))}") from None


def default_feature_metrics(distance: str = "euclidean", holdout: bool = True) -> tuple[str, ...]:
    """Feature metrics defined for ``distance`` (and needing no holdout when there is none)."""
    return tuple(n for n in FEATURE_METRICS
                 if distance in REGISTRY[n].distances
                 and (holdout or "holdout" not in REGISTRY[n].needs))
