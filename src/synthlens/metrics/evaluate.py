"""Scoring one set: evaluate_features, evaluate_images and the real-vs-real floor.

Typical use, once per run and feature space::

    reference = RealReference(k=5, feature_space=space).fit(
        train_features, train_labels, holdout=holdout_features, holdout_labels=holdout_labels)
    for name, features, labels in synthetic_sets:
        nb = reference.compare(features, labels)          # the neighbour sweeps, once
        scores = evaluate_features(reference, features, labels, neighbourhoods=nb)
        table = audit_table(reference, nb, labels)        # closest pairs for the report
    floor = real_floor(reference)                         # real-vs-real floor of every metric

Image-level metrics go through :func:`evaluate_images`; the run-level ``variety`` through
:func:`~synthlens.metrics.variety.variety_scores`. The registry of metrics is
:mod:`synthlens.metrics.catalogue`; each metric's hyperparameters are its constructor's
arguments, and the keyword arguments here pass them on with those same defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from synthlens.data.dataset import validate_labels
from synthlens.errors import InputError
from synthlens.metrics.base import MetricResult
from synthlens.metrics.catalogue import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    REGISTRY,
    default_feature_metrics,
    metric_class,
    metric_spec,
)
from synthlens.metrics.context import Classifier, EvaluationContext, SetMetric
from synthlens.metrics.fidelity import FID, KID
from synthlens.metrics.privacy import MemorisationRate
from synthlens.metrics.variety import MSSSIMDiversity
from synthlens.progress import progress_bar

if TYPE_CHECKING:
    from synthlens.metrics.reference import RealReference, SetNeighbourhoods

__all__ = ["default", "evaluate_features", "evaluate_images", "real_floor"]


def default(cls: type, parameter: str) -> Any:
    """The default of one constructor argument: each hyperparameter's only home."""
    return inspect.signature(cls.__init__).parameters[parameter].default


def _build(name: str, n_bootstrap: int, level: float,
           hyperparameters: Mapping[str, Mapping[str, Any]]) -> SetMetric:
    """Metric ``name`` with the shared interval settings and its own hyperparameters (which
    may override them: FID's ``n_bootstrap`` is ``fid_bootstrap``)."""
    cls = metric_class(name)
    assert issubclass(cls, SetMetric), f"{name} is not a metric of one set"
    return cls(**{"n_bootstrap": n_bootstrap, "level": level, **hyperparameters.get(name, {})})


def evaluate_features(reference: RealReference, synthetic_features: np.ndarray,
                      synthetic_labels: np.ndarray | None = None, *,
                      metrics: Iterable[str] | None = None,
                      class_names: Sequence[str] | None = None, seed: int = 0,
                      n_bootstrap: int = default(SetMetric, "n_bootstrap"),
                      level: float = default(SetMetric, "level"),
                      neighbourhoods: SetNeighbourhoods | None = None,
                      fid_bootstrap: int = default(FID, "n_bootstrap"),
                      kid_subsets: int = default(KID, "subsets"),
                      kid_subset_size: int = default(KID, "subset_size"),
                      kid_precision: str = default(KID, "precision"),
                      memorisation_percentile: float = default(MemorisationRate, "percentile"),
                      per_class: bool = True, progress: bool = False) -> dict[str, MetricResult]:
    """Every requested feature-space metric of one synthetic set.

    ``metrics`` defaults to every feature metric defined for the reference's distance (those
    needing a holdout only when the reference has one). ``neighbourhoods`` reuses an earlier
    :meth:`RealReference.compare` of the same set (for the audit table). ``n_bootstrap``
    resamples give percentile intervals at ``level`` where they make sense; ``fid_bootstrap``
    does the same for FID (a d×d eigendecomposition per resample, so off by default).
    ``kid_precision`` is that of KID's inner products ("float32", as torchmetrics, or
    "float64"); kernel values and sums are float64 either way.
    """
    names = _resolve(metrics, reference)
    for name in names:
        if name not in FEATURE_METRICS:
            raise InputError("metrics", f"{name} needs {', '.join(REGISTRY[name].needs)}: use "
                                        "evaluate_images")
    x = reference.engine.validate(synthetic_features, "synthetic features")
    if x.shape[1:] != reference.features_.shape[1:]:
        raise InputError("synthetic features", f"have shape {x.shape[1:]} per sample, the real "
                                               f"features {reference.features_.shape[1:]}")
    ctx = EvaluationContext(
        reference=reference, features=x, labels=_labels(synthetic_labels, x.shape[0]),
        class_names=class_names, seed=seed, per_class=per_class)
    hyperparameters = {
        "fid": {"n_bootstrap": fid_bootstrap},
        "kid": {"subsets": kid_subsets, "subset_size": kid_subset_size,
                "precision": kid_precision},
        "memorisation_rate": {"percentile": memorisation_percentile}}
    if neighbourhoods is not None:
        if neighbourhoods.n != x.shape[0]:
            raise ValueError("neighbourhoods were computed for another set")
        ctx.neighbourhoods = neighbourhoods  # type: ignore[misc]  # pre-fills the cached_property
    out: dict[str, MetricResult] = {}
    for name in progress_bar(names, desc="metrics", unit="metric", leave=False,
                             disable=not progress):
        out[name] = _build(name, n_bootstrap, level, hyperparameters).compute(ctx)
    return out


