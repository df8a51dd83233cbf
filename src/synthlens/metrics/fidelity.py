"""Fidelity: how much the synthetic set looks like the real one.

FID (Heusel et al. 2017), KID (Bińkowski et al. 2018), k-NN precision (Kynkäänniemi et al.
2019), density (Naeem et al. 2020), α-precision (Alaa et al. 2022), the companion study's
privacy-aware fidelity F^p (Xing et al. 2023), and label consistency.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from synthlens.metrics.base import MetricResult
from synthlens.metrics.context import EvaluationContext, SetMetric
from synthlens.metrics.moments import (
    Gaussian,
    InnerProducts,
    frechet,
    gram,
    high_dimensional,
    row_block,
)
from synthlens.metrics.reference import RealReference

# ---------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     sqrt1: np.ndarray | None = None) -> float:
    """``||μ1 − μ2||² + tr Σ1 + tr Σ2 − 2 tr sqrt(Σ1 Σ2)`` in float64 (``sqrt1``: Σ1^½ when
    cached). Sets of feature rows go through :class:`~synthlens.metrics.moments.Gaussian`."""
    return frechet(Gaussian.from_moments(mu1, cov1, sqrt1), Gaussian.from_moments(mu2, cov2))


def fid(real: np.ndarray, synthetic: np.ndarray) -> float:
    """FID between two feature arrays (float64 moments); warns when N <= feature dimension."""
    for name, x in (("real", real), ("synthetic", synthetic)):
        if x.shape[0] <= x.shape[1]:
            warnings.warn(f"fid: {name} set has N={x.shape[0]} <= feature dimension "
                          f"{x.shape[1]}; its covariance is singular and FID is biased upward",
                          RuntimeWarning, stacklevel=2)
    return frechet(Gaussian.fit(real), Gaussian.fit(synthetic))


class FID(SetMetric):
    """FID; ``n_bootstrap`` resamples of the synthetic set give a percentile interval (off by
    default: a d×d eigendecomposition per resample)."""

    name = "fid"
    direction = "lower"
    family = "fidelity"
    label = "FID"
    min_n = 2
    distances = ("euclidean", "cosine")
    description = ("Fréchet distance between Gaussians fitted to the real and synthetic "
                   "features (float64 moments, trace term by eigenvalues; 0 = identical "
                   "moments). Per class: real class c against synthetic class c.")
    reference = "Heusel et al., NeurIPS 2017"

    def __init__(self, *, n_bootstrap: int = 0, **interval: Any) -> None:
        super().__init__(n_bootstrap=n_bootstrap, **interval)

    def score(self, ctx: EvaluationContext) -> MetricResult:
        ref, x = ctx.reference, ctx.features
        assert ref is not None and x is not None
        d = x.shape[1]
        warns = []
        if ctx.n <= d or ref.n <= d:
            warns.append(f"N (synthetic {ctx.n}, real {ref.n}) <= feature dimension {d}: "
                         "singular covariance, FID biased upward; compare only at equal N")
            warnings.warn(f"fid: {warns[-1]}", RuntimeWarning, stacklevel=3)
        real = ref.moments()  # cached with its covariance square root
        products = ctx.products  # shared inner products in a high-dimensional space
        value = frechet(real, ctx.moments, products)
        ci = self.replicates(ctx, lambda rng: frechet(
            real, Gaussian.fit(x, rng.integers(0, ctx.n, ctx.n)), products))

        def per_class(label: int, mask: np.ndarray) -> float:
            return frechet(ref.moments(label), Gaussian.fit(x, np.flatnonzero(mask)), products)

        return self.result(ctx, value, ci=ci,
                           per_class=self.per_class(ctx, per_class, over="real", min_n=2,
                                                    min_real=2),
                           n_real=ref.n, bootstrap=self.n_bootstrap or None,
                           warnings=warns or None)


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0, precision: str = "float64") -> np.ndarray:
    """``(γ x·y + c)^degree`` with ``γ = 1/d`` by default (Bińkowski et al.).

    ``precision="float32"`` computes the inner products in float32 (as torchmetrics does for
    float32 features; about twice as fast) and the kernel itself in float64.
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    dtype = np.float32 if precision == "float32" else np.float64
    base = (np.asarray(x, dtype) @ np.asarray(y, dtype).T).astype(np.float64)
    return _polynomial(base, degree, gamma, coef0)


