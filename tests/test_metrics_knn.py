"""The k-NN engine against a float64 brute force: exact scores, duplicates at 0, ball tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from synthlens.errors import InputError
from synthlens.metrics.knn import Ball, NeighbourEngine, knn, scores_to_distances


def exact_sq(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances computed as Σ(a−b)² in float64 (no cancellation)."""
    q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
    return np.stack([np.einsum("ij,ij->i", q[i] - r, q[i] - r) for i in range(len(q))])


def sets(seed: int = 0, offset: float = 100.0):
    """Points far from the origin (cancellation in ||a||²+||b||²−2ab) with duplicates."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((120, 12)) + offset).astype(np.float32)
    x[10] = x[20]
    x[30] = x[20]
    x[40] = x[41]
    y = (rng.standard_normal((90, 12)) + offset).astype(np.float32)
    y[5] = x[7]
    y[6] = x[7]
    return x, y


@pytest.mark.parametrize("block", [None, (7, 13), (64, 5)])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_self_knn_matches_brute_force(block, precision):
    x, _ = sets()
    nb = NeighbourEngine(block=block, precision=precision).knn(x, None, 5)
    d = exact_sq(x, x)
    np.fill_diagonal(d, np.inf)
    expected = np.sort(d, axis=1)[:, :5]
    np.testing.assert_allclose(nb.scores, expected, rtol=1e-12, atol=0)
    # indices point at neighbours with those scores, never at the point itself
    np.testing.assert_allclose(d[np.arange(len(x))[:, None], nb.indices], expected, rtol=1e-12)
    assert (nb.indices != np.arange(len(x))[:, None]).all()
    # exact duplicates come out at exactly 0, pointing at the copies
    assert nb.scores[10, 0] == 0 and nb.scores[10, 1] == 0
    assert set(nb.indices[20, :2]) == {10, 30}
    assert nb.scores[40, 0] == 0 and nb.indices[40, 0] == 41


def test_cross_sweep_balls_nearest_and_realism_match_brute_force():
    x, y = sets(1)
    engine = NeighbourEngine(block=(16, 32))
    real = engine.knn(x, None, 5)
    syn = engine.knn(y, None, 5)
    radii, nn1 = real.kth(), real.scores[:, 0]
    sweep = engine.sweep(y, x, k=3, reference_nearest=True,
                         reference_balls=[Ball(radii), Ball(nn1, strict=True)],
                         query_balls=[Ball(syn.kth())], realism_radii=radii)
    d = exact_sq(y, x)
    np.testing.assert_allclose(sweep.neighbours.scores, np.sort(d, 1)[:, :3], rtol=1e-12)
    assert sweep.neighbours.scores[5, 0] == 0 and sweep.neighbours.indices[5, 0] == 7
    assert np.array_equal(sweep.reference_ball_counts[0], (d <= radii).sum(1))
    assert np.array_equal(sweep.reference_ball_counts[1], ((d < nn1) | (d == 0)).sum(1))
    assert np.array_equal(sweep.query_ball_counts[0], (d <= syn.kth()[:, None]).sum(0))
    flags = engine.sweep(y, x, reference_balls=[Ball(nn1, strict=True, count=False)],
                         query_balls=[Ball(syn.kth(), count=False)])
    assert np.array_equal(flags.reference_ball_counts[0], ((d < nn1) | (d == 0)).any(1))
    assert np.array_equal(flags.query_ball_counts[0], (d <= syn.kth()[:, None]).any(0))
    np.testing.assert_allclose(sweep.reference_nearest.scores[:, 0], d.min(0), rtol=1e-12)
    np.testing.assert_allclose(d[sweep.reference_nearest.indices[:, 0], np.arange(len(x))],
                               d.min(0), rtol=1e-12)
    with np.errstate(divide="ignore"):
        realism = np.max(np.sqrt(radii) / np.sqrt(d), axis=1)
    np.testing.assert_allclose(sweep.realism, realism, rtol=1e-9)


def test_cancellation_case_recomputed_exactly():
    # Two nearly identical points far from the origin: float32 ||a||²+||b||²−2ab is pure noise
    # here; the engine must still return the exact float64 distance.
    base = np.full((1, 64), 1e3, dtype=np.float64)
    x = np.vstack([base, base + 1e-3 * np.eye(64)[:1], base + 5.0])
    nb = knn(x, None, 1)
    assert nb.scores[0, 0] == pytest.approx(1e-6, rel=1e-9)
    assert nb.indices[0, 0] == 1


def test_near_ties_fall_back_to_exact_rows():
    rng = np.random.default_rng(2)
    base = rng.standard_normal(30)
    ref = base + 1e-7 * rng.standard_normal((200, 30))  # a cluster tighter than float32 error
    q = base + 5 + rng.standard_normal((20, 30))
    sweep = NeighbourEngine(block=(8, 50)).sweep(q, ref, k=4, reference_nearest=True)
    d = exact_sq(q, ref)
    np.testing.assert_allclose(sweep.neighbours.scores, np.sort(d, 1)[:, :4], rtol=1e-12)
    np.testing.assert_allclose(sweep.reference_nearest.scores[:, 0], d.min(0), rtol=1e-12)
    assert sweep.stats["fallback_rows"] > 0


def test_mode_collapsed_set_is_cheap_and_all_zero():
    rng = np.random.default_rng(3)
    z = np.tile(rng.standard_normal((1, 40)), (3000, 1))
    engine = NeighbourEngine()
    nb = engine.knn(z, None, 5)
    assert (nb.scores == 0).all()
    assert (nb.indices != np.arange(3000)[:, None]).all()
    x = rng.standard_normal((50, 40))
    sweep = engine.sweep(z, x, k=2, reference_nearest=True,
                         reference_balls=[Ball(engine.knn(x, None, 5).kth())])
    assert sweep.stats["tiles"] == 1  # 3000 identical rows are one point
    d = exact_sq(z[:1], x)[0]
    np.testing.assert_allclose(sweep.reference_nearest.scores[:, 0], d, rtol=1e-12)
    assert (sweep.reference_nearest.indices[:, 0] == 0).all()  # ties go to the lowest index


def test_cosine_distance():
    x, y = sets(4, offset=1.0)
    nb = NeighbourEngine("cosine", block=(10, 20)).knn(y, x, 4)
    expected = np.sort(cdist(y.astype(np.float64), x.astype(np.float64), "cosine"), 1)[:, :4]
    np.testing.assert_allclose(nb.distances, expected, atol=1e-12)
    assert nb.distances[5, 0] == 0


@pytest.mark.parametrize("n_codes", [4, 600])  # one-hot products and direct comparison
def test_hamming_on_code_maps(n_codes):
    rng = np.random.default_rng(5)
    codes = rng.integers(0, n_codes, (80, 6, 6))
    codes[3] = codes[4]
    engine = NeighbourEngine("hamming", block=(9, 17))
    nb = engine.knn(codes, None, 3)
    flat = codes.reshape(80, -1)
    d = cdist(flat, flat, "hamming")
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(nb.distances, np.sort(d, 1)[:, :3], atol=1e-12)
    assert nb.distances[3, 0] == 0 and nb.indices[3, 0] == 4
    other = rng.integers(0, n_codes, (30, 6, 6))
    sweep = engine.sweep(other, codes, k=1, reference_nearest=True,
                         reference_balls=[Ball(nb.scores[:, 0], strict=True)])
    dc = cdist(other.reshape(30, -1), flat, "hamming") * 36
    assert np.array_equal(sweep.reference_ball_counts[0],
                          ((dc < nb.scores[:, 0]) | (dc == 0)).sum(1))
    np.testing.assert_allclose(sweep.reference_nearest.scores[:, 0], dc.min(0))


def test_score_distance_conversion():
    s = np.array([0.0, 4.0])
    assert np.array_equal(scores_to_distances(s, "euclidean"), [0.0, 2.0])
    assert np.array_equal(scores_to_distances(s, "cosine"), [0.0, 2.0])
    assert np.array_equal(scores_to_distances(s, "hamming", 8), [0.0, 0.5])


def test_bad_inputs_raise_input_error():
    engine = NeighbourEngine()
    with pytest.raises(InputError, match="NaN"):
        engine.knn(np.array([[0.0, np.nan], [1.0, 1.0]]), None, 1)
    with pytest.raises(InputError, match="more than k"):
        engine.knn(np.zeros((3, 2)), None, 3)
    with pytest.raises(InputError, match="features per sample"):
        engine.sweep(np.zeros((3, 2)), np.zeros((3, 4)), k=1)
    with pytest.raises(InputError, match="integer code maps"):
        NeighbourEngine("hamming").knn(np.zeros((3, 2)), None, 1)
    with pytest.raises(InputError, match="distance"):
        NeighbourEngine("manhattan")  # type: ignore[arg-type]


def test_crowded_balls_take_the_dense_path_with_the_same_answer(monkeypatch):
    from synthlens.metrics.knn import _SweepRun

    dense_calls = []
    original = _SweepRun._ball_tile

    def counting(self, *args, **kwargs):
        dense_calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_SweepRun, "_ball_tile", counting)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((120, 3))
    y = 0.3 * rng.standard_normal((90, 3))  # near the centre: inside many real balls
    engine = NeighbourEngine(block=(16, 32))
    real = engine.knn(x, None, 5)
    radii, nn1 = real.kth(), real.scores[:, 0]
    syn_radii = engine.knn(y, None, 5).kth()
    sweep = engine.sweep(y, x, reference_balls=[Ball(radii), Ball(nn1, strict=True)],
                         query_balls=[Ball(syn_radii)])
    d = exact_sq(y, x)
    assert dense_calls  # crowded tiles switched to the dense path
    assert np.array_equal(sweep.reference_ball_counts[0], (d <= radii).sum(1))
    assert np.array_equal(sweep.reference_ball_counts[1], ((d < nn1) | (d == 0)).sum(1))
    assert np.array_equal(sweep.query_ball_counts[0], (d <= syn_radii[:, None]).sum(0))


@pytest.mark.parametrize("distance", ["euclidean", "hamming"])
def test_row_subsets_equal_sweeps_of_copies(distance):
    """query_rows / reference_rows read a class in place: every result equals the sweep of
    the copied rows (duplicates, balls, nearest query and realism included)."""
    x, y = sets(2)
    if distance == "hamming":
        x, y = np.floor(np.abs(x - 100) * 3).astype(np.int64), np.floor(np.abs(y - 100) * 3)
        y = y.astype(np.int64)
    qr = np.array([5, 6, 1, 2, 3, 30, 40, 50, 60, 70, 80, 85, 7])  # y[5] == y[6]
    rr = np.r_[np.arange(0, 120, 2), 41]  # x[10] == x[20] == x[30], x[40] == x[41]
    engine = NeighbourEngine(distance, block=(8, 16))
    real = engine.knn(x[rr], None, 3)
    assert np.array_equal(engine.knn(x, None, 3, query_rows=rr).indices, real.indices)
    syn = engine.knn(y[qr], None, 3)
    kwargs = {"k": 2, "reference_nearest": True,
              "reference_balls": [Ball(real.kth()), Ball(real.scores[:, 0], strict=True)],
              "query_balls": [Ball(syn.kth())],
              "realism_radii": real.kth() if distance == "euclidean" else None}
    copied = engine.sweep(y[qr], x[rr], **kwargs)
    in_place = engine.sweep(y, x, query_rows=qr, reference_rows=rr, **kwargs)
    for a, b in ((copied.neighbours, in_place.neighbours),
                 (copied.reference_nearest, in_place.reference_nearest)):
        assert np.array_equal(a.scores, b.scores) and np.array_equal(a.indices, b.indices)
    for a, b in zip(copied.reference_ball_counts + copied.query_ball_counts,
                    in_place.reference_ball_counts + in_place.query_ball_counts, strict=True):
        assert np.array_equal(a, b)
    if distance == "euclidean":
        assert np.array_equal(copied.realism, in_place.realism)
    with pytest.raises(InputError, match="rows"):
        engine.sweep(y, x, k=1, query_rows=np.array([0, 500]))
    with pytest.raises(ValueError, match="reference_rows"):
        engine.sweep(y, None, k=1, reference_rows=rr)


def test_identical_row_groups_do_not_depend_on_the_hash_block():
    from synthlens.metrics.knn import _group_identical_rows

    x, _ = sets()
    whole = _group_identical_rows(x)
    for a, b in zip(whole, _group_identical_rows(x, block=7), strict=True):
        assert np.array_equal(a, b)
    rows = np.array([10, 3, 20, 30, 5, 41, 40])
    for a, b in zip(_group_identical_rows(x[rows]), _group_identical_rows(x, rows=rows),
                    strict=True):
        assert np.array_equal(a, b)


def test_subsets_group_from_the_whole_arrays_groups_as_if_hashed_alone():
    from synthlens.metrics.knn import NeighbourEngine, _group_identical_rows

    x, _ = sets()
    rng = np.random.default_rng(3)
    x = x[rng.integers(0, 40, 300)]  # 300 rows, at most 40 distinct
    points = NeighbourEngine().points(x)
    for rows in (np.arange(300)[::-1], rng.choice(300, 77, replace=False),
                 np.array([5, 5, 9, 1, 9])):
        sub = points.subset(rows)
        expected = _group_identical_rows(x, rows=rows)
        for a, b in zip((sub.first, sub.inverse, sub.counts), expected, strict=True):
            assert np.array_equal(a, b)
        # The same sweep whether the subset is hashed alone or taken from the whole array.
        a = NeighbourEngine().knn(points, None, 3, query_rows=rows)
        b = NeighbourEngine().knn(x, None, 3, query_rows=rows)
        assert np.array_equal(a.scores, b.scores) and np.array_equal(a.indices, b.indices)
    with pytest.raises(ValueError, match="whole array"):
        points.subset(np.arange(3)).subset(np.arange(2))


def test_rows_with_equal_hashes_are_told_apart(monkeypatch: pytest.MonkeyPatch):
    """A hash collision (forced: every multiplier 1, so the hash is the sum of the words)
    groups only bitwise-identical rows; a collapsed group is confirmed in chunks."""
    from synthlens.metrics import knn as knn_module

    class Ones:
        def integers(self, low, high, n, dtype):
            return np.ones(n, dtype=dtype)

    monkeypatch.setattr(knn_module.np.random, "default_rng", lambda seed: Ones())
    x = np.array([[1, 2], [2, 1], [1, 2], [3, 0], [2, 1], [0, 3]] + [[7, 7]] * 50,
                 dtype=np.float32)
    first, inverse, counts = knn_module._group_identical_rows(x)
    assert first.tolist() == [0, 1, 3, 5, 6]
    assert inverse[:6].tolist() == [0, 1, 0, 2, 1, 3] and (inverse[6:] == 4).all()
    assert counts.tolist() == [2, 2, 1, 1, 50]


@pytest.mark.parametrize("d", [2100, 33000])
def test_wide_rows_stay_exact(d):
    """Above 2048 features the engine keeps more candidates per query (a looser float32
    bound), above 32,768 it computes float64 tiles: results still equal the float64 brute
    force, duplicates included."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((70, d)) * 0.1 + rng.standard_normal((1, d))).astype(np.float32)
    x[5] = x[9]
    y = (x[:40] + rng.standard_normal((40, d)).astype(np.float32) * 0.01)
    engine = NeighbourEngine(block=(16, 16))
    nb = engine.knn(x, None, 5)
    d = exact_sq(x, x)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(nb.scores, np.sort(d, axis=1)[:, :5], rtol=1e-12, atol=0)
    assert nb.scores[5, 0] == 0 and nb.indices[5, 0] == 9
    cross = engine.sweep(y, x, k=3, reference_nearest=True)
    dc = exact_sq(y, x)
    np.testing.assert_allclose(cross.neighbours.scores, np.sort(dc, 1)[:, :3], rtol=1e-12)
    np.testing.assert_allclose(cross.reference_nearest.scores[:, 0], dc.min(0), rtol=1e-12)


