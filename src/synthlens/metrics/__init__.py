"""synthlens.metrics: fidelity, variety and privacy of synthetic image sets.

Every neighbour-based metric reads from one exact, memory-bounded k-NN engine
(:mod:`synthlens.metrics.knn`); real-vs-real neighbourhoods are computed once per run in a
:class:`RealReference`. See ``docs/metrics.md`` for definitions, references and directions.
"""

from synthlens.audit import read_audit_csv, write_audit_csv
from synthlens.metrics.base import MetricResult
from synthlens.metrics.evaluate import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    REGISTRY,
    MetricSpec,
    default_feature_metrics,
    evaluate_features,
    evaluate_images,
    metric_spec,
    real_floor,
)
from synthlens.metrics.knn import Ball, NeighbourEngine, Neighbours
from synthlens.metrics.privacy import audit_table
from synthlens.metrics.reference import RealReference, SetNeighbourhoods
from synthlens.metrics.variety import variety_scores, write_mean_images

__all__ = [
    "FEATURE_METRICS",
    "IMAGE_METRICS",
    "REGISTRY",
    "Ball",
    "MetricResult",
    "MetricSpec",
    "NeighbourEngine",
    "Neighbours",
    "RealReference",
    "SetNeighbourhoods",
    "audit_table",
    "default_feature_metrics",
    "evaluate_features",
    "evaluate_images",
    "metric_spec",
    "read_audit_csv",
    "real_floor",
    "variety_scores",
    "write_audit_csv",
    "write_mean_images",
]
