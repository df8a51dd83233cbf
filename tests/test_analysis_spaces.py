"""Ranking agreement between feature spaces, against SciPy and a hand-made case."""

from __future__ import annotations

import pytest
from scipy.stats import kendalltau

from synthlens.analysis.spaces import space_agreement, space_findings


def _results(a, b):
    return {"sets": {f"s{i}": {"metrics": {"fid": {"value": x, "direction": "lower"},
                                           "fid@inception": {"value": y, "direction": "lower"}}}
                     for i, (x, y) in enumerate(zip(a, b, strict=True))}}


def test_identical_order_gives_tau_one_and_reversed_minus_one():
    sets = ["s0", "s1", "s2", "s3"]
    same = space_agreement(_results([1, 2, 3, 4], [10, 20, 30, 40]), sets)
    assert same == [{"metric": "fid", "space": "inception", "n_sets": 4, "tau": 1.0,
                     "p_value": pytest.approx(kendalltau([1, 2, 3, 4], [1, 2, 3, 4])[1])}]
    reverse = space_agreement(_results([1, 2, 3, 4], [4, 3, 2, 1]), sets)
    assert reverse[0]["tau"] == pytest.approx(-1.0)


def test_matches_scipy_and_skips_too_few_sets():
    a, b = [3.0, 1.0, 4.0, 1.5, 5.0], [2.0, 7.0, 1.0, 8.0, 2.5]
    rows = space_agreement(_results(a, b), [f"s{i}" for i in range(5)])
    assert rows[0]["tau"] == pytest.approx(kendalltau(a, b)[0])
    assert space_agreement(_results([1, 2], [2, 1]), ["s0", "s1"]) == []
    text = space_findings(rows)[0]["text"]
    assert "inception" in text and f"{kendalltau(a, b)[0]:.2f}" in text
