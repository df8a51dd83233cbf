"""The pipeline-facing API: registry, evaluate_features, guards, JSON, reference reuse."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from synthlens.errors import InputError
from synthlens.metrics import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    REGISTRY,
    MetricResult,
    RealReference,
    default_feature_metrics,
    evaluate_features,
    metric_spec,
)


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    real = np.r_[rng.standard_normal((120, 8)), rng.standard_normal((120, 8)) + 3]
    labels = np.repeat([0, 1], 120)
    holdout = np.r_[rng.standard_normal((40, 8)), rng.standard_normal((40, 8)) + 3]
    holdout_labels = np.repeat([0, 1], 40)
    syn = np.r_[rng.standard_normal((100, 8)), rng.standard_normal((100, 8)) * 0.5 + 3]
    syn_labels = np.repeat([0, 1], 100)
    ref = RealReference(k=5, feature_space={"extractor": "test"}).fit(
        real, labels, holdout=holdout, holdout_labels=holdout_labels,
        class_names=["normal", "pneumonia"])
    return ref, syn, syn_labels


def test_registry_lists_every_metric_with_direction_and_min_n():
    for name in (*FEATURE_METRICS, *IMAGE_METRICS, "variety"):
        spec = metric_spec(name)
        assert spec.direction in ("higher", "lower") and spec.min_n >= 1
        assert spec.description and spec.reference and spec.family
    assert REGISTRY["fid"].direction == "lower" and REGISTRY["precision"].direction == "higher"
    assert "fid" not in default_feature_metrics("hamming")
    assert "mia_auc" not in default_feature_metrics("euclidean", holdout=False)
    with pytest.raises(InputError, match="unknown metric"):
        metric_spec("inception_score")


def test_evaluate_features_all_metrics_json_and_per_class(labelled):
    ref, syn, syn_labels = labelled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = evaluate_features(ref, syn, syn_labels, n_bootstrap=50, kid_subsets=5)
    assert list(out) == list(FEATURE_METRICS)
    for name, result in out.items():
        assert isinstance(result, MetricResult) and result.name == name
        assert result.direction == REGISTRY[name].direction
        entry = json.loads(json.dumps(result.to_json(), allow_nan=False))
        assert entry["direction"] == result.direction
        assert result.feature_space == {"extractor": "test"}
        if result.ci is not None:
            assert result.ci[0] <= result.ci[1]
    for name in ("precision", "recall", "coverage", "copy_rate", "fid", "mia_auc"):
        assert set(out[name].per_class) == {"normal", "pneumonia"}, name
    # per-class values are class-conditional: class 1 is squeezed (recall drops)
    assert out["recall"].per_class["pneumonia"] < out["recall"].per_class["normal"]
    assert out["precision"].ci[0] <= out["precision"].value <= out["precision"].ci[1]


def test_results_are_deterministic_given_seed(labelled):
    ref, syn, _ = labelled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = evaluate_features(ref, syn, metrics=["precision", "kid"], seed=3, kid_subsets=4)
        b = evaluate_features(ref, syn, metrics=["kid", "precision"], seed=3, kid_subsets=4)
    assert a["precision"].ci == b["precision"].ci and a["kid"].value == b["kid"].value


def test_neighbourhoods_are_reused(labelled):
    ref, syn, syn_labels = labelled
    nb = ref.compare(syn, syn_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = evaluate_features(ref, syn, syn_labels, metrics=["precision"], neighbourhoods=nb)
        direct = evaluate_features(ref, syn, syn_labels, metrics=["precision"])
    assert out["precision"].value == direct["precision"].value
    assert out["precision"].per_class == direct["precision"].per_class
    with pytest.raises(ValueError, match="another set"):
        evaluate_features(ref, syn[:50], metrics=["precision"], neighbourhoods=nb)


def test_small_n_guard_returns_nan_with_reason(labelled):
    ref, syn, _ = labelled
    with pytest.warns(RuntimeWarning, match="at least"):
        out = evaluate_features(ref, syn[:8], metrics=["precision", "alpha_precision"])
    assert math.isnan(out["precision"].value)
    assert "at least" in out["precision"].details["skipped"]
    assert out["precision"].to_json()["value"] is None


def test_holdout_metrics_skip_without_holdout():
    rng = np.random.default_rng(1)
    ref = RealReference(k=5).fit(rng.standard_normal((60, 4)))
    x = rng.standard_normal((40, 4))
    assert "mia_auc" not in evaluate_features(ref, x, n_bootstrap=0, kid_subsets=2)
    with pytest.warns(RuntimeWarning, match="held-out"):
        out = evaluate_features(ref, x, metrics=["mia_auc"], n_bootstrap=0)
    assert math.isnan(out["mia_auc"].value)


def test_input_errors(labelled):
    ref, syn, _ = labelled
    with pytest.raises(InputError, match="synthetic features"):
        evaluate_features(ref, syn[:, :3])
    with pytest.raises(InputError, match="synthetic labels"):
        evaluate_features(ref, syn, np.zeros(3, dtype=int))
    with pytest.raises(InputError, match="evaluate_images"):
        evaluate_features(ref, syn, metrics=["mean_image_kb"])
    with pytest.raises(InputError, match="k"):
        RealReference(k=0)
    with pytest.raises(InputError, match="more than k"):
        RealReference(k=5).fit(np.zeros((5, 2)))


def test_a_null_per_class_value_survives_the_json_round_trip():
    """A class below a metric's minimum N is written as null; reading it back and writing it
    again (assembly, resume) must keep it null, not crash (BreastMNIST's small class)."""
    from synthlens.metrics import MetricResult

    result = MetricResult("precision", 0.5, "higher", ci=(0.4, 0.6),
                          per_class={"benign": 0.6, "malignant": float("nan")})
    entry = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert entry["per_class"] == {"benign": 0.6, "malignant": None}
    again = MetricResult.from_json("precision", entry)
    assert math.isnan(again.per_class["malignant"])
    assert json.loads(json.dumps(again.to_json(), allow_nan=False)) == entry
