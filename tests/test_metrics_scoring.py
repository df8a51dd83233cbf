"""The scoring policy of a run (SpaceScorer): what the pipeline writes for each set and
space, checked against the catalogue."""

from __future__ import annotations

import math
import warnings

import numpy as np

from synthlens.analysis.categories import base_name
from synthlens.metrics import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    REGISTRY,
    SpaceScorer,
    label_judge,
    run_metrics,
)


class Judge:
    """Stands in for an extractor that carries a classifier (the in-domain encoder)."""

    class classifier:  # the attribute label_judge looks for
        @staticmethod
        def predict(images: np.ndarray) -> np.ndarray:
            return np.repeat([0, 1], len(images) // 2)


def _score_run(two_classes):
    """What the pipeline writes for two sets in a primary and a second space."""
    ref, syn, syn_labels, images, _ = two_classes
    judge = label_judge([object(), Judge()])
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for space, primary in (("domain", True), ("pixels", False)):
            scorer = SpaceScorer(ref, space=space, primary=primary,
                                 feature_metrics=FEATURE_METRICS, image_metrics=IMAGE_METRICS,
                                 judge=judge, seed=0, n_bootstrap=20, kid_subsets=3,
                                 ms_ssim_pairs=10)
            for name, shift in (("a", 0.0), ("b", 0.5)):
                scored = scorer.score(syn + shift, syn_labels, images)
                assert (scored.audit is not None) == primary
                entries = {m: r.to_json() for m, r in scored.results.items()}
                out.setdefault(name, {}).update(scorer.named(entries))
        for name, extra in run_metrics(out).items():
            out[name].update(extra)
    return out


def test_every_metric_a_run_writes_is_catalogued_and_every_entry_is_produced(two_classes):
    written = _score_run(two_classes)
    names = {m for results in written.values() for m in results}
    assert all(base_name(m) in REGISTRY for m in names), sorted(names)
    assert "fid@pixels" in names and "mean_image_kb@pixels" not in names
    assert {base_name(m) for m in names} == set(REGISTRY)
    for results in written.values():
        for m, result in results.items():
            assert result.direction == REGISTRY[base_name(m)].direction, m
    assert not math.isnan(written["a"]["label_consistency"].value)  # the judge was found


def test_scoring_policy(two_classes):
    ref, syn, syn_labels, images, holdout = two_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        scorer = SpaceScorer(ref, space="domain", primary=True,
                             feature_metrics=FEATURE_METRICS, image_metrics=IMAGE_METRICS,
                             n_bootstrap=0, kid_subsets=2, ms_ssim_pairs=5)
        # The holdout scored as a set: no metric that needs the holdout as non-members.
        own = scorer.score(holdout, np.repeat([0, 1], 40), images[:80], is_holdout=True)
        other = SpaceScorer(ref, space="pixels", primary=False, feature_metrics=["fid"],
                            image_metrics=IMAGE_METRICS, n_bootstrap=0)
        second = other.score(syn, syn_labels, images)
    assert not {"dcr_ratio", "memorisation_rate", "mia_auc"} & set(own.results)
    assert {"copy_rate", "fid", "mean_image_kb"} <= set(own.results)
    assert math.isnan(own.results["label_consistency"].value)  # no judge: skipped
    assert own.audit is not None and len(own.audit) == 80
    assert other.image_metrics == [] and set(second.results) == {"fid"}
    assert second.audit is None
    assert set(other.named({"fid": second.results["fid"].to_json()})) == {"fid@pixels"}
    assert scorer.effort == {"n_bootstrap": 0, "kid_subsets": 2, "ms_ssim_pairs": 5}
    assert label_judge([object()]) is None
    assert run_metrics({"a": {}}) == {}
