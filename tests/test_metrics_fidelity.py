"""Fidelity metrics against independent implementations and hand-computed cases."""

from __future__ import annotations

import warnings

import numpy as np
import prdc
import pytest
import scipy.linalg
import torch
from sklearn.neighbors import NearestNeighbors

from synthlens.metrics import RealReference, evaluate_features
from synthlens.metrics.fidelity import fid, frechet_distance, kid, polynomial_kernel


def gaussian_sets(n_real=400, n_syn=300, d=24, shift=0.3, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, d)).astype(np.float32)
    syn = (rng.standard_normal((n_syn, d)) * 1.2 + shift).astype(np.float32)
    return real, syn


def evaluate(real, syn, metrics, **kwargs):
    ref = RealReference(k=5).fit(real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluate_features(ref, syn, metrics=metrics, n_bootstrap=0, **kwargs)


@pytest.mark.parametrize("seed", [0, 1])
def test_prdc_matches_prdc_package(seed, capsys):
    real, syn = gaussian_sets(seed=seed)
    expected = prdc.compute_prdc(real, syn, nearest_k=5)
    capsys.readouterr()  # prdc prints the sample sizes
    ours = evaluate(real, syn, ["precision", "recall", "density", "coverage"])
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name].value == pytest.approx(float(expected[name]), abs=1e-6), name


def test_identical_and_collapsed_sets_score_one_with_le():
    real, _ = gaussian_sets(n_real=200)
    same = evaluate(real, real.copy(), ["precision", "recall", "density", "coverage"])
    for name in ("precision", "recall", "coverage"):
        assert same[name].value == 1.0
    # A mode-collapsed real set (radius 0 everywhere) copied exactly: `<` would give 0.
    collapsed = np.repeat(real[:10], 20, axis=0)
    out = evaluate(collapsed, collapsed.copy(), ["precision", "coverage"])
    assert out["precision"].value == 1.0 and out["coverage"].value == 1.0


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The usual pytorch-fid formula with scipy.linalg.sqrtm (the independent reference)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_matches_scipy_sqrtm():
    real, syn = gaussian_sets(n_real=500, n_syn=400, d=16)
    real, syn = real.astype(np.float64), syn.astype(np.float64)
    assert fid(real, syn) == pytest.approx(scipy_fid(real, syn), rel=1e-9)
    assert evaluate(real, syn, ["fid"])["fid"].value == pytest.approx(scipy_fid(real, syn),
                                                                       rel=1e-9)


def test_fid_hand_computed_2d_gaussians():
    # Diagonal: tr sqrt(Σ1Σ2) = sqrt(1·4) + sqrt(4·9) = 8; FID = |(1,2)|² + 5 + 13 − 16 = 7.
    assert frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]),
                            np.diag([4.0, 9.0])) == pytest.approx(7.0, abs=1e-12)
    # Rotated copies of a covariance share its eigenvalues but not its axes:
    # Σ1 = diag(4, 1), Σ2 = R Σ1 Rᵀ with R a 90° rotation = diag(1, 4);
    # tr sqrt(Σ1Σ2) = 2·sqrt(4) = 4, FID = 0 + 5 + 5 − 8 = 2.
    assert frechet_distance(np.zeros(2), np.diag([4.0, 1.0]), np.zeros(2),
                            np.diag([1.0, 4.0])) == pytest.approx(2.0, abs=1e-12)
    # Same distribution: 0.
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.ones(2), cov, np.ones(2), cov) == pytest.approx(0.0, abs=1e-12)


def test_fid_warns_when_n_not_above_dimension():
    real, syn = gaussian_sets(n_real=30, n_syn=20, d=24)
    with pytest.warns(RuntimeWarning, match="feature dimension"):
        fid(real, syn)
    ref = RealReference(k=5).fit(real)
    with pytest.warns(RuntimeWarning, match="feature dimension"):
        out = evaluate_features(ref, syn, metrics=["fid"], n_bootstrap=0)
    assert out["fid"].details["warnings"]


def direct_kid(real, syn, subsets, m, seed):
    """KID spelt out with loops over the same subsets (independent of the vectorised code)."""
    rng_r, rng_s = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    d = real.shape[1]
    vals = []
    for _ in range(subsets):
        x = real[rng_r.permutation(len(real))[:m]].astype(np.float64)
        y = syn[rng_s.permutation(len(syn))[:m]].astype(np.float64)

        def k(a, b):
            return (a @ b / d + 1.0) ** 3

        kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        vals.append(kxx + kyy - 2 * kxy)
    return float(np.mean(vals)), float(np.std(vals, ddof=1))


def test_kid_matches_direct_computation():
    real, syn = gaussian_sets(n_real=60, n_syn=50, d=6)
    mean, std, _ = kid(real, syn, subsets=3, subset_size=20, seed=4)
    ref_mean, ref_std = direct_kid(real, syn, 3, 20, 4)
    assert mean == pytest.approx(ref_mean, rel=1e-10, abs=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-10, abs=1e-12)
    # float32 inner products (the pipeline's default) agree to float32 precision
    mean32, _, _ = kid(real, syn, subsets=3, subset_size=20, seed=4, precision="float32")
    assert mean32 == pytest.approx(ref_mean, abs=1e-6)


def test_kid_matches_torchmetrics_on_full_sets():
    from torchmetrics.image.kid import KernelInceptionDistance

    real, syn = gaussian_sets(n_real=80, n_syn=80, d=8)
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=80)
    metric.update(torch.tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.tensor(syn, dtype=torch.float64), real=False)
    tm_mean, _ = metric.compute()
    ours, _, _ = kid(real, syn, subsets=1, subset_size=80)  # full sets: subsets don't matter
    assert ours == pytest.approx(float(tm_mean), rel=1e-6, abs=1e-9)


