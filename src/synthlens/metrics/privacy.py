"""Privacy: does the synthetic set reproduce training images?

The companion study's copy / real / non-real sets, ``privacy`` and ``copy_rate`` (Xing et al.
2023), authenticity (Alaa et al. 2022, without the published code's index mixing), distance
to closest record against held-out real images (``dcr_ratio``, ``memorisation_rate``), a
distance-based membership-inference attack (``mia_auc``, GAN-Leaks style, Chen et al. 2020),
and the per-image audit table.

Read every value against the real-vs-real floor (:func:`synthlens.metrics.evaluate.real_floor`):
genuine unseen real images are often closer to some training image than that image's own
nearest neighbour (the reverse-nearest-neighbour effect), so ``copy_rate`` of fresh real
images is far from 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthlens.audit import CATEGORY, empty_table
from synthlens.metrics.base import MetricResult
from synthlens.metrics.context import Classifier, EvaluationContext, SetMetric
from synthlens.metrics.reference import RealReference, SetNeighbourhoods
from synthlens.stats import auroc


def authentic(nb: SetNeighbourhoods, reference: RealReference) -> np.ndarray:
    """Per synthetic sample: farther from its nearest real sample ``r*`` than ``r*`` is from its
    own nearest real neighbour (Alaa et al. 2022).

    Both distances are indexed by the *real* sample ``r*``. The published code (and synthcity)
    instead index the real-real distances with synthetic indices, which mixes index spaces.
    """
    nearest = nb.to_real.indices[:, 0]
    return nb.to_real.scores[:, 0] > reference.nn1_[nearest]


class Authenticity(SetMetric):
    name = "authenticity"
    direction = "higher"
    family = "privacy"
    label = "authenticity"
    min_n = 10
    description = ("Share of synthetic samples farther from their nearest real sample than that "
                   "real sample is from its own nearest real neighbour.")
    reference = "Alaa et al., ICML 2022"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        values = authentic(ctx.neighbourhoods, ctx.reference).astype(np.float64)
        return self.mean_result(ctx, values,
                           per_class=self.by_label(ctx, values))


class CopyRate(SetMetric):
    name = "copy_rate"
    direction = "lower"
    family = "privacy"
    label = "copy rate"
    min_n = 10
    description = ("Share of synthetic samples in the copy set: closer to some real training "
                   "sample than that sample's nearest real neighbour (or identical to it). "
                   "Compare with the real-vs-real floor: fresh real images score well above 0.")
    reference = "Xing et al., MICCAI 2023"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        nb = ctx.neighbourhoods
        copies = nb.copy.astype(np.float64)
        return self.mean_result(ctx, copies,
                           per_class=self.by_label(ctx, copies),
                           real_share=float(nb.real.mean()),
                           non_real_share=float(nb.non_real.mean()),
                           distance=ctx.reference.distance)


class Privacy(SetMetric):
    name = "privacy"
    direction = "higher"
    family = "privacy"
    label = "privacy"
    min_n = 10
    description = ("1 − copy rate: the share of synthetic samples not in the copy set (the "
                   "companion study's privacy score).")
    reference = "Xing et al., MICCAI 2023"
    redundant_with = "copy_rate"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        kept = (~ctx.neighbourhoods.copy).astype(np.float64)
        return self.mean_result(ctx, kept,
                           per_class=self.by_label(ctx, kept),
                           distance=ctx.reference.distance)


def _dcr(ctx: EvaluationContext) -> tuple[np.ndarray, np.ndarray]:
    """Distances to the closest training sample: synthetic, and held-out real."""
    nb = ctx.neighbourhoods
    ref = ctx.reference
    assert ref.holdout_neighbours_ is not None
    syn = nb.to_real.distances[:, 0]
    hold = ref.holdout_neighbours_.distances[:, 0]
    return syn, hold


class DCRRatio(SetMetric):
    name = "dcr_ratio"
    direction = "higher"
    family = "privacy"
    label = "DCR ratio"
    needs = ("features", "holdout")
    min_n = 20
    description = ("Median distance from synthetic samples to their closest training sample, "
                   "divided by the same median for held-out real samples (about 1 for a "
                   "generator that does not copy; well below 1 when it reproduces training "
                   "images; above 1 when samples are farther from the data than real ones).")
    reference = "distance to closest record (e.g. Zhao et al. 2021; Yale et al. 2020)"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        syn, hold = _dcr(ctx)
        value = float(np.median(syn) / np.median(hold)) if np.median(hold) > 0 else np.inf

        def replicate(rng: np.random.Generator) -> float:
            mh = np.median(hold[rng.integers(0, hold.size, hold.size)])
            ms = np.median(syn[rng.integers(0, syn.size, syn.size)])
            return ms / mh if mh > 0 else np.nan

        per_class = self.per_class(
            ctx, lambda _, mask: (np.median(syn[mask]) / np.median(hold)
                                  if np.median(hold) > 0 else np.nan), min_n=self.min_n)
        return self.result(ctx, value, ci=self.replicates(ctx, replicate), per_class=per_class,
                           median_dcr_synthetic=float(np.median(syn)),
                           median_dcr_holdout=float(np.median(hold)),
                           p05_dcr_synthetic=float(np.percentile(syn, 5)),
                           p05_dcr_holdout=float(np.percentile(hold, 5)),
                           n_holdout=int(hold.size))


def memorised(syn_dcr: np.ndarray, holdout_dcr: np.ndarray, percentile: float = 1.0
              ) -> tuple[np.ndarray, float]:
    """Synthetic samples closer to a training sample than ``percentile`` % of held-out real
    samples are (exact duplicates always count). Returns ``(flags, threshold)``."""
    threshold = float(np.percentile(holdout_dcr, percentile))
    return (syn_dcr < threshold) | (syn_dcr == 0), threshold


class MemorisationRate(SetMetric):
    """Memorisation rate at the ``percentile``-th percentile of held-out distances."""

    name = "memorisation_rate"
    direction = "lower"
    family = "privacy"
    label = "memorisation rate"
    needs = ("features", "holdout")
    min_n = 20
    description = ("Share of synthetic samples whose distance to the closest training sample is "
                   "below the 1st percentile (memorisation_percentile) of the held-out real "
                   "samples' distances to their closest training sample; exact duplicates of a "
                   "training sample always count (about 0.01 for a generator that does not "
                   "copy).")
    reference = "distance-to-closest-record threshold against held-out data"

    def __init__(self, *, percentile: float = 1.0, **interval: Any) -> None:
        super().__init__(**interval)
        self.percentile = float(percentile)

    def score(self, ctx: EvaluationContext) -> MetricResult:
        syn, hold = _dcr(ctx)
        flags, threshold = memorised(syn, hold, self.percentile)
        flags = flags.astype(np.float64)
        return self.mean_result(ctx, flags,
                           per_class=self.by_label(ctx, flags),
                           threshold_distance=threshold, percentile=self.percentile,
                           expected_for_fresh_real=self.percentile / 100)


class MIAAUC(SetMetric):
    name = "mia_auc"
    direction = "lower"
    family = "privacy"
    label = "MIA AUROC"
    needs = ("features", "holdout")
    min_n = 20
    description = ("Distance-based membership inference: AUROC of telling training members "
                   "from held-out non-members by their distance to the closest synthetic sample "
                   "(0.5 = no leakage; higher = members are recognisably closer).")
    reference = "Chen et al., GAN-Leaks, CCS 2020"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        nb = ctx.neighbourhoods
        ref = ctx.reference
        assert nb.holdout_to_synthetic is not None
        members = -nb.real_to_synthetic.scores[:, 0]
        non_members = -nb.holdout_to_synthetic.scores[:, 0]
        value = auroc(members, non_members)
        ci = self.replicates(ctx, lambda rng: auroc(
            members[rng.integers(0, members.size, members.size)],
            non_members[rng.integers(0, non_members.size, non_members.size)]))
        per_class = self.per_class(
            ctx, lambda label, mask: auroc(members[ref.class_indices_[label]],
                                           non_members[mask]),
            over="holdout", min_n=1, min_real=1)
        return self.result(ctx, value, ci=ci, per_class=per_class, n_members=int(members.size),
                           n_non_members=int(non_members.size), ideal=0.5)


# ---------------------------------------------------------------------------------------------
# Per-image audit table
# ---------------------------------------------------------------------------------------------

def audit_table(reference: RealReference, neighbourhoods: SetNeighbourhoods,
                labels: np.ndarray | None = None, predicted: np.ndarray | None = None,
                images: np.ndarray | None = None, classifier: Classifier | None = None,
                exact_copy_of: np.ndarray | None = None) -> np.ndarray:
    """One row per synthetic image: its closest training image, the distance, its category.

    Columns: ``synthetic_index``, ``label`` (−1 without labels), ``nearest_train_index`` and
    its ``nearest_train_label``, ``distance`` to it, that training image's own
    nearest-neighbour distance, ``holdout_dcr_quantile`` (share of held-out real images that
    are closer to the training set; NaN without holdout: small = unusually close),
    ``category`` ("copy" / "real" / "non-real"), ``realism`` score, ``predicted_class`` (−1
    when no classifier or predictions are given), ``exact_copy_of`` (the reference image
    the synthetic image is byte-identical to, as ``exact_copy_of`` gives it; −1 when none or
    not given): :data:`synthlens.audit.COLUMNS`. Sort by ``distance`` for the closest pairs.
    """
    nb = neighbourhoods
    n = nb.n
    table = empty_table(n)
    nearest = nb.to_real.indices[:, 0]
    dist = nb.to_real.distances[:, 0]
    table["synthetic_index"] = np.arange(n)
    table["label"] = -1 if labels is None else labels
    table["nearest_train_index"] = nearest
    table["nearest_train_label"] = -1 if reference.labels_ is None else reference.labels_[nearest]
    table["distance"] = dist
    table["nearest_train_nn_distance"] = reference.neighbours_.distances[nearest, 0]
    if reference.holdout_neighbours_ is not None:
        hold = np.sort(reference.holdout_neighbours_.distances[:, 0])
        table["holdout_dcr_quantile"] = np.searchsorted(hold, dist, side="left") / hold.size
    else:
        table["holdout_dcr_quantile"] = np.nan
    table[CATEGORY] = np.where(nb.copy, "copy", np.where(nb.real, "real", "non-real"))
    table["realism"] = np.nan if nb.realism is None else nb.realism
    if predicted is None and classifier is not None and images is not None:
        predicted = np.asarray(classifier(images)).reshape(-1)
    table["predicted_class"] = -1 if predicted is None else predicted
    table["exact_copy_of"] = -1 if exact_copy_of is None else exact_copy_of
    return table
