"""synthlens.metrics: fidelity, variety and privacy of synthetic image sets.

Every neighbour-based metric reads from one exact, memory-bounded k-NN engine
(:mod:`synthlens.metrics.knn`); real-vs-real neighbourhoods are computed once per run in a
:class:`RealReference`. Every metric is one class that declares everything about itself;
:mod:`synthlens.metrics.catalogue` collects them (``REGISTRY``). See ``docs/metrics.md`` for
definitions, references and directions.

Names are imported on first use, so ``from synthlens.metrics import REGISTRY`` (the
analysis, the report, config validation) loads neither torch nor the k-NN engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthlens.audit import read_audit_csv, write_audit_csv
    from synthlens.metrics.base import MetricResult
    from synthlens.metrics.catalogue import (
        FEATURE_METRICS,
        IMAGE_METRICS,
        REGISTRY,
        RUN_METRICS,
        MetricSpec,
        default_feature_metrics,
        metric_class,
        metric_spec,
    )
    from synthlens.metrics.evaluate import evaluate_features, evaluate_images, real_floor
    from synthlens.metrics.knn import Ball, NeighbourEngine, Neighbours
    from synthlens.metrics.privacy import audit_table
    from synthlens.metrics.reference import RealReference, SetNeighbourhoods
    from synthlens.metrics.scoring import (
        SetScores,
        SpaceScorer,
        label_judge,
        run_metrics,
        space_suffix,
    )
    from synthlens.metrics.variety import variety_scores, write_mean_images

__all__ = [
    "FEATURE_METRICS",
    "IMAGE_METRICS",
    "REGISTRY",
    "RUN_METRICS",
    "Ball",
    "MetricResult",
    "MetricSpec",
    "NeighbourEngine",
    "Neighbours",
    "RealReference",
    "SetNeighbourhoods",
    "SetScores",
    "SpaceScorer",
    "audit_table",
    "default_feature_metrics",
    "evaluate_features",
    "evaluate_images",
    "label_judge",
    "metric_class",
    "metric_spec",
    "read_audit_csv",
    "real_floor",
    "run_metrics",
    "space_suffix",
    "variety_scores",
    "write_audit_csv",
    "write_mean_images",
]

# Which submodule each name of __all__ lives in (imported on first access).
_HOMES = {
    "base": ("MetricResult",),
    "catalogue": ("FEATURE_METRICS", "IMAGE_METRICS", "REGISTRY", "RUN_METRICS", "MetricSpec",
                  "default_feature_metrics", "metric_class", "metric_spec"),
    "evaluate": ("evaluate_features", "evaluate_images", "real_floor"),
    "knn": ("Ball", "NeighbourEngine", "Neighbours"),
    "privacy": ("audit_table",),
    "reference": ("RealReference", "SetNeighbourhoods"),
    "scoring": ("SetScores", "SpaceScorer", "label_judge", "run_metrics", "space_suffix"),
    "variety": ("variety_scores", "write_mean_images"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


from synthlens.audit import read_audit_csv, write_audit_csv  # noqa: E402  (torch-free)


def __getattr__(name: str) -> Any:
    home = _HOME_OF.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
