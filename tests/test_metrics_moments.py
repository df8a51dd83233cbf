"""Second moments through the rows (N < d) against the d×d formulas, on cases where both run.

The form is a cost choice (:data:`synthlens.metrics.moments.DIRECT_MAX_DIM`), so the tests
lower the threshold to make a 600-d space "high-dimensional" and compare the two forms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from synthlens.metrics import RealReference, evaluate_features
from synthlens.metrics import moments as moments_module
from synthlens.metrics.fidelity import frechet_distance, kid
from synthlens.metrics.moments import Gaussian, frechet, gram, mean_cov, trace_sqrt_product
from synthlens.metrics.variety import vendi_score


@pytest.fixture
def high_dimensional(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every space above 100-d as high-dimensional, and convert in small blocks."""
    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 100)
    monkeypatch.setattr(moments_module, "BLOCK_BYTES", 200_000)


def sets(d: int = 600, n1: int = 200, n2: int = 150, seed: int = 0
         ) -> tuple[np.ndarray, np.ndarray]:
    """Correlated float32 sets with different means and spreads (fewer rows than columns)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    a = (rng.standard_normal((n1, d)) @ mix).astype(np.float32)
    b = (rng.standard_normal((n2, d)) @ mix * 1.3 + 0.2).astype(np.float32)
    return a, b


def direct(x: np.ndarray) -> Gaussian:
    return Gaussian.from_moments(*mean_cov(x), n=x.shape[0])


def test_forms_follow_the_dimension_and_keep_no_copy(high_dimensional: None) -> None:
    a, _ = sets()
    g = Gaussian.fit(a)
    assert g.form == "rows" and g.data is a and g.cov is None
    rows = np.arange(0, 200, 3)
    sub = Gaussian.fit(a, rows)
    assert sub.form == "rows" and sub.data is a and sub.n == rows.size
    np.testing.assert_allclose(sub.mean, a[rows].astype(np.float64).mean(0), rtol=1e-12)
    assert Gaussian.fit(a[:, :100]).form == "covariance"  # d <= DIRECT_MAX_DIM
    assert Gaussian.fit(np.vstack([a] * 4)).form == "covariance"  # N >= d


def test_default_threshold_keeps_the_usual_spaces_on_covariances() -> None:
    assert moments_module.DIRECT_MAX_DIM >= 2048
    assert not moments_module.uses_rows(100, 2048)  # the Inception space, any N
    assert moments_module.uses_rows(4695, 16384)  # 128x128 pixels, a few thousand images


def test_rows_form_equals_d_by_d_formulas(high_dimensional: None) -> None:
    a, b = sets()
    da, db = direct(a), direct(b)
    ra, rb = Gaussian.fit(a), Gaussian.fit(b)
    assert ra.trace == pytest.approx(float(np.trace(da.cov)), rel=1e-10)
    expected = frechet(da, db)
    assert frechet(ra, rb) == pytest.approx(expected, rel=1e-6)
    assert frechet(rb, ra) == pytest.approx(expected, rel=1e-6)
    assert trace_sqrt_product(ra, rb) == pytest.approx(trace_sqrt_product(da, db), rel=1e-6)
    # One set held as a covariance (N > d), the other as rows: both orders.
    big = np.vstack([a, a[:, ::-1], b, b[:, ::-1]])
    gbig = Gaussian.fit(big)
    assert gbig.form == "covariance"
    expected = frechet(gbig, db)
    assert frechet(gbig, rb) == pytest.approx(expected, rel=1e-6)
    assert frechet(rb, gbig) == pytest.approx(expected, rel=1e-6)
    # The array API of fidelity is the same formula.
    assert frechet_distance(da.mean, da.cov, db.mean, db.cov) == pytest.approx(
        frechet(ra, rb), rel=1e-6)
    np.testing.assert_allclose(ra.covariance(), da.cov, rtol=1e-9, atol=1e-12)


def test_identical_rows_give_zero_in_both_forms(high_dimensional: None) -> None:
    a, _ = sets(n1=120)
    assert frechet(Gaussian.fit(a), Gaussian.fit(a.copy())) == pytest.approx(0.0, abs=1e-6)


def fid_battery(real: np.ndarray, labels: np.ndarray, syn: np.ndarray,
                syn_labels: np.ndarray) -> tuple[RealReference, dict]:
    ref = RealReference(k=5).fit(real, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # N <= d is warned about
        out = evaluate_features(ref, syn, syn_labels, metrics=["fid", "kid", "vendi"],
                                n_bootstrap=0, fid_bootstrap=3, kid_subsets=4,
                                kid_subset_size=60, kid_precision="float64")
    return ref, out


def test_fid_metric_per_class_and_bootstrap_match_across_forms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real, syn = sets()
    labels = np.arange(200) % 2
    syn_labels = np.arange(150) % 2
    ref_direct, direct_out = fid_battery(real, labels, syn, syn_labels)
    assert ref_direct.moments().form == "covariance"
    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 100)
    monkeypatch.setattr(moments_module, "BLOCK_BYTES", 200_000)
    ref_rows, rows_out = fid_battery(real, labels, syn, syn_labels)
    assert ref_rows.moments().form == "rows" and ref_rows.moments(1).form == "rows"
    for name in ("fid", "kid", "vendi"):
        a, b = direct_out[name], rows_out[name]
        assert b.value == pytest.approx(a.value, rel=1e-6), name
        for cls in a.per_class or {}:
            assert b.per_class[cls] == pytest.approx(a.per_class[cls], rel=1e-6), (name, cls)
    assert rows_out["fid"].ci == pytest.approx(direct_out["fid"].ci, rel=1e-6)


def test_kid_whole_matrices_equal_subset_products(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthlens.metrics.fidelity import _kid_grams

    real, syn = sets(d=300, n1=90, n2=80)
    options = {"subsets": 20, "subset_size": 30, "seed": 2}
    per_subset = kid(real, syn, precision="float64", **options)
    per_subset32 = kid(real, syn, precision="float32", **options)
    assert _kid_grams(real, syn, 20, 30, "float64", True) is None  # 300-d: per subset
    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 100)
    grams = _kid_grams(real, syn, 20, 30, "float64", True)
    assert grams is not None and grams["rs"].shape == (90, 80) and grams["rr"] is not None
    assert _kid_grams(real, syn, 2, 30, "float64", True) is None  # 2 subsets: cheaper apart
    whole = kid(real, syn, precision="float64", **options)
    np.testing.assert_allclose(whole[2], per_subset[2], rtol=1e-9, atol=1e-12)
    whole32 = kid(real, syn, precision="float32", **options)
    np.testing.assert_allclose(whole32[2], per_subset32[2], rtol=1e-4, atol=1e-7)
    # Real terms cached from the whole matrices serve a per-subset run (same subsets).
    cache: dict = {}
    kid(real, syn, precision="float64", _real_terms=cache, **options)
    assert len(cache) == 20
    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 2048)
    again = kid(real, syn, precision="float64", _real_terms=cache, **options)
    np.testing.assert_allclose(again[2], per_subset[2], rtol=1e-9, atol=1e-12)


def test_vendi_blockwise_gram_equals_definition(high_dimensional: None) -> None:
    a, _ = sets(n1=80)
    xn = a.astype(np.float64) / np.linalg.norm(a.astype(np.float64), axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(xn @ xn.T / len(a))
    lam = lam[lam > 1e-12]
    assert vendi_score(a) == pytest.approx(float(np.exp(-(lam * np.log(lam)).sum())), rel=1e-9)
    with pytest.raises(ValueError, match="all-zero"):
        vendi_score(np.vstack([a, np.zeros((1, a.shape[1]), np.float32)]))


def test_gram_blocks_rows_and_shifts(high_dimensional: None) -> None:
    a, b = sets(d=700, n1=60, n2=50)
    rows = np.array([5, 3, 3, 40, 7])
    mu = a.mean(0).astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(gram(a), a64 @ a64.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gram(a, x_rows=rows, x_shift=mu),
                               (a64[rows] - mu) @ (a64[rows] - mu).T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gram(a, b, y_rows=rows[:2], x_shift=mu),
                               (a64 - mu) @ b64[rows[:2]].T, rtol=1e-10, atol=1e-10)
    g32 = gram(a, b, dtype=np.float32)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, a64 @ b64.T, rtol=1e-4, atol=1e-3)
