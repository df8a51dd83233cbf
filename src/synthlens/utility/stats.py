"""Uncertainty of utility scores: a paired test over seeds and a bootstrap over test images.

Two sources of noise matter and neither covers the other: the training seed (weight
initialisation, batch order, which synthetic images were drawn) and the finite test split.
The paired Wilcoxon signed-rank test works on the per-seed differences; the bootstrap
resamples test images, the same draws for both arms and every seed, so the interval is for
the mean over seeds of the paired difference on the test population.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p an exact signed-rank test can give with ``n`` pairs:
    all differences of one sign, 2 / 2**n (0.25 for 3 seeds, 0.0625 for 5)."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0 ** n)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided p of the paired Wilcoxon signed-rank test (exact for small ``n``).

    Zero differences are dropped (Wilcoxon's convention); if none is left, or fewer than
    one pair exists, there is no evidence of a difference and p = 1.
    """
    from scipy.stats import wilcoxon

    diffs = np.asarray(differences, dtype=np.float64)
    diffs = diffs[np.isfinite(diffs)]
    if np.count_nonzero(diffs) == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(wilcoxon(diffs, zero_method="wilcox", alternative="two-sided").pvalue)


def wilcoxon_note(n_seeds: int) -> str:
    """The caveat every gain carries: how small a p the seed count allows."""
    floor = min_wilcoxon_p(n_seeds)
    text = (f"paired Wilcoxon signed-rank test over {n_seeds} seed(s); the smallest "
            f"two-sided p it can give is {floor:.4g}")
    if floor > 0.05:
        text += (", so it cannot reach p < 0.05 with fewer than 6 seeds: read the bootstrap "
                 "CI over test images as well")
    return text


def bootstrap_weights(n: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(n_bootstrap, n)`` draw counts: replicate b resamples ``n`` test images with
    replacement; the same matrix is reused for every arm, so comparisons stay paired."""
    rng = np.random.default_rng([seed, n])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(np.float64)


def seed_draws(n_seeds: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """``(n_bootstrap, n_seeds)`` seed indices drawn with replacement: the outer level of
    the two-level bootstrap (seeds, then test images)."""
    rng = np.random.default_rng([seed, n_seeds, 0x5EED])
    return rng.integers(0, n_seeds, size=(n_bootstrap, n_seeds))


def mean_over_seeds(replicates: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
    """Replicates ``(S, B)`` -> ``(B,)``: the mean over all seeds, or, with ``draws``
    ``(B, S)`` from :func:`seed_draws`, over the seeds drawn for each replicate."""
    if draws is None:
        return replicates.mean(axis=0)
    return np.take_along_axis(replicates.T, draws, axis=1).mean(axis=1)