def _polynomial(base: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    """``(γ base + c)^degree`` of float64 inner products, in place."""
    base *= gamma
    base += coef0
    if degree == 3:  # repeated products: several times faster than a float power
        return base * base * base
    return base**degree


KID_GRAM_BYTES = 512 * 2**20
"""Largest whole inner-product matrix KID keeps in high-dimensional spaces."""


def _kid_grams(real: np.ndarray, synthetic: np.ndarray, subsets: int, m: int,
               precision: str, real_missing: bool) -> dict[str, np.ndarray | None] | None:
    """Whole inner-product matrices KID's subsets gather from, when that is cheaper.

    Above :data:`~synthlens.metrics.moments.DIRECT_MAX_DIM`, every subset's three m×m
    products (2.5·subsets·m²·d multiply-adds) cost more than the whole synthetic-real and
    synthetic-synthetic (and, while real terms are missing, real-real) products; they are
    computed once, blockwise, in the same precision, and each subset gathers its entries.
    ``None`` (per-subset products, as always) in lower dimensions, when it would cost more,
    or when a matrix would exceed :data:`KID_GRAM_BYTES`.
    """
    n_r, n_s, d = real.shape[0], synthetic.shape[0], real.shape[1]
    dtype = np.float32 if precision == "float32" else np.float64
    if not high_dimensional(d) or max(n_r, n_s) ** 2 * np.dtype(dtype).itemsize > KID_GRAM_BYTES:
        return None
    whole = n_r * n_s + n_s * n_s / 2 + (n_r * n_r / 2 if real_missing else 0)
    per_subset = subsets * m * m * (1.5 + (0.5 if real_missing else 0))
    if whole >= per_subset:
        return None
    return {"rs": gram(real, synthetic, dtype=dtype), "ss": gram(synthetic, dtype=dtype),
            "rr": gram(real, dtype=dtype) if real_missing else None}


def _kid_from_matrices(grams: dict[str, np.ndarray | None], n_real: int, n_syn: int,
                       subsets: int, m: int, rng_real: np.random.Generator,
                       rng_syn: np.random.Generator,
                       real_terms: dict[int, tuple[np.ndarray, float]] | None,
                       kernel: tuple[int, float, float]) -> np.ndarray:
    """Per-subset MMD² from whole inner-product matrices: each kernel matrix is built once
    and every subset's sum is read through indicator vectors (``1ₛᵀ K 1ₛ``, one matrix
    product for all subsets) instead of gathering its m × m block. The subsets are the
    per-subset path's (same streams, same draws)."""
    idx_r, idx_s = [], []
    for i in range(subsets):
        if real_terms is not None and i in real_terms:
            rng_real.permutation(n_real)  # keep the stream aligned with an uncached run
            idx_r.append(real_terms[i][0])
        else:
            idx_r.append(rng_real.permutation(n_real)[:m])
        idx_s.append(rng_syn.permutation(n_syn)[:m])
    missing = [i for i in range(subsets) if real_terms is None or i not in real_terms]
    if missing:  # every subset's real term from one batch, whichever are cached
        k_rr = _subset_kernel_means(grams["rr"], idx_r, idx_r, kernel)
        if real_terms is not None:
            for i in missing:
                real_terms[i] = (idx_r[i], float(k_rr[i]))
    assert real_terms is not None or missing
    rr = (np.array([real_terms[i][1] for i in range(subsets)]) if real_terms is not None
          else k_rr)
    ss = _subset_kernel_means(grams["ss"], idx_s, idx_s, kernel)
    rs = _subset_kernel_means(grams["rs"], idx_r, idx_s, kernel)
    return rr + ss - 2 * rs


def _subset_kernel_means(gram: np.ndarray | None, rows: list[np.ndarray],
                         cols: list[np.ndarray], kernel: tuple[int, float, float]
                         ) -> np.ndarray:
    """Mean kernel value of each subset pair ``(rows[i], cols[i])`` of the whole matrix
    ``gram`` (off the diagonal when the two are the same subsets of one set)."""
    assert gram is not None
    degree, gamma, coef0 = kernel
    k = _polynomial(np.array(gram, dtype=np.float64, order="C"), degree, gamma, coef0)

    def indicators(index: list[np.ndarray], n: int) -> np.ndarray:
        out = np.zeros((n, len(index)))
        for i, idx in enumerate(index):
            out[idx, i] = 1.0
        return out

    ind_c = indicators(cols, k.shape[1])
    ind_r = ind_c if rows is cols else indicators(rows, k.shape[0])
    totals = np.einsum("ij,ij->j", ind_r, k @ ind_c)
    m_r, m_c = len(rows[0]), len(cols[0])
    if rows is cols:
        totals -= ind_r.T @ np.diagonal(k)
        return totals / (m_r * (m_r - 1))
    return totals / (m_r * m_c)


def _offdiag_mean(k: np.ndarray) -> float:
    m = k.shape[0]
    return float((k.sum() - np.trace(k)) / (m * (m - 1)))


def kid(real: np.ndarray, synthetic: np.ndarray, *, subsets: int = 100,
        subset_size: int = 1000, seed: int = 0, degree: int = 3, gamma: float | None = None,
        coef0: float = 1.0, precision: str = "float64",
        products: InnerProducts | None = None,
        _real_terms: dict[int, tuple[np.ndarray, float]] | None = None
        ) -> tuple[float, float, np.ndarray]:
    """Unbiased polynomial-kernel MMD² over random subsets: ``(mean, std, per-subset values)``.

    Each subset draws ``m = min(subset_size, N_real, N_synthetic)`` samples without
    replacement from each set. Real subsets depend only on ``seed`` and the real set, so the
    real-real kernel terms can be cached across synthetic sets (``_real_terms``).
    ``precision`` is that of the inner products (see :func:`polynomial_kernel`); kernel
    values and sums are float64 either way. In high-dimensional spaces the subsets gather
    their inner products from whole matrices computed once (see :func:`_kid_grams`), or
    from ``products``, the float64 inner products shared with the other metrics (then
    ``precision`` does not apply: they are float64).
    """
    m = min(subset_size, real.shape[0], synthetic.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    rng_real = np.random.default_rng([seed, 0])
    rng_syn = np.random.default_rng([seed, 1])
    real_missing = _real_terms is None or any(i not in _real_terms for i in range(subsets))
    if products is not None:
        grams = {"rs": products(real, synthetic), "ss": products(synthetic),
                 "rr": products(real) if real_missing else None}
    else:
        grams = _kid_grams(real, synthetic, subsets, m, precision, real_missing)
    g = 1.0 / real.shape[1] if gamma is None else gamma

    if grams is not None:
        values = _kid_from_matrices(grams, real.shape[0], synthetic.shape[0], subsets, m,
                                    rng_real, rng_syn, _real_terms, (degree, g, coef0))
        std = float(values.std(ddof=1)) if subsets > 1 else 0.0
        return float(values.mean()), std, values

    def kernel(which: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x = real[a] if which[0] == "r" else synthetic[a]
        y = x if which == "ss" else real[b] if which[1] == "r" else synthetic[b]
        return polynomial_kernel(x, y, degree, gamma, coef0, precision)

    values = np.empty(subsets)
    for i in range(subsets):
        if _real_terms is not None and i in _real_terms:
            idx_r, k_rr = _real_terms[i]
            rng_real.permutation(real.shape[0])  # keep the stream aligned with an uncached run
        else:
            idx_r = rng_real.permutation(real.shape[0])[:m]
            k_rr = _offdiag_mean(kernel("rr", idx_r, idx_r))
            if _real_terms is not None:
                _real_terms[i] = (idx_r, k_rr)
        idx_s = rng_syn.permutation(synthetic.shape[0])[:m]
        k_ss = _offdiag_mean(kernel("ss", idx_s, idx_s))
        k_rs = float(kernel("rs", idx_r, idx_s).mean())
        values[i] = k_rr + k_ss - 2 * k_rs
    std = float(values.std(ddof=1)) if subsets > 1 else 0.0
    return float(values.mean()), std, values


class KID(SetMetric):
    """KID over ``subsets`` random subsets of ``subset_size`` samples per set (fewer when N is
    smaller); ``precision`` is that of the inner products ("float32", as torchmetrics, or
    "float64"); kernel values and sums are float64 either way. No interval: the std over
    subsets is kept in ``details["std"]``."""

    name = "kid"
    direction = "lower"
    family = "fidelity"
    label = "KID"
    min_n = 10
    distances = ("euclidean", "cosine")
    description = ("Unbiased MMD² between real and synthetic features with the cubic "
                   "polynomial kernel (x·y/d + 1)³, averaged over random subsets of "
                   "min(1000, N) samples per set (0 = same distribution); details hold the "
                   "std over subsets.")
    reference = "Bińkowski et al., ICLR 2018"

    def __init__(self, *, subsets: int = 100, subset_size: int = 1000,
                 precision: str = "float32", **interval: Any) -> None:
        super().__init__(**interval)
        self.subsets, self.subset_size, self.precision = int(subsets), int(subset_size), precision

    def guard(self, ctx: EvaluationContext) -> str | None:
        assert ctx.reference is not None
        if min(ctx.n, ctx.reference.n) < self.min_n:
            return f"needs at least {self.min_n} samples per set"
        return super().guard(ctx)

    def score(self, ctx: EvaluationContext) -> MetricResult:
        ref, x = ctx.reference, ctx.features
        assert ref is not None and x is not None
        size = self.subset_size
        m = min(size, ctx.n, ref.n)
        warns = None
        if m < size:
            warns = [f"subset size {m} < {size} (N is small): KID is noisier and not comparable "
                     f"to values computed with {size}"]
            warnings.warn(f"kid: {warns[0]}", RuntimeWarning, stacklevel=3)
        products = ctx.products  # shared float64 inner products in a high-dimensional space
        precision = self.precision if products is None else "float64"
        cache = ref.cached(("kid_real", ctx.seed, m, precision), dict)
        mean, std, _ = kid(ref.features_, x, subsets=self.subsets, subset_size=m, seed=ctx.seed,
                           precision=precision, products=products, _real_terms=cache)
        return self.result(ctx, mean, std=std, subsets=self.subsets, subset_size=m,
                           inner_products=precision, warnings=warns)


# ---------------------------------------------------------------------------------------------
# k-NN precision, density, α-precision, F^p
# ---------------------------------------------------------------------------------------------


class Precision(SetMetric):
    name = "precision"
    direction = "higher"
    family = "fidelity"
    label = "precision"
    min_n = 10
    description = ("Share of synthetic samples inside some real sample's k-NN ball (radius = "
                   "distance to its k-th nearest real neighbour; `<=`, so identical sets score "
                   "1; `<` under the open neighbourhood rule).")
    reference = "Kynkäänniemi et al., NeurIPS 2019"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        inside = (ctx.neighbourhoods.in_real_balls > 0).astype(np.float64)
        return self.mean_result(ctx, inside,
                           per_class=self.conditional(
                               ctx, lambda _, s: (s.in_real_balls > 0).mean()),
                           k=ctx.reference.k)


class Density(SetMetric):
    name = "density"
    direction = "higher"
    family = "fidelity"
    label = "density"
    min_n = 10
    description = ("Mean number of real k-NN balls containing a synthetic sample, divided by k "
                   "(about 1 when the sets match; above 1 when samples crowd dense real regions).")
    reference = "Naeem et al., ICML 2020"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        k = ctx.reference.k
        counts = ctx.neighbourhoods.in_real_balls / k
        return self.mean_result(ctx, counts,
                           per_class=self.conditional(
                               ctx, lambda _, s: s.in_real_balls.mean() / k), k=k)


ALPHAS = np.linspace(0.0, 1.0, 30)


def _rows64(x: np.ndarray, unit: bool) -> np.ndarray:
    rows = np.asarray(x, np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True) if unit else rows


def _blocks(x: np.ndarray, rows: np.ndarray | None, block: int | None
            ) -> Iterator[np.ndarray]:
    """Blocks of ``x`` (or of ``x[rows]``, gathered a block at a time, never whole)."""
    block = block or row_block(x.shape[1])
    n = x.shape[0] if rows is None else len(rows)
    for s in range(0, n, block):
        yield x[s:s + block] if rows is None else x[rows[s:s + block]]


def center_distances(x: np.ndarray, center: np.ndarray, unit: bool = False,
                     block: int | None = None, rows: np.ndarray | None = None) -> np.ndarray:
    """``||x_i − center||`` in float64 (rows unit-normalised first if ``unit``), through the
    exact distance routine of the k-NN engine (:func:`~synthlens.metrics.knn.squared_distances`:
    in cache, no float64 copy of the rows)."""
    from synthlens.metrics.knn import squared_distances  # lazily: the catalogue needs no torch

    c = np.asarray(center, dtype=np.float64)[None, :]
    if not unit:
        return np.sqrt(squared_distances(x, c, rows))
    return np.concatenate([np.sqrt(squared_distances(_rows64(b, unit), c))
                           for b in _blocks(x, rows, block)])


def row_mean(x: np.ndarray, unit: bool = False, block: int | None = None,
             rows: np.ndarray | None = None) -> np.ndarray:
    total = sum(_rows64(b, unit).sum(axis=0) for b in _blocks(x, rows, block))
    return np.asarray(total) / (x.shape[0] if rows is None else len(rows))


def _center_distances(ref: RealReference, x: np.ndarray, center: np.ndarray,
                      rows: np.ndarray | None = None) -> np.ndarray:
    return center_distances(x, center, ref.distance == "cosine", rows=rows)


def _real_center(ref: RealReference) -> tuple[np.ndarray, np.ndarray]:
    """Centre of the real features and each real sample's distance to it (cached)."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        unit = ref.distance == "cosine"
        center = row_mean(ref.features_, unit)
        return center, center_distances(ref.features_, center, unit)
    return ref.cached(("alpha_center",), compute)


def integrated_curve_score(curve: np.ndarray, alphas: np.ndarray = ALPHAS) -> np.ndarray:
    """``1 − Σ|curve(α) − α| / Σ α`` (Alaa et al.'s integrated α-precision / β-recall)."""
    return 1.0 - np.abs(curve - alphas).sum(axis=-1) / alphas.sum()


def alpha_precision_curve(synthetic_center_dist: np.ndarray, real_radii: np.ndarray) -> np.ndarray:
    """``P_α``: share of synthetic samples within the real α-quantile ball, per α.

    Works on (..., n) arrays so bootstrap resamples go through in one call.
    """
    return (synthetic_center_dist[..., None, :] <= real_radii[:, None]).mean(axis=-1)


class AlphaPrecision(SetMetric):
    name = "alpha_precision"
    direction = "higher"
    family = "fidelity"
    label = "α-precision"
    min_n = 20
    distances = ("euclidean", "cosine")
    description = ("Integrated α-precision: for α in [0, 1], the share of synthetic samples "
                   "inside the smallest ball around the real centre holding a fraction α of the "
                   "real samples, compared with α (1 = synthetic mass where real mass is).")
    reference = "Alaa et al., ICML 2022"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        ref, x = ctx.reference, ctx.features
        assert ref is not None and x is not None
        center, real_d = _real_center(ref)
        radii = np.quantile(real_d, ALPHAS)
        syn_d = _center_distances(ref, x, center)
        curve = alpha_precision_curve(syn_d, radii)
        value = float(integrated_curve_score(curve))
        ci = self.bootstrap(ctx, syn_d, lambda s: integrated_curve_score(
            alpha_precision_curve(s, radii)))
        unit = ref.distance == "cosine"

        def per_class(label: int, mask: np.ndarray) -> float:
            idx = ref.class_indices_[label]
            cc = row_mean(ref.features_, unit, rows=idx)  # rows read in place
            rc = np.quantile(center_distances(ref.features_, cc, unit, rows=idx), ALPHAS)
            return float(integrated_curve_score(
                alpha_precision_curve(_center_distances(ref, x, cc, np.flatnonzero(mask)), rc)))

        return self.result(ctx, value, ci=ci,
                           per_class=self.per_class(ctx, per_class, over="real",
                                                    min_n=self.min_n, min_real=self.min_n),
                           curve=[round(float(v), 6) for v in curve],
                           embedding="features, centre = mean of real features")


class FidelityPrivacyAware(SetMetric):
    name = "fidelity_privacy_aware"
    direction = "higher"
    family = "fidelity"
    label = "privacy-aware fidelity"
    min_n = 10
    description = ("F^p: share of synthetic samples in the 'real' set: inside some real "
                   "sample's k-NN ball but not a copy (not closer to any real sample than that "
                   "sample's nearest real neighbour).")
    reference = "Xing et al., MICCAI 2023"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        nb = ctx.neighbourhoods
        real = nb.real.astype(np.float64)
        return self.mean_result(ctx, real,
                           per_class=self.by_label(ctx, real),
                           k=ctx.reference.k, copy_share=float(nb.copy.mean()),
                           non_real_share=float(nb.non_real.mean()))


# ---------------------------------------------------------------------------------------------
# Label consistency
# ---------------------------------------------------------------------------------------------


class LabelConsistency(SetMetric):
    name = "label_consistency"
    direction = "higher"
    family = "fidelity"
    label = "label consistency"
    needs = ("images", "labels", "classifier")
    min_n = 10
    description = ("Accuracy of a classifier trained on the real training split on the "
                   "synthetic images, against the labels they were generated for (per class: "
                   "the share of each class's images classified as that class).")
    reference = "conditional-generation sanity check (e.g. classification accuracy score)"

    def score(self, ctx: EvaluationContext) -> MetricResult:
        assert ctx.classifier is not None and ctx.labels is not None
        predicted = np.asarray(ctx.classifier(ctx.images)).reshape(-1)
        if predicted.shape[0] != ctx.n:
            raise ValueError(f"classifier returned {predicted.shape[0]} labels for {ctx.n} "
                             "images")
        correct = (predicted == ctx.labels).astype(np.float64)
        return self.mean_result(ctx, correct,
                           per_class=self.by_label(ctx, correct))