def test_kid_uses_cached_real_terms_and_warns_small_subsets():
    real, syn = gaussian_sets(n_real=100, n_syn=90, d=8)
    ref = RealReference(k=5).fit(real)
    with pytest.warns(RuntimeWarning, match="subset size 90"):
        first = evaluate_features(ref, syn, metrics=["kid"], n_bootstrap=0, kid_subsets=5)
    again = evaluate_features(ref, syn, metrics=["kid"], n_bootstrap=0, kid_subsets=5)
    direct, std, _ = kid(real, syn, subsets=5, subset_size=90, precision="float32")
    assert first["kid"].value == again["kid"].value == pytest.approx(direct, rel=1e-12)
    assert first["kid"].details["std"] == pytest.approx(std)
    assert polynomial_kernel(real[:2], real[:2]).shape == (2, 2)


def synthcity_alpha_precision(real, syn, alphas):
    """α-precision as in the published estimator (centre = mean of real features)."""
    center = real.mean(0)
    radii = np.quantile(np.linalg.norm(real - center, axis=1), alphas)
    syn_d = np.linalg.norm(syn - center, axis=1)
    curve = np.array([np.mean(syn_d <= r) for r in radii])
    return 1 - np.sum(np.abs(alphas - curve)) / np.sum(alphas)


def synthcity_beta_recall(real, syn, alphas):
    nn_real = NearestNeighbors(n_neighbors=2).fit(real)
    real_to_real = nn_real.kneighbors(real)[0][:, 1]
    nn_syn = NearestNeighbors(n_neighbors=1).fit(syn)
    real_to_syn, args = nn_syn.kneighbors(real)
    real_to_syn, args = real_to_syn[:, 0], args[:, 0]
    closest_d = np.linalg.norm(syn[args] - syn.mean(0), axis=1)
    radii = np.quantile(closest_d, alphas)
    curve = np.array([np.mean((real_to_syn <= real_to_real) & (closest_d <= r)) for r in radii])
    return 1 - np.sum(np.abs(alphas - curve)) / np.sum(alphas)


def test_alpha_precision_and_beta_recall_match_published_estimator():
    real, syn = gaussian_sets(n_real=300, n_syn=250, d=5, shift=0.5)
    real, syn = real.astype(np.float64), syn.astype(np.float64)
    alphas = np.linspace(0, 1, 30)
    out = evaluate(real, syn, ["alpha_precision", "beta_recall"])
    assert out["alpha_precision"].value == pytest.approx(
        synthcity_alpha_precision(real, syn, alphas), abs=1e-12)
    assert out["beta_recall"].value == pytest.approx(
        synthcity_beta_recall(real, syn, alphas), abs=1e-12)


def test_fidelity_privacy_aware_on_hand_built_example(monkeypatch):
    # Real points on a line: 0, 1, 3, 6, 10 (k=1 so the k-NN ball is the nearest-neighbour
    # ball). Nearest-neighbour radii: 1, 1, 2, 3, 4.
    real = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # 0.5: 0.5 from real 0 (< 1) -> copy.   3.0: identical to real 3 -> copy.
    # 8.0: 2 from 6 (radius 3: < 3 strictly -> copy).  13.5: 3.5 from 10 (radius 4) -> copy.
    # 14.5: 4.5 from 10 -> non-real.   -1.0: 1 from 0 (radius 1: not < 1, but <= 1) -> real.
    syn = np.array([[0.5], [3.0], [8.0], [13.5], [14.5], [-1.0]])
    ref = RealReference(k=1).fit(real)
    nb = ref.compare(syn)
    assert nb.copy.tolist() == [True, True, True, True, False, False]
    assert nb.real.tolist() == [False, False, False, False, False, True]
    assert nb.non_real.tolist() == [False, False, False, False, True, False]
    from synthlens.metrics.context import EvaluationContext
    from synthlens.metrics.fidelity import FidelityPrivacyAware
    from synthlens.metrics.privacy import CopyRate, Privacy

    for cls in (FidelityPrivacyAware, CopyRate, Privacy):
        monkeypatch.setattr(cls, "min_n", 1)  # six points are enough for a hand-built case
    ctx = EvaluationContext(reference=ref, features=syn)
    assert FidelityPrivacyAware(n_bootstrap=0).compute(ctx).value == pytest.approx(1 / 6)
    assert CopyRate(n_bootstrap=0).compute(ctx).value == pytest.approx(4 / 6)
    assert Privacy(n_bootstrap=0).compute(ctx).value == pytest.approx(2 / 6)


def test_label_consistency_with_any_callable():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    labels = np.repeat([0, 1], 20)

    def predict(x):  # right on class 0, wrong on half of class 1
        out = np.zeros(len(x), dtype=np.int64)
        out[30:] = 1
        return out

    from synthlens.metrics import evaluate_images

    res = evaluate_images(images, labels, metrics=["label_consistency"], classifier=predict,
                          class_names=["normal", "pneumonia"], n_bootstrap=50)
    r = res["label_consistency"]
    assert r.value == pytest.approx(30 / 40)
    assert r.per_class == {"normal": 1.0, "pneumonia": 0.5}
    assert r.ci[0] <= r.value <= r.ci[1]
    with pytest.warns(RuntimeWarning, match="classifier"):
        skipped = evaluate_images(images, labels, metrics=["label_consistency"])
    assert np.isnan(skipped["label_consistency"].value)