def test_a_collapsed_set_crowding_every_column_falls_back_to_exact_rows():
    # 40 near-copies of one image in a wide space (the pixels space of a collapsed generator):
    # every real column has more tied candidates than the tile keeps, so all fall back
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (30, 2000))
    y = rng.uniform(0, 1, 2000) + 1e-4 * rng.standard_normal((40, 2000))
    sweep = NeighbourEngine().sweep(y, x, k=1, reference_nearest=True)
    d = exact_sq(y, x)
    np.testing.assert_allclose(sweep.reference_nearest.scores[:, 0], d.min(0), rtol=1e-12)
    assert sweep.stats["fallback_rows"] == 30


def test_exact_distances_do_not_depend_on_where_a_pair_sits_or_on_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The one exact routine gives a pair the same float64 value alone, in any batch, at any
    position, broadcast against one row, and whatever the thread count (fixed column
    chunks; 5,000 columns: two full chunks and a partial one)."""
    import torch

    from synthlens.metrics import knn as knn_module

    rng = np.random.default_rng(11)
    x = rng.random((300, 5000), dtype=np.float32)
    y = rng.random((200, 5000), dtype=np.float32) * 3
    ia, ib = rng.integers(0, 300, 1000), rng.integers(0, 200, 1000)
    monkeypatch.setattr(knn_module, "_EXACT_THREADED_ENTRIES", 1 << 14)  # split small ones
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = knn_module.squared_distances(x, y, ia, ib)
        torch.set_num_threads(2)
        two = knn_module.squared_distances(x, y, ia, ib)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)
    alone = np.array([knn_module.squared_distances(x[i:i + 1], y[j:j + 1])[0]
                      for i, j in zip(ia[:50], ib[:50], strict=True)])
    np.testing.assert_array_equal(alone, one[:50])
    order = rng.permutation(1000)
    np.testing.assert_array_equal(knn_module.squared_distances(x, y, ia[order], ib[order]),
                                  one[order])
    row = knn_module.squared_distances(x, y[7:8], ia)  # one row of b, broadcast
    np.testing.assert_array_equal(row, knn_module.squared_distances(
        x, y, ia, np.full(1000, 7)))
    exact = ((x[ia].astype(np.float64) - y[ib].astype(np.float64)) ** 2).sum(axis=1)
    np.testing.assert_allclose(one, exact, rtol=1e-13)
    with pytest.raises(ValueError, match="same number of rows"):
        knn_module.squared_distances(x, y, ia, ib[:10])
