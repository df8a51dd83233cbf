"""Rank correlations with honest uncertainty for a handful of points.

A run compares a few synthetic sets (often 3 to 15), so everything here is written for
small ``n``: permutation p-values are exact (every ordering enumerated) up to
``EXACT_MAX_N`` points and Monte Carlo above; bootstrap confidence intervals resample the
points and drop replicates where a correlation is undefined (all values tied).

The functions are vectorised over rows so that thousands of permutations or bootstrap
replicates cost one array operation, not a Python loop.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.stats import rankdata

Statistic = Literal["spearman", "kendall", "pearson"]

#: Up to this many points, permutation p-values enumerate all n! orderings (8! = 40,320).
EXACT_MAX_N = 8
#: Tolerance when comparing a permuted statistic with the observed one (floating-point ties).
_TIE_TOL = 1e-12


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where a row is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    num = (xc * yc).sum(axis=-1)
    den = np.sqrt((xc * xc).sum(axis=-1) * (yc * yc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    # Rounding can push |r| a hair above 1; a constant row gives 0/0 = NaN, which we keep.
    r = np.where(den > 1e-12 * np.maximum(1.0, np.abs(num)), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row (average ranks for ties, as scipy.stats.spearmanr)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    return _pearson_rows(rankdata(x, axis=-1), rankdata(y, axis=-1))


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b per row (as scipy.stats.kendalltau's default); NaN if a row is constant."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., j] - x[..., i])
    sy = np.sign(y[..., j] - y[..., i])
    num = (sx * sy).sum(axis=-1)
    # sum(sx^2) is the number of pairs not tied in x, i.e. n0 - n1 of the tau-b formula.
    den = np.sqrt((sx * sx).sum(axis=-1) * (sy * sy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(tau, -1.0, 1.0)


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y, dtype=float))
    return _pearson_rows(x, y)


_ROW_FUNCS = {"spearman": spearman_rows, "kendall": kendall_rows, "pearson": pearson_rows}


def correlation(x: np.ndarray, y: np.ndarray, statistic: Statistic = "spearman") -> float:
    """One correlation coefficient of two 1-D arrays; NaN when undefined (n < 2 or constant)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        return math.nan
    return float(_ROW_FUNCS[statistic](x, y)[0])


@lru_cache(maxsize=16)
def _all_permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.intp)


def smallest_p_value(n: int) -> float:
    """Smallest two-sided exact permutation p-value reachable with ``n`` untied points.

    Only the identity and the reversed ordering reach |rho| = 1, so it is 2 / n! (n >= 2).
    """
    if n < 2:
        return 1.0
    return min(1.0, 2.0 / math.factorial(n))


@dataclass(frozen=True)
class PermutationResult:
    statistic: float
    p_value: float
    method: Literal["exact", "monte_carlo", "undefined"]
    n_permutations: int


def permutation_test(
    x: np.ndarray,
    y: np.ndarray,
    statistic: Statistic = "spearman",
    *,
    n_permutations: int = 10_000,
    exact_max_n: int = EXACT_MAX_N,
    rng: np.random.Generator | None = None,
) -> PermutationResult:
    """Two-sided permutation test of no association between ``x`` and ``y``.

    The p-value is the share of orderings of ``y`` whose |statistic| is at least the
    observed one. With ``n <= exact_max_n`` every ordering is enumerated (the identity
    included), which gives the exact p-value; above, ``n_permutations`` random orderings
    are drawn and ``p = (1 + hits) / (1 + n_permutations)`` (Phipson & Smyth 2010), which
    is never zero.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    observed = correlation(x, y, statistic)
    n = x.size
    if not math.isfinite(observed):
        return PermutationResult(observed, math.nan, "undefined", 0)
    if n <= exact_max_n:
        perms = _all_permutations(n)
        method: Literal["exact", "monte_carlo"] = "exact"
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        perms = rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
        method = "monte_carlo"
    null = _null_distribution(x, y, perms, statistic)
    hits = int(np.sum(np.abs(null) >= abs(observed) - _TIE_TOL))
    if method == "exact":
        return PermutationResult(observed, hits / perms.shape[0], method, perms.shape[0])
    return PermutationResult(observed, (1 + hits) / (1 + perms.shape[0]), method,
                             perms.shape[0])


def _null_distribution(x: np.ndarray, y: np.ndarray, perms: np.ndarray,
                       statistic: Statistic) -> np.ndarray:
    """The statistic for every ordering ``y[perm]``, computed without re-ranking each row.

    Permuting ``y`` permutes its ranks and its tie structure moves with it, so the
    denominators of rho and tau-b are the same for every ordering.
    """
    if statistic == "spearman":
        rx = rankdata(x) - (x.size + 1) / 2.0
        ry = rankdata(y) - (y.size + 1) / 2.0
        den = math.sqrt(float(rx @ rx) * float(ry @ ry))
        return ry[perms] @ rx / den
    if statistic == "kendall":
        i, j = np.triu_indices(x.size, k=1)
        sx = np.sign(x[j] - x[i])
        yp = y[perms]
        sy = np.sign(yp[:, j] - yp[:, i])
        den = math.sqrt(float(sx @ sx) * float(np.sum(np.sign(y[j] - y[i]) ** 2)))
        return sy @ sx / den
    return pearson_rows(np.broadcast_to(x, perms.shape), y[perms])


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN inputs stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    # Enforce monotonicity from the largest p downwards.
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q
