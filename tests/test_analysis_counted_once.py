"""privacy = 1 - copy_rate: the analysis counts that signal once (category scores,
correlations, rankings), with metric values from the real metric code."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from synthlens.analysis import analyse
from synthlens.metrics import RealReference, evaluate_features


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Six synthetic sets scored by the real metrics, plus a utility score per set."""
    rng = np.random.default_rng(0)
    train = rng.standard_normal((200, 6))
    ref = RealReference(k=5).fit(train, holdout=rng.standard_normal((60, 6)))
    sets = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in range(6):
            # more copies of training images from set to set: copy_rate rises
            syn = np.r_[train[: 10 * i] + 1e-3, rng.standard_normal((80 - 10 * i, 6)) * 1.2]
            scored = evaluate_features(ref, syn, metrics=["copy_rate", "privacy", "precision",
                                                          "recall"], n_bootstrap=20)
            metrics = {m: r.to_json() for m, r in scored.items()}
            metrics["utility.augment.auroc"] = {"value": 0.7 + 0.03 * i, "direction": "higher",
                                                "ci": None}
            sets[f"s{i}"] = {"kind": "generated", "metrics": metrics}
    return {"schema_version": "1.0", "dataset": {"name": "gauss"}, "sets": sets}


def test_privacy_is_not_counted_beside_copy_rate(results):
    entries = [s["metrics"] for s in results["sets"].values()]
    assert all(m["privacy"]["value"] == pytest.approx(1 - m["copy_rate"]["value"])
               for m in entries)
    a = analyse(results, n_boot=100, n_perm=200)
    assert a["category_metrics"]["privacy"] == ["copy_rate"]
    assert "privacy" not in a["metrics"] and "copy_rate" in a["metrics"]
    assert {c["metric"] for c in a["correlations"]} == {"copy_rate", "precision", "recall"}
    assert "privacy" not in {b["metric"] for b in a["best_sets"]}
    assert "privacy" in a["methods"]["counted_once"] and a["categories"]["privacy"] == "privacy"


def test_privacy_alone_still_counts(results):
    only = {**results, "sets": {
        name: {**s, "metrics": {m: v for m, v in s["metrics"].items() if m != "copy_rate"}}
        for name, s in results["sets"].items()}}
    a = analyse(only, n_boot=100, n_perm=200)
    assert a["category_metrics"]["privacy"] == ["privacy"]
    assert "privacy" in {c["metric"] for c in a["correlations"]}
