"""Exact integer inner products of 8-bit pixel features (``metrics.pixel_products``).

The ``pixels`` space holds float32(k / 255). Its inner products are computed as byte
products (``torch._int_mm``) and checked here against exact rational arithmetic, against
the float64 BLAS path they replace (every metric of a battery and its floor), and for the
fallbacks: arrays that are not such a lattice, and machines whose int8 kernels are not
exact.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from synthlens.features import get_extractor
from synthlens.metrics import moments as moments_module
from synthlens.metrics import pixel_products as pp
from synthlens.metrics.knn import NeighbourEngine, _ProductSpace
from synthlens.metrics.moments import InnerProducts, gram, raw_products


def lattice(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel features float32(k) / 255 and their codes k, with all-white, all-black and
    alternating rows among them (the extremes of every integer term)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 256, (n, d))
    k[0], k[1] = 255, 0
    k[2] = np.tile([0, 255], d)[:d]
    return k.astype(np.float32) / np.float32(255), k


def exact_products(ka: np.ndarray, kb: np.ndarray) -> list[list[Fraction]]:
    """Σ x·y of the float32 values, exactly (each value is J / 2³¹ with an integer J)."""
    ja = (pp._VALUES[ka].astype(np.float64) * 2.0**31).astype(np.int64)
    jb = (pp._VALUES[kb].astype(np.float64) * 2.0**31).astype(np.int64)
    hi_a, lo_a, hi_b, lo_b = ja >> 16, ja & 0xFFFF, jb >> 16, jb & 0xFFFF
    hh, hl, lh, ll = hi_a @ hi_b.T, hi_a @ lo_b.T, lo_a @ hi_b.T, lo_a @ lo_b.T  # no overflow
    return [[Fraction((int(hh[i, j]) << 32) + ((int(hl[i, j]) + int(lh[i, j])) << 16)
                      + int(ll[i, j]), 2**62) for j in range(hh.shape[1])]
            for i in range(hh.shape[0])]


def test_pixel_values_split_into_a_code_and_a_byte() -> None:
    k = np.arange(256)
    j = pp._VALUES.astype(np.float64) * 2.0**31
    np.testing.assert_array_equal(j, np.rint(j))  # every value is a multiple of 2^-31
    np.testing.assert_array_equal(j.astype(np.int64), pp._Q * k + pp._R.astype(np.int64))
    assert pp._R.min() >= -128 and pp._R.max() <= 127
    assert pp.MAX_RATIO == pytest.approx(2.0**-24, rel=0.01)  # float32's own rounding
    # The k-NN engine reads shared products under its float64 bound; the integer products
    # are within it for any dimension (norms and products: (2d + 40)·u of (‖a‖ + ‖b‖)²,
    # while their error is below RELATIVE_ERROR·‖a‖‖b‖ ≤ RELATIVE_ERROR/4·(‖a‖ + ‖b‖)²).
    assert pp.RELATIVE_ERROR / 4 + 2 * 2.0**-53 < _ProductSpace(np.zeros((1, 1)), None
                                                                 ).error_constant(1)


@pytest.mark.parametrize("blocks", ["one", "many"])
def test_lattice_products_are_exact_to_the_stated_bound(
        blocks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if blocks == "many":  # several column blocks, and int32 sums moved to float64
        monkeypatch.setattr(pp, "BLOCK_BYTES", 20_000)
        monkeypatch.setattr(pp, "FLUSH_COLUMNS", 700)
    x, kx = lattice(9, 2500, 0)
    y, ky = lattice(13, 2500, 1)
    assert pp.integer_products_exact()
    for got, a, b in ((pp.lattice_gram(x, y), kx, ky), (pp.lattice_gram(x), kx, kx),
                      (pp.lattice_gram(y, y), ky, ky)):
        assert got is not None and got.dtype == np.float64
        want = exact_products(a, b)
        for i in range(got.shape[0]):
            for j in range(got.shape[1]):
                error = abs(Fraction(float(got[i, j])) - want[i][j])
                assert error <= Fraction(pp.RELATIVE_ERROR) * want[i][j], (i, j)
    own = pp.lattice_gram(x)
    np.testing.assert_array_equal(own, own.T)  # exactly symmetric
    # white rows carry the largest left-over byte (r(255) = −127): the bound is reached
    assert own[1, 1] == 0.0 and own[0, 0] == pytest.approx(2500.0, rel=pp.RELATIVE_ERROR)
    # the same numbers as float64 BLAS to its rounding, and never a different row order
    np.testing.assert_allclose(pp.lattice_gram(x, y), x.astype(np.float64) @ y.astype(
        np.float64).T, rtol=1e-13)


def test_arrays_that_are_not_pixel_lattices_fall_back_to_float64() -> None:
    x, _ = lattice(6, 300, 2)
    assert pp.is_lattice(x)
    cases = []
    for value in (np.nextafter(x[3, 5], np.float32(2)), np.nan, np.float32(1.5),
                  np.float32(-1 / 255), np.float32(0.5)):
        bad = x.copy()
        bad[3, 5] = value
        cases.append(bad)
    for bad in [*cases, x.astype(np.float64), x.astype(np.float16).astype(np.float32) + 1]:
        assert not pp.is_lattice(bad)
        assert pp.lattice_gram(bad, x) is None and pp.lattice_gram(x, bad) is None
        np.testing.assert_array_equal(raw_products(bad, x), gram(bad, x))
    assert pp.lattice_gram(x[None]) is None  # not 2-D
    assert pp.lattice_gram(x[:0], x).shape == (0, 6) and pp.lattice_gram(x[:, :0]).sum() == 0
    with pytest.raises(ValueError, match="300-d and 299-d"):
        pp.lattice_gram(x, x[:, 1:])


def test_the_pixel_extractor_writes_lattices() -> None:
    images = np.random.default_rng(3).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    features = get_extractor("pixels").extract(images)
    assert pp.is_lattice(features)
    got = InnerProducts()(features)
    np.testing.assert_allclose(got, features.astype(np.float64) @ features.astype(
        np.float64).T, rtol=1e-14)


def test_machines_without_exact_int8_products_use_float64(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = lattice(5, 200, 4)
    monkeypatch.setattr(pp, "integer_products_exact", lambda: False)
    assert pp.lattice_gram(x) is None
    np.testing.assert_array_equal(raw_products(x), gram(x))


def _off_by_one_everywhere(product: torch.Tensor) -> torch.Tensor:
    return product + 1


def _off_by_one_in_the_last_column(product: torch.Tensor) -> torch.Tensor:
    product[:, -1] += 1  # a broken edge tile
    return product


@pytest.mark.parametrize("broken", [_off_by_one_everywhere, _off_by_one_in_the_last_column])
def test_a_product_that_fails_its_spot_check_warns_and_falls_back(
        broken, monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = lattice(40, 300, 5)
    assert pp.integer_products_exact()  # probed (and cached) before the kernel breaks
    real_mm = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: broken(real_mm(a, b)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert pp.lattice_gram(x) is None
        np.testing.assert_array_equal(raw_products(x), gram(x))
    assert any("disagree with float64" in str(w.message) for w in caught)


def test_sweeps_read_lattice_products_as_they_read_float64_ones() -> None:
    """The k-NN engine's results from integer products equal its computed tiles bitwise
    (the error bound covers them; exact rechecks settle every close call)."""
    rng = np.random.default_rng(6)
    base = rng.integers(0, 256, (1, 700))
    codes = np.clip(base + rng.integers(-30, 31, (150, 700)), 0, 255)
    codes[140:] = codes[:10]  # exact copies: zero distances and ties
    x = codes.astype(np.float32) / np.float32(255)
    q = x[::2].copy()
    engine = NeighbourEngine()
    for a, b in ((engine.knn(x, None, 5), engine.knn(x, None, 5,
                                                     inner_products=pp.lattice_gram(x))),
                 (engine.knn(q, x, 5), engine.knn(q, x, 5,
                                                  inner_products=pp.lattice_gram(q, x)))):
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.indices, b.indices)


def test_inner_products_of_pixels_use_integer_products(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = lattice(30, 3000, 7)
    y, _ = lattice(20, 3000, 8)
    calls: list[str] = []
    monkeypatch.setattr(moments_module, "gram", lambda *a, **k: calls.append("gram"))
    root = InnerProducts()
    assert root(x, y).shape == (30, 20) and root(x).shape == (30, 30)
    assert calls == []  # never the float64 BLAS product
