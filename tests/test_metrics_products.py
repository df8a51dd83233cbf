"""Shared inner products in high-dimensional spaces: computed once, read by every metric.

Where a space has more dimensions than images (``moments.shares_products``), the k-NN
sweeps, FID, KID and the Vendi score read one float64 matrix of inner products per pair of
sets instead of each computing its own d-dimensional work. The tests lower
``DIRECT_MAX_DIM`` so that a 600-d space counts as high-dimensional, then check that the
shared path gives the values of the usual one (the k-NN results exactly, the moment metrics
to 1e-9), and that each pair of sets is multiplied once for a whole battery and its floor.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from synthlens.metrics import RealReference, evaluate_features, pixel_products, real_floor
from synthlens.metrics import fidelity as fidelity_module
from synthlens.metrics import moments as moments_module
from synthlens.metrics import variety as variety_module
from synthlens.metrics.knn import Ball, NeighbourEngine
from synthlens.metrics.moments import (
    InnerProducts,
    double_centred,
    selected,
    shares_products,
)


def data(d: int = 600, n_real: int = 240, n_hold: int = 60, n_syn: int = 200, seed: int = 0,
         pixels: bool = False) -> dict[str, np.ndarray]:
    """Non-negative float32 'pixels' (uncentred, as images are), with exact copies of real
    rows and repeated synthetic rows planted, and two classes. ``pixels``: 8-bit values
    float32(k) / 255, as the pixel extractor writes (their products are integer ones)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    real = np.abs(rng.standard_normal((n_real, d)) @ mix + 2.0).astype(np.float32)
    hold = np.abs(rng.standard_normal((n_hold, d)) @ mix + 2.0).astype(np.float32)
    syn = np.abs(rng.standard_normal((n_syn, d)) @ mix * 1.2 + 2.1).astype(np.float32)
    syn[:10] = real[rng.choice(n_real, 10, replace=False)]  # exact copies of training rows
    syn[10:14] = syn[14]  # a small collapsed group
    if pixels:
        real, hold, syn = (np.clip(np.rint(a * 51), 0, 255).astype(np.float32) / np.float32(255)
                           for a in (real, hold, syn))
    return {"real": real, "real_labels": np.arange(n_real) % 2,
            "hold": hold, "hold_labels": np.arange(n_hold) % 2,
            "syn": syn, "syn_labels": (np.arange(n_syn) // 3) % 2}


@pytest.fixture
def high_dimensional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 100)
    monkeypatch.setattr(moments_module, "BLOCK_BYTES", 200_000)


def test_when_products_are_shared() -> None:
    assert not shares_products(2048, 1000)  # the Inception space: never
    assert shares_products(16384, 5000, 500)  # 128x128 pixels, a few thousand images
    assert shares_products(65536, 8192)
    assert not shares_products(65536, 9000)  # a matrix would exceed 512 MB
    assert not shares_products(16384, 20000)  # more images than dimensions


def test_inner_products_are_cached_by_identity_and_transposed(high_dimensional: None) -> None:
    d = data()
    real, syn = d["real"], d["syn"]
    root = InnerProducts()
    own = root(real)
    np.testing.assert_allclose(own, real.astype(np.float64) @ real.astype(np.float64).T,
                               rtol=1e-12)
    assert root(real) is own
    child = InnerProducts(parent=root)
    cross = child(syn, real)
    assert child.holds(real, syn) and child.holds(real) and not root.holds(syn, real)
    assert np.shares_memory(child(real, syn), cross)  # a transposed view, not a product
    assert child(real, syn).shape == (real.shape[0], syn.shape[0])
    assert child.nbytes == cross.nbytes and root.nbytes == own.nbytes
    assert not child.holds(real.copy(), syn)  # another array, however equal


def test_a_pickled_reference_finds_its_products_by_the_new_identities(
        high_dimensional: None) -> None:
    """Worker processes receive the reference pickled: its cached products are keyed again
    by the unpickled arrays, and an unrelated array that happens to reuse an old identity
    never gets them."""
    import pickle

    d = data()
    ref = RealReference(k=5).fit(d["real"], holdout=d["hold"])
    assert ref.products_ is not None and ref.products_.holds(ref.features_)
    clone = pickle.loads(pickle.dumps(ref))
    assert clone.products_.holds(clone.features_)
    assert clone.products_.holds(clone.holdout_, clone.features_)
    assert clone.products_(clone.features_) is clone.products_._pairs[
        (id(clone.features_), id(clone.features_))][2]
    impostor = InnerProducts()
    impostor._pairs[(id(d["syn"]), id(d["syn"]))] = (d["real"], d["real"], np.zeros((1, 1)))
    assert not impostor.holds(d["syn"])  # a key whose arrays are not these is no hit
    nb = clone.compare(d["syn"])
    np.testing.assert_array_equal(nb.to_real.indices, ref.compare(d["syn"]).to_real.indices)


def test_products_are_shared_on_the_cpu_for_euclidean_features_only(
        high_dimensional: None) -> None:
    import torch

    d = data()
    ref = RealReference(k=5).fit(d["real"])
    assert ref.set_products(d["syn"]) is not None
    assert RealReference(k=5, distance="cosine").fit(d["real"]).products_ is None
    ref.engine.device = torch.device("cuda")  # a GPU engine computes its tiles on the device
    assert ref.set_products(d["syn"]) is None
    big = np.vstack([d["syn"]] * 4)  # more images than dimensions
    assert RealReference(k=5).fit(d["real"]).set_products(big) is None


def test_centred_products_follow_from_the_raw_ones(high_dimensional: None) -> None:
    d = data()
    x, y = d["real"].astype(np.float64), d["syn"].astype(np.float64)
    rx, ry = np.array([3, 1, 1, 50, 7]), np.arange(0, 200, 7)  # a repeated row, as resamples
    mx, my = x[rx].mean(0), y[ry].mean(0)
    got = double_centred(selected(x @ y.T, rx, ry))
    np.testing.assert_allclose(got, (x[rx] - mx) @ (y[ry] - my).T, rtol=1e-9, atol=1e-9)
    raw = x @ y.T
    assert selected(raw, None, None) is raw
    np.testing.assert_array_equal(selected(raw, None, ry), raw[:, ry])


def sweep_fields(sweep) -> list[np.ndarray]:
    out = [sweep.neighbours.scores, sweep.neighbours.indices] if sweep.neighbours else []
    if sweep.reference_nearest is not None:
        out += [sweep.reference_nearest.scores, sweep.reference_nearest.indices]
    out += list(sweep.reference_ball_counts) + list(sweep.query_ball_counts)
    if sweep.realism is not None:
        out.append(sweep.realism)
    return out


@pytest.mark.parametrize("block", [None, (37, 53)])
def test_engine_sweeps_from_products_equal_computed_tiles(block) -> None:
    d = data()
    real, syn = d["real"], d["syn"]
    engine = NeighbourEngine(block=block)
    r64, s64 = real.astype(np.float64), syn.astype(np.float64)
    rr, sr, ss = r64 @ r64.T, s64 @ r64.T, s64 @ s64.T
    for rows in (None, np.flatnonzero(d["real_labels"] == 1)):
        a = engine.sweep(real, None, k=5, query_rows=rows)
        b = engine.sweep(real, None, k=5, query_rows=rows, inner_products=rr)
        for x, y in zip(sweep_fields(a), sweep_fields(b), strict=True):
            np.testing.assert_array_equal(x, y)
    radii = engine.knn(real, None, 5).kth()
    syn_radii = engine.knn(syn, None, 5).kth()
    nn1 = engine.knn(real, None, 1).kth()
    options = {"k": 5, "reference_nearest": True,
               "reference_balls": [Ball(radii), Ball(nn1, strict=True, count=False)],
               "query_balls": [Ball(syn_radii, count=False)],
               "realism_radii": np.where(radii <= np.median(radii), radii, np.inf)}
    a = engine.sweep(syn, real, **options)
    b = engine.sweep(syn, real, inner_products=sr, **options)
    fields = sweep_fields(a)
    assert len(fields) == 8
    for x, y in zip(fields, sweep_fields(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert (a.reference_ball_counts[1] > 0).sum() >= 10  # the planted copies are copies
    # A transposed view (the products computed the other way round) reads the same.
    c = engine.sweep(syn, real, inner_products=(r64 @ s64.T).T, **options)
    for x, y in zip(fields, sweep_fields(c), strict=True):
        np.testing.assert_array_equal(x, y)
    knn_a = engine.knn(syn, None, 5)
    knn_b = engine.knn(syn, None, 5, inner_products=ss)
    np.testing.assert_array_equal(knn_a.scores, knn_b.scores)
    np.testing.assert_array_equal(knn_a.indices, knn_b.indices)
    with pytest.raises(ValueError, match="shape"):
        engine.sweep(syn, real, k=5, inner_products=ss)
    with pytest.raises(ValueError, match="euclidean"):
        NeighbourEngine("cosine").sweep(syn, real, k=5, inner_products=sr)


def battery(d: dict[str, np.ndarray]) -> tuple[dict, dict]:
    ref = RealReference(k=5).fit(d["real"], d["real_labels"], holdout=d["hold"],
                                 holdout_labels=d["hold_labels"])
    effort = {"n_bootstrap": 20, "fid_bootstrap": 3, "kid_subsets": 5, "kid_subset_size": 50,
              "kid_precision": "float64"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # N <= d, small classes
        out = evaluate_features(ref, d["syn"], d["syn_labels"], **effort)
        floor = real_floor(ref, **effort)
    return out, floor


@pytest.mark.parametrize("pixels", [False, True])
def test_every_metric_equals_the_unshared_path_and_each_pair_is_multiplied_once(
        pixels: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With float features the shared products are float64 BLAS ones; with 8-bit pixels,
    integer ones (``metrics.pixel_products``): the same values either way."""
    d = data(pixels=pixels)
    assert pixel_products.is_lattice(d["real"]) == pixels
    plain, plain_floor = battery(d)
    calls: list[tuple[int, int]] = []
    other: list[str] = []
    original = moments_module.gram
    original_raw = moments_module.raw_products

    def counting(x, y=None):  # the raw products InnerProducts asks for
        calls.append((x.shape[0], (x if y is None else y).shape[0]))
        return original_raw(x, y)

    def counting_gram(x, y=None, **options):
        other.append("moments.gram" if options else "moments.gram raw")
        return original(x, y, **options)

    def unshared(name):
        def product(*args, **options):
            other.append(name)
            return original(*args, **options)
        return product

    monkeypatch.setattr(moments_module, "DIRECT_MAX_DIM", 100)
    monkeypatch.setattr(moments_module, "BLOCK_BYTES", 200_000)
    monkeypatch.setattr(moments_module, "raw_products", counting)
    monkeypatch.setattr(moments_module, "gram", counting_gram)
    monkeypatch.setattr(fidelity_module, "gram", unshared("fidelity.gram"))
    monkeypatch.setattr(variety_module, "inner_products", unshared("variety.inner_products"))
    shared, shared_floor = battery(d)
    # FID, KID and Vendi read the shared products only; pixels never need float64 BLAS
    assert other == ([] if pixels else ["moments.gram raw"] * len(calls))
    # real×real, holdout×real; synthetic×synthetic, ×real, holdout×synthetic; and the
    # floor's stand-in half (30) against itself, the real set and the other half (30).
    # (Either orientation: whichever metric asks first computes the pair.)
    assert sorted(tuple(sorted(c)) for c in calls) == sorted(
        [(240, 240), (60, 240), (200, 200), (200, 240), (60, 200),
         (30, 240), (30, 30), (30, 240), (30, 30)]), calls
    for name in plain:
        a, b = plain[name], shared[name]
        # The moment metrics to their rounding (d×d covariances against shared products);
        # the neighbour metrics are exact either way.
        rel = 1e-6 if name in ("fid", "kid", "vendi") else 1e-12
        assert b.value == pytest.approx(a.value, rel=rel, abs=1e-12, nan_ok=True), name
        for cls, value in (a.per_class or {}).items():
            assert b.per_class[cls] == pytest.approx(value, rel=rel, abs=1e-12, nan_ok=True)
    for name in plain_floor:
        rel = 1e-6 if name in ("fid", "kid", "vendi") else 1e-12
        assert shared_floor[name].value == pytest.approx(plain_floor[name].value, rel=rel,
                                                         abs=1e-12, nan_ok=True), name


def test_fid_from_shared_products_needs_no_pass_over_the_columns(
        high_dimensional: None) -> None:
    """FID of two sets of rows reads means, traces and the centred cross product from the
    shared products alone: the Gaussians never sum their rows (their means stay unset), and
    the value is the one from the rows, class subsets and resamples (repeated rows) too."""
    from synthlens.metrics.moments import Gaussian, frechet

    d = data()
    products = InnerProducts()
    rows_r, rows_s = np.arange(0, 240, 2), np.r_[np.arange(50), np.arange(50)]
    for a, b in ((None, None), (rows_r, None), (rows_r, rows_s)):
        g1, g2 = Gaussian.fit(d["real"], a), Gaussian.fit(d["syn"], b)
        shared = frechet(g1, g2, products)
        assert "mean" not in g1.__dict__ and "mean" not in g2.__dict__
        assert shared == pytest.approx(frechet(g1, g2), rel=1e-9)
        assert frechet(g1, g2) == pytest.approx(frechet(
            Gaussian.from_moments(g1.mean, g1.covariance()),
            Gaussian.from_moments(g2.mean, g2.covariance())), rel=1e-6)
