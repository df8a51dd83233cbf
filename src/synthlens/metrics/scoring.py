"""Scoring the sets of a run in one feature space: the policy the pipeline applies to each.

The pipeline wires stages and the run folder; what gets scored, and how, is decided here:

* a set that *is* the reference's held-out real set cannot be its own non-member set: it is
  scored against the reference without its holdout, and without the metrics that need one;
* image-level metrics and the per-image audit table are computed once, in the primary
  feature space; the label-consistency judge predicts once and both use its predictions;
* metrics of any other space are named ``<metric>@<space>``;
* the judge is the classifier an extractor trained on the real training split (the
  in-domain encoder's), when one has;
* the run-level ``variety`` is computed when at least two sets have a ``mean_image_kb``.

Typical use (what :meth:`synthlens.pipeline.Pipeline.score` does)::

    scorer = SpaceScorer(reference, space="domain", primary=True,
                         feature_metrics=FEATURE_METRICS, image_metrics=IMAGE_METRICS,
                         judge=label_judge(extractors), seed=0, n_bootstrap=200)
    floors = scorer.floor()
    scored = scorer.score(features, labels, images)     # .results, .audit
    results[name] = scorer.named({m: r.to_json() for m, r in scored.results.items()})
    for name, extra in run_metrics(results).items(): results[name].update(extra)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from synthlens.metrics.base import MetricResult
from synthlens.metrics.catalogue import REGISTRY
from synthlens.metrics.context import Classifier, SetMetric
from synthlens.metrics.evaluate import default, evaluate_features, evaluate_images, real_floor
from synthlens.metrics.fidelity import KID
from synthlens.metrics.privacy import audit_table
from synthlens.metrics.variety import MSSSIMDiversity, Variety

if TYPE_CHECKING:
    from synthlens.metrics.reference import RealReference


@dataclass
class SetScores:
    """One set's scores in one space, and its audit table (primary space only, else None)."""

    results: dict[str, MetricResult]
    audit: np.ndarray | None


def space_suffix(space: str, primary: bool) -> str:
    """``""`` for the primary feature space, ``"@<space>"`` for any other."""
    return "" if primary else f"@{space}"


def label_judge(extractors: Iterable[object]) -> Classifier | None:
    """The label-consistency judge: the ``predict`` of the first extractor carrying a
    ``classifier`` (trained on the real training split), else None (the metric is skipped)."""
    for extractor in extractors:
        classifier = getattr(extractor, "classifier", None)
        if classifier is not None:
            return classifier.predict
    return None


class SpaceScorer:
    """Scores sets against one :class:`RealReference` (one feature space of a run).

    ``n_bootstrap``, ``kid_subsets`` and ``ms_ssim_pairs`` are the budget's ``metrics``
    settings (:attr:`effort`); they default to the metrics' own defaults.
    """

    def __init__(self, reference: RealReference, *, space: str, primary: bool,
                 feature_metrics: Sequence[str], image_metrics: Sequence[str] = (),
                 judge: Classifier | None = None, class_names: Sequence[str] | None = None,
                 seed: int = 0, n_bootstrap: int = default(SetMetric, "n_bootstrap"),
                 kid_subsets: int = default(KID, "subsets"),
                 ms_ssim_pairs: int = default(MSSSIMDiversity, "pairs")) -> None:
        self.reference = reference
        self.space = space
        self.primary = primary
        self.suffix = space_suffix(space, primary)
        self.feature_metrics = list(feature_metrics)
        self.image_metrics = list(image_metrics) if primary else []
        """Image metrics are scored in the primary space only."""
        self.judge = judge
        self.class_names = class_names
        self.seed = seed
        self.effort: dict[str, Any] = {"n_bootstrap": n_bootstrap, "kid_subsets": kid_subsets,
                                       "ms_ssim_pairs": ms_ssim_pairs}

    def floor(self) -> dict[str, MetricResult]:
        """The real-vs-real floor of the feature metrics (unsuffixed names)."""
        return real_floor(self.reference, metrics=self.feature_metrics, seed=self.seed,
                          n_bootstrap=self.effort["n_bootstrap"],
                          kid_subsets=self.effort["kid_subsets"])

    def score(self, features: np.ndarray, labels: np.ndarray | None,
              images: np.ndarray | None = None, *, is_holdout: bool = False,
              exact_copy_of: np.ndarray | None = None) -> SetScores:
        """Every metric of one set (unsuffixed names) and, in the primary space, its audit.

        ``is_holdout``: the set is the reference's own held-out real set.
        ``exact_copy_of``: per image, the reference image it is byte-identical to (−1:
        none; :class:`synthlens.data.copies.ImageIndex`), the audit's ``exact_copy_of``.
        """
        ref = self.reference.with_holdout(None) if is_holdout else self.reference
        wanted = [n for n in self.feature_metrics
                  if not is_holdout or "holdout" not in REGISTRY[n].needs]
        nb = ref.compare(features, labels)
        results = evaluate_features(ref, features, labels, metrics=wanted,
                                    class_names=self.class_names, seed=self.seed,
                                    neighbourhoods=nb, n_bootstrap=self.effort["n_bootstrap"],
                                    kid_subsets=self.effort["kid_subsets"])
        if not self.primary:
            return SetScores(results, None)
        if images is None:
            raise ValueError("the primary space scores the images too: pass them")
        predicted = None if self.judge is None else self.judge(images)
        results.update(evaluate_images(
            images, labels, metrics=self.image_metrics, classifier=_fixed(predicted),
            class_names=self.class_names, seed=self.seed,
            n_bootstrap=self.effort["n_bootstrap"], ms_ssim_pairs=self.effort["ms_ssim_pairs"]))
        return SetScores(results, audit_table(ref, nb, labels, predicted=predicted,
                                              exact_copy_of=exact_copy_of))

    def named(self, entries: Mapping[str, Any]) -> dict[str, MetricResult]:
        """Stored ``results.json`` entries of this space as results named with its suffix."""
        return {metric + self.suffix: MetricResult.from_json(metric + self.suffix, entry)
                for metric, entry in entries.items()}


def run_metrics(results: Mapping[str, Mapping[str, MetricResult]]
                ) -> dict[str, dict[str, MetricResult]]:
    """The run-level metrics of every set (``variety``), from the sets' other results."""
    sizes = {name: r["mean_image_kb"] for name, r in results.items() if "mean_image_kb" in r}
    if len(sizes) < Variety.min_n:
        return {}
    return {name: {Variety.name: result} for name, result in Variety().compute(sizes).items()}


def _fixed(predicted: np.ndarray | None) -> Classifier | None:
    """A classifier stand-in that returns predictions already made for the same images."""
    if predicted is None:
        return None
    return lambda _images: predicted