def evaluate_images(images: np.ndarray, labels: np.ndarray | None = None, *,
                    metrics: Iterable[str] = IMAGE_METRICS, classifier: Classifier | None = None,
                    class_names: Sequence[str] | None = None, seed: int = 0,
                    n_bootstrap: int = default(SetMetric, "n_bootstrap"),
                    level: float = default(SetMetric, "level"),
                    ms_ssim_pairs: int = default(MSSSIMDiversity, "pairs")
                    ) -> dict[str, MetricResult]:
    """Image-level metrics of one set (uint8 images (N,H,W) or (N,H,W,3)).

    ``label_consistency`` is skipped (NaN, reason in ``details``) without a ``classifier``:
    any ``predict(images) -> labels`` callable.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        raise InputError("images", f"expected (N,H,W) or (N,H,W,C) images, got {images.shape}")
    names = list(metrics)
    for name in names:
        metric_spec(name)
        if name not in IMAGE_METRICS:
            raise InputError("metrics", f"{name} is not an image metric: use evaluate_features")
    ctx = EvaluationContext(images=images, labels=_labels(labels, images.shape[0]),
                            classifier=classifier, class_names=class_names, seed=seed)
    hyperparameters = {"ms_ssim_diversity": {"pairs": ms_ssim_pairs}}
    return {name: _build(name, n_bootstrap, level, hyperparameters).compute(ctx)
            for name in names}


def real_floor(reference: RealReference, *, metrics: Iterable[str] | None = None,
               seed: int = 0, **options: Any) -> dict[str, MetricResult]:
    """Every metric with genuine unseen real images standing in for a synthetic set.

    Half of the holdout (stratified by label) plays the synthetic set; the other half is the
    non-member set of the privacy metrics. These values are the floor (or ceiling) a
    synthetic set should be read against: e.g. ``copy_rate`` of fresh real images is large
    by the reverse-nearest-neighbour effect, ``mia_auc`` is about 0.5 and
    ``memorisation_rate`` about 0.01. N-dependent metrics (FID, KID, recall, coverage,
    Vendi) should be compared at the same N: subsample synthetic sets to
    ``details["n"]`` of the floor when comparing.
    """
    ref, stand_in, labels = reference.floor_split(seed)
    results = evaluate_features(ref, stand_in, labels, metrics=metrics, seed=seed, **options)
    for r in results.values():
        r.details["floor"] = "real-vs-real: held-out real images as the synthetic set"
    return results


def _resolve(metrics: Iterable[str] | None, reference: RealReference) -> list[str]:
    if not hasattr(reference, "features_"):
        raise RuntimeError("RealReference is not fitted: call fit() first")
    holdout = reference.holdout_ is not None
    if metrics is None:
        return list(default_feature_metrics(reference.distance, holdout))
    names = list(metrics)
    for name in names:
        spec = metric_spec(name)
        if reference.distance not in spec.distances:
            raise InputError("metrics", f"{name} is not defined for {reference.distance} "
                                        "distance (code maps): "
                                        f"it needs {' or '.join(spec.distances)} features")
    return names


def _labels(labels: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if labels is None else validate_labels(labels, n, "synthetic labels")
