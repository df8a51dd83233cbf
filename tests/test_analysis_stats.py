"""Correlation statistics against SciPy and against hand-computed permutation p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st

from synthlens.analysis.stats import (
    benjamini_hochberg,
    correlation,
    kendall_rows,
    permutation_test,
    smallest_p_value,
    spearman_rows,
)
from synthlens.stats import percentile_ci


@pytest.mark.parametrize("seed", range(5))
def test_spearman_and_kendall_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=9)
    y = 0.5 * x + rng.normal(size=9)
    if seed % 2:  # ties in both
        x, y = np.round(x), np.round(y)
    assert correlation(x, y, "spearman") == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-12)
    assert correlation(x, y, "kendall") == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-12)
    assert correlation(x, y, "pearson") == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-12)


def test_row_functions_match_scipy_row_by_row() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (20, 6)).astype(float)
    y = rng.integers(0, 4, (20, 6)).astype(float)
    rho, tau = spearman_rows(x, y), kendall_rows(x, y)
    for i in range(20):
        expect_rho = st.spearmanr(x[i], y[i]).statistic
        expect_tau = st.kendalltau(x[i], y[i]).statistic
        assert (math.isnan(rho[i]) and math.isnan(expect_rho)) or \
            rho[i] == pytest.approx(expect_rho, abs=1e-12)
        assert (math.isnan(tau[i]) and math.isnan(expect_tau)) or \
            tau[i] == pytest.approx(expect_tau, abs=1e-12)


def test_constant_input_is_nan_not_an_error() -> None:
    assert math.isnan(correlation([1, 1, 1], [1, 2, 3]))
    assert math.isnan(correlation([1, 2, 3], [5, 5, 5], "kendall"))
    assert permutation_test([1, 1, 1], [1, 2, 3]).method == "undefined"


def test_exact_permutation_p_with_three_points_is_one_third() -> None:
    # Of the 3! = 6 orderings only the identity and the reversal reach |rho| = 1.
    for stat in ("spearman", "kendall"):
        res = permutation_test([1.0, 2.0, 3.0], [10.0, 20.0, 30.0], stat)
        assert res.method == "exact" and res.n_permutations == 6
        assert res.statistic == pytest.approx(1.0)
        assert res.p_value == pytest.approx(1 / 3)
    assert smallest_p_value(3) == pytest.approx(1 / 3)
    assert smallest_p_value(4) == pytest.approx(1 / 12)
    assert smallest_p_value(5) == pytest.approx(1 / 60)


def test_exact_permutation_p_hand_computed_case() -> None:
    # n = 4, y swaps the last two: rho = 1 - 6*2/(4*15) = 0.8. rho = 1 - D/10 with D the sum
    # of squared rank differences; |rho| >= 0.8 needs D <= 2 (1 + 3 orderings: identity and
    # the 3 adjacent swaps) or D >= 18 (the mirror images): 8 of 24 orderings, p = 1/3.
    res = permutation_test([1, 2, 3, 4], [1, 2, 4, 3], "spearman")
    assert res.statistic == pytest.approx(0.8)
    assert res.p_value == pytest.approx(8 / 24)
    perfect = permutation_test([1, 2, 3, 4], [4, 3, 2, 1], "spearman")
    assert perfect.statistic == pytest.approx(-1.0)
    assert perfect.p_value == pytest.approx(2 / 24)


def test_exact_permutation_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=6)
    y = x + rng.normal(size=6)
    for stat, func in (("spearman", st.spearmanr), ("kendall", st.kendalltau)):
        ref = st.permutation_test((y,), lambda a, func=func: func(x, a).statistic,
                                  permutation_type="pairings", n_resamples=np.inf,
                                  alternative="two-sided")
        ours = permutation_test(x, y, stat)
        assert ours.method == "exact"
        assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-9)


def test_monte_carlo_p_close_to_exact_and_never_zero() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=8)
    y = x + rng.normal(size=8)
    exact = permutation_test(x, y, "spearman").p_value
    mc = permutation_test(x, y, "spearman", exact_max_n=4, n_permutations=20_000,
                          rng=np.random.default_rng(0))
    assert mc.method == "monte_carlo"
    assert mc.p_value == pytest.approx(exact, abs=0.01)
    # Perfect correlation over 12 points: exact p = 2/12! but MC reports >= 1/(1 + N).
    perfect = permutation_test(np.arange(12.0), np.arange(12.0), n_permutations=999)
    assert perfect.p_value == pytest.approx(1 / 1000)


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5, np.nan, 0.011])
    q = benjamini_hochberg(p)
    ref = st.false_discovery_control(p[np.isfinite(p)], method="bh")
    np.testing.assert_allclose(q[np.isfinite(p)], ref, atol=1e-12)
    assert math.isnan(q[5])


def test_percentile_ci_drops_nan_and_handles_empty() -> None:
    lo, hi = percentile_ci(np.r_[np.linspace(0, 1, 101), np.nan])  # type: ignore[misc]
    assert lo == pytest.approx(0.025) and hi == pytest.approx(0.975)
    assert percentile_ci(np.array([np.nan])) is None
