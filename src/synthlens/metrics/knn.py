"""The one exact, memory-bounded nearest-neighbour engine every neighbour-based metric uses.

Peers build full N×N distance matrices per metric (``prdc`` holds three: 1.2 GB at N=10,000).
Here one blockwise *sweep* of a query set against a reference set computes, tile by tile,
everything the metrics need, and never holds more than one tile:

* the ``k`` nearest reference points of every query (exact distances and indices; the query
  itself excluded when query and reference are the same set),
* the nearest query of every reference point,
* for balls around reference points (``Ball``: per-point radii), how many balls contain
  each query (precision, density, the copy and "real" sets),
* for balls around query points, how many contain each reference point (recall),
* the realism score of Kynkäänniemi et al. (2019).

Exactness. Tiles are matrix products (``||a||² + ||b||² − 2 a·b``) in float32 by default, which
is fast but cancels badly when two points are close. Every decision therefore goes through a
rigorous float32 error bound: a comparison the bound cannot settle, and every nearest-neighbour
candidate, is recomputed exactly as ``Σ (a_i − b_i)²`` in float64 from the original features.
Exact duplicates therefore come out at distance 0, and results equal a float64 brute force.
Identical rows are grouped before the sweep (mode-collapsed sets are thousands of identical
rows), so ties between copies cost nothing.

Shared products. In a space with more dimensions than points, the inner products of the
two sets can be passed in (``inner_products``, see :class:`_ProductSpace`): tiles are then
gathered from them, not computed, under the same error bound and exact rechecks, so every
class's sweep and every moment metric reuse one product per pair of sets
(:class:`synthlens.metrics.moments.InnerProducts`).

Distances. ``euclidean`` and ``cosine`` (``1 − cos``) on float features, ``hamming`` (share of
differing positions) on integer code maps. Internally the engine works in *scores* that order
like the distance: squared Euclidean distance (of the unit-normalised rows for cosine) and the
count of differing positions for Hamming. :class:`Neighbours` carries scores and converts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from synthlens.errors import InputError
from synthlens.metrics.threads import over_rows
from synthlens.progress import progress_bar

DistanceName = Literal["euclidean", "cosine", "hamming"]
DISTANCES: tuple[str, ...] = ("euclidean", "cosine", "hamming")

# Candidates kept per query beyond k; more only matters when many points tie within the
# float32 error bound, and those rows are settled by an exact fallback anyway.
_EXTRA_CANDIDATES = 8
# The float32 error bound grows with the dimension, so above this many features more
# candidates fall inside it; keeping 3x as many then spares the exact whole-row fallback.
_WIDE_DIM = 2048
# Above this many features the float32 bound (about 2·d·2⁻²⁴ of the squared norms) leaves so
# many comparisons to the exact recheck that float64 tiles cost less (measured at 65,536-d:
# half the time); `precision="float32"` then computes float64 tiles (same results).
_FLOAT32_MAX_DIM = 32768
# A reference point with more near-tied nearest-query candidates than this in one tile is
# settled by the exact fallback instead (bounds the candidate list's memory).
_MAX_COLUMN_CANDIDATES = 32
# Float64 scratch for centring rows into a block (the block itself is in the tile dtype).
_CONVERT_BYTES = 8 << 20
# Exact distances: columns per partial sum (fixed, so a pair's rounding never depends on
# where its rows sit), pairs per pass (64 × 2048 float64 differences: 1 MB, in cache), and
# the size of a request (pairs × columns) per thread when it is split over threads.
_EXACT_COLUMNS = 2048
_EXACT_PAIRS = 64
_EXACT_THREADED_ENTRIES = 1 << 22


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest neighbours of each query, nearest first.

    ``scores`` are exact (float64) in the engine's internal unit (squared Euclidean distance,
    squared distance of unit-normalised rows for cosine, differing positions for Hamming);
    ``distances`` converts them. ``indices`` index the reference set.
    """

    scores: np.ndarray
    indices: np.ndarray
    distance: DistanceName
    code_length: int = 1

    @property
    def distances(self) -> np.ndarray:
        return scores_to_distances(self.scores, self.distance, self.code_length)

    @property
    def k(self) -> int:
        return int(self.scores.shape[1])

    def kth(self, k: int | None = None) -> np.ndarray:
        """Scores of the ``k``-th neighbour (default: the last column), one per query."""
        k = self.k if k is None else k
        if not 1 <= k <= self.k:
            raise ValueError(f"k must be in 1..{self.k}, got {k}")
        return self.scores[:, k - 1]


@dataclass(frozen=True)
class Ball:
    """Balls around the points of one set, radii given as scores (one per point).

    A point ``x`` is inside the ball of ``p`` when ``score(x, p) <= radius[p]`` (a closed
    ball). With ``strict=True`` it is inside when ``score < radius`` (an open ball, as prdc
    and the companion study's analyzer test it), and with ``identical=True`` as well also
    when the two are identical (score 0): synthlens's copy test, where an exact duplicate is
    always a copy even when the real image itself has a duplicate (radius 0). With
    ``count=False`` the sweep reports only whether some ball contains the point (0/1), which
    is cheaper.
    """

    radii: np.ndarray
    strict: bool = False
    count: bool = True
    identical: bool = True

    def inside(self, scores: Any, radii: Any) -> Any:
        """Whether each score lies in its ball (numpy arrays or torch tensors alike)."""
        if not self.strict:
            return scores <= radii
        if self.identical:
            return (scores < radii) | (scores == 0)
        return scores < radii


@dataclass
class Sweep:
    """Everything one query-vs-reference sweep computed, indexed like the original rows."""

    neighbours: Neighbours | None
    """k nearest reference points of each query (``None`` when k=0)."""
    reference_nearest: Neighbours | None
    """The nearest query of each reference point (``None`` unless asked)."""
    reference_ball_counts: list[np.ndarray]
    """Per ``reference_balls`` entry: how many reference balls contain each query (0/1 for
    balls with ``count=False``)."""
    query_ball_counts: list[np.ndarray]
    """Per ``query_balls`` entry: how many query balls contain each reference point (0/1 for
    balls with ``count=False``)."""
    realism: np.ndarray | None
    """Realism score of each query (``None`` unless asked)."""
    stats: dict[str, int] = field(default_factory=dict)
    """Work counters: exact rechecks, rows settled by the exact fallback, tiles."""


def scores_to_distances(scores: np.ndarray, distance: str, code_length: int = 1) -> np.ndarray:
    """Convert internal scores to distances (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    if distance == "euclidean":
        return np.sqrt(scores)
    if distance == "cosine":
        return scores / 2.0  # ||x̂ − ŷ||² = 2 − 2 cos
    if distance == "hamming":
        return scores / float(code_length)
    raise ValueError(f"unknown distance {distance!r}")


# ---------------------------------------------------------------------------------------------
# Validated sets with identical rows grouped
# ---------------------------------------------------------------------------------------------


class _Points:
    """A validated 2-D set, or the rows ``rows`` of one (read in place, never copied whole),
    with identical rows grouped (``unique`` rows carry a count). Indices are the set's own
    (0..n-1), whether or not it is a subset.

    Built by :meth:`NeighbourEngine.points` once per array, a set serves every sweep it is
    in: :meth:`subset` groups a class from the whole array's groups (no second hash), and
    the rows' squared norms (:meth:`array_norms`) are computed once.
    """

    def __init__(self, x: np.ndarray, rows: np.ndarray | None = None, *,
                 groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 parent: _Points | None = None) -> None:
        self.x = x
        self.rows = rows
        self.parent = parent
        self._norms: np.ndarray | None = None
        n = self.n
        first, inverse, counts = groups or _group_identical_rows(x, rows=rows)
        self.has_duplicates = len(first) < n
        if self.has_duplicates:
            self.first, self.inverse, self.counts = first, inverse, counts
            # Members of group v are order[starts[v]: starts[v] + counts[v]], ascending.
            self.order = np.argsort(self.inverse, kind="stable").astype(np.int64)
            self.starts = (np.cumsum(self.counts) - self.counts).astype(np.int64)
            position = np.empty(n, dtype=np.int64)
            position[self.order] = np.arange(n)
            self.rank_in_group = position - self.starts[self.inverse]
        else:
            self.first = np.arange(n, dtype=np.int64)
            self.inverse = self.first
            self.counts = np.ones(n, dtype=np.int64)
            self.order = self.first
            self.starts = self.first
            self.rank_in_group = np.zeros(n, dtype=np.int64)

    def subset(self, rows: np.ndarray) -> _Points:
        """The rows ``rows`` of this whole-array set, grouped from its groups."""
        if self.rows is not None:
            raise ValueError("subset() selects rows of a whole array, not of a subset")
        lowest = self.first[self.inverse][rows]  # equal for identical rows
        return _Points(self.x, rows, groups=_groups_of_labels(lowest), parent=self)

    def array_norms(self) -> np.ndarray:
        """Float64 squared norms of every row of the whole array (computed once)."""
        if self.parent is not None:
            return self.parent.array_norms()
        if self._norms is None:
            n, d = self.x.shape
            norms = np.empty(n)
            step = max(1, _CONVERT_BYTES // (8 * max(d, 1)))
            for s in range(0, n, step):
                part = np.asarray(self.x[s:s + step], dtype=np.float64)
                norms[s:s + part.shape[0]] = np.einsum("ij,ij->i", part, part)
            self._norms = norms
        return self._norms

    @property
    def n(self) -> int:
        return int(self.x.shape[0] if self.rows is None else self.rows.shape[0])

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_unique(self) -> int:
        return int(self.first.shape[0])

    def take(self, index: np.ndarray) -> np.ndarray:
        """Original rows by the set's own indices (a gather)."""
        return self.x[self.original(index)]

    def original(self, index: np.ndarray) -> np.ndarray:
        """Indices into the whole array ``x`` of the set's own indices."""
        return index if self.rows is None else self.rows[index]

    def unique_rows(self, start: int, stop: int) -> np.ndarray:
        """Original rows of unique points ``start:stop`` (a view when there are no groups)."""
        if not self.has_duplicates and self.rows is None:
            return self.x[start:stop]
        return self.take(self.first[start:stop])

    def max_value(self, block: int = 4096) -> int:
        return max(int(self.take(np.arange(s, min(s + block, self.n))).max())
                   for s in range(0, self.n, block))

    def member(self, group: np.ndarray, occurrence: np.ndarray) -> np.ndarray:
        return self.order[self.starts[group] + occurrence]


def _row_words(x: np.ndarray, rows: np.ndarray | None, index: slice | np.ndarray
               ) -> np.ndarray:
    """Rows of ``x`` (or of ``x[rows]``) as 32-bit words, for hashing and comparing."""
    part = x[index] if rows is None else x[rows[index]]
    words = np.ascontiguousarray(part).reshape(part.shape[0], -1)
    if words.dtype.itemsize % 4:
        words = words.astype(np.int64 if np.issubdtype(words.dtype, np.integer) else np.float64)
    return words.view(np.uint32)


def _group_identical_rows(x: np.ndarray, block: int | None = None,
                          rows: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of bitwise-identical rows of ``x`` (or of ``x[rows]``, indexed 0..n-1):
    ``(first, inverse, counts)``.

    Groups are numbered in order of first appearance and represented by their lowest
    index. Rows are hashed blockwise (a random linear hash of their 32-bit words, so memory
    stays bounded by the block: 4096 rows, fewer for long rows) and only rows with equal
    hashes are compared.
    """
    n = x.shape[0] if rows is None else rows.shape[0]
    n_words = _row_words(x, rows, slice(0, 1)).shape[1]
    mult = np.random.default_rng(0x5EED).integers(1, 2**63, n_words, dtype=np.uint64) | 1
    hashes = np.empty(n, dtype=np.uint64)
    if block is None:  # two uint64 copies of a block of words: at most 2 x 32 MB
        block = max(1, min(4096, (32 << 20) // (8 * max(n_words, 1))))
    for s in range(0, n, block):
        hashes[s:s + block] = (_row_words(x, rows, slice(s, s + block)).astype(np.uint64)
                               * mult).sum(axis=1, dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    sorted_h = hashes[order]
    starts = np.flatnonzero(np.r_[True, sorted_h[1:] != sorted_h[:-1]])
    label = np.empty(n, dtype=np.int64)  # provisional group label: lowest index in the group
    ends = np.r_[starts[1:], n]
    label[order] = order[np.repeat(starts, ends - starts)]
    step = max(1, (32 << 20) // (4 * max(n_words, 1)))  # rows compared at a time: 32 MB
    for a, b in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        # Equal hashes: confirm bitwise equality (collisions are rare). Members ascend (a
        # stable sort), so each pass takes the lowest pending row and every row equal to it;
        # a collapsed set (thousands of identical rows) takes one pass, in 32 MB chunks.
        pending = order[a:b]
        while pending.size:
            head = _row_words(x, rows, pending[:1])[0]
            same = np.empty(pending.size, dtype=bool)
            for s in range(0, pending.size, step):
                same[s:s + step] = (_row_words(x, rows, pending[s:s + step]) == head).all(axis=1)
            label[pending[same]] = pending[0]
            pending = pending[~same]
    return _groups_of_labels(label)


def _groups_of_labels(label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(first, inverse, counts)`` of rows labelled equal when identical: groups numbered by
    first appearance, each represented by its lowest index."""
    _, first_pos, inv = np.unique(label, return_index=True, return_inverse=True)
    by_appearance = np.argsort(first_pos, kind="stable")
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(len(by_appearance))
    inverse = rank[inv.ravel()]
    first = first_pos[by_appearance]
    counts = np.bincount(inverse, minlength=len(first))
    return first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Distance spaces: how a block becomes a tile, and the exact recomputation
# ---------------------------------------------------------------------------------------------


def squared_distances(a: np.ndarray, b: np.ndarray, a_rows: np.ndarray | None = None,
                       b_rows: np.ndarray | None = None) -> np.ndarray:
    """Exact ``Σ (a_i − b_i)²`` of paired rows ``a[a_rows]`` and ``b[b_rows]`` in float64
    (a ``b`` of one row is paired with every row of ``a``).

    The one exact distance routine: differences in float64 (exact for float32 rows),
    squared, summed by numpy's pairwise sum over fixed chunks of :data:`_EXACT_COLUMNS`
    columns, and the chunk sums summed the same way. A pair's rounding depends on its two
    rows only, wherever they sit and whichever sweep asks, so a distance compared with a
    radius computed elsewhere matches it bitwise (with d ≤ 2048 there is one chunk: the
    plain row sum). Pairs go :data:`_EXACT_PAIRS` at a time, so the float64 differences
    stay in cache, and large requests are split over threads
    (:func:`~synthlens.metrics.threads.over_rows`; each pair is computed the same way by
    whichever thread takes it).
    """
    n = a.shape[0] if a_rows is None else len(a_rows)
    if (b.shape[0] if b_rows is None else len(b_rows)) not in (n, 1):
        raise ValueError("paired rows: both sides need the same number of rows (or b one)")
    out = np.empty(n, dtype=np.float64)
    if n:
        min_rows = max(_EXACT_PAIRS, _EXACT_THREADED_ENTRIES // max(a.shape[1], 1))
        over_rows(lambda lo, hi: _distances_into(out, a, b, a_rows, b_rows, lo, hi), n,
                  min_rows)
    return out


def _distances_into(out: np.ndarray, a: np.ndarray, b: np.ndarray, a_rows: np.ndarray | None,
                    b_rows: np.ndarray | None, lo: int, hi: int) -> None:
    """Rows ``lo:hi`` of :func:`squared_distances` into ``out``."""
    d = a.shape[1]
    width = min(d, _EXACT_COLUMNS)
    chunks = range(0, d, width)
    scratch = np.empty((_EXACT_PAIRS, width), dtype=np.float64)
    partial = np.empty((_EXACT_PAIRS, len(chunks)), dtype=np.float64)
    for s in range(lo, hi, _EXACT_PAIRS):
        e = min(s + _EXACT_PAIRS, hi)
        ia = slice(s, e) if a_rows is None else a_rows[s:e]
        ib = (slice(0, 1) if b.shape[0] == 1 and b_rows is None else  # one row: broadcast
              slice(s, e) if b_rows is None else b_rows[s:e])
        for j, c in enumerate(chunks):
            cols = slice(c, c + width)
            diff = scratch[:e - s, :min(width, d - c)]
            np.subtract(a[ia, cols], b[ib, cols], out=diff, dtype=np.float64)
            np.multiply(diff, diff, out=diff)
            partial[:e - s, j] = diff.sum(axis=1)
        out[s:e] = partial[:e - s].sum(axis=1)


class _FloatSpace:
    """Euclidean (and, with unit-normalised rows, cosine) scores via matrix products."""

    exact_tiles = False

    def __init__(self, distance: DistanceName, dtype: torch.dtype, device: torch.device) -> None:
        self.distance = distance
        self.dtype = dtype
        self.device = device
        self.center: np.ndarray | None = None
        self.code_length = 1

    def transform(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        if self.distance == "cosine":
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return rows

    def fit_center(self, sets: Sequence[_Points], block: int) -> None:
        # Distances do not change under translation; centring at the data shrinks the norms
        # the float32 error bound scales with (features such as Inception's are all positive).
        total = None
        count = 0
        for points in sets:
            for start in range(0, points.n_unique, block):
                rows = self.transform(points.unique_rows(start, start + block))
                part = rows.sum(axis=0)
                total = part if total is None else total + part
                count += rows.shape[0]
        assert total is not None
        self.center = total / count

    def block(self, points: _Points, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
        """Centred rows in the compute dtype, and their float64 squared norms.

        Rows are centred in float64 a few at a time (:data:`_CONVERT_BYTES` of float64) and
        written into the compute-dtype block, so long rows cost no float64 copy of a block.
        """
        assert self.center is not None
        n, d = stop - start, self.center.shape[0]
        cast = np.empty((n, d), dtype=np.float32 if self.dtype == torch.float32 else np.float64)
        step = max(1, _CONVERT_BYTES // (8 * d))
        scratch = np.empty((min(step, n), d))
        for s in range(0, n, step):
            rows = points.unique_rows(start + s, min(start + s + step, stop))
            part = scratch[:rows.shape[0]]
            if self.distance == "cosine":
                np.subtract(self.transform(rows), self.center, out=part)
            else:  # the same float64 values as transform(rows) - center, without the copy
                np.subtract(rows, self.center, out=part, dtype=np.float64)
            cast[s:s + rows.shape[0]] = part
        norms = np.einsum("ij,ij->i", cast, cast, dtype=np.float64)
        return torch.from_numpy(cast).to(self.device), norms

    def error_constant(self, dim: int) -> float:
        # |computed − exact| <= c · (||a|| + ||b||)² for the centred rows a, b: rounding of the
        # rows to the compute dtype (2u), the dot product over `dim` terms in any summation
        # order (2·dim·u), the norms, the radius and the final additions (a few u each).
        unit = 2.0**-24 if self.dtype == torch.float32 else 2.0**-53
        return 1.05 * (2 * dim + 40) * unit

    def tile(self, q: torch.Tensor, q_norms: torch.Tensor, r: torch.Tensor,
             r_norms: torch.Tensor) -> torch.Tensor:
        s = torch.addmm(r_norms[None, :], q, r.T, alpha=-2.0)
        s.add_(q_norms[:, None])
        return s.clamp_(min=0.0)

    def exact_pairs(self, x: np.ndarray, ix: np.ndarray, y: np.ndarray, iy: np.ndarray,
                    chunk: int) -> np.ndarray:
        """Exact scores of the pairs ``(x[ix[i]], y[iy[i]])`` (cosine: of the unit rows)."""
        if self.distance == "cosine":
            return _gathered_pairs(lambda a, b: squared_distances(
                self.transform(a), self.transform(b)), x, ix, y, iy, chunk)
        return squared_distances(x, y, ix, iy)


class _ProductSpace:
    """Euclidean scores read from precomputed float64 inner products (``NeighbourEngine.sweep``
    with ``inner_products``): ``‖a‖² + ‖b‖² − 2 a·b``, one gather per tile, no product.

    In a space with more dimensions than points the products are the cost of every sweep
    and of the moment metrics alike, so they are computed once (see
    :class:`~synthlens.metrics.moments.InnerProducts`) and each sweep, each class and each
    metric reads them. Blocks are the rows' indices into the two arrays, norms are
    computed from the rows in float64, and the tile entries carry float64 BLAS rounding of
    the *uncentred* rows, which :meth:`error_constant` bounds as for float64 tiles.
    """

    exact_tiles = False
    dtype = torch.float64

    def __init__(self, products: np.ndarray, device: torch.device) -> None:
        self.products = products
        self.device = device
        self.distance: DistanceName = "euclidean"
        self.code_length = 1

    def fit_center(self, sets: Sequence[_Points], block: int) -> None:
        pass  # the products are of the rows as they are

    def block(self, points: _Points, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
        index = points.first[start:stop]
        if points.rows is not None:
            index = points.rows[index]
        norms = points.array_norms()[index]
        return torch.from_numpy(np.ascontiguousarray(index)), norms

    def error_constant(self, dim: int) -> float:
        # Each product and each norm is a float64 sum of `dim` terms in some order (2·dim·u
        # of (‖a‖ + ‖b‖)² together), plus the final additions.
        return 1.05 * (2 * dim + 40) * 2.0**-53

    def tile(self, q: torch.Tensor, q_norms: torch.Tensor, r: torch.Tensor,
             r_norms: torch.Tensor) -> torch.Tensor:
        g = torch.from_numpy(self._gather(q.numpy(), r.numpy())).to(self.device)
        s = g.mul_(-2.0).add_(q_norms[:, None]).add_(r_norms[None, :])
        return s.clamp_(min=0.0)

    def _gather(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """A new C-ordered array of the products of ``rows`` by ``cols`` (runs of consecutive
        indices, the usual case, are sliced rather than gathered)."""
        def run(index: np.ndarray) -> slice | np.ndarray:
            if len(index) and index[-1] - index[0] == len(index) - 1 and (
                    len(index) < 2 or bool((np.diff(index) == 1).all())):
                return slice(int(index[0]), int(index[-1]) + 1)
            return index

        a, b = run(rows), run(cols)
        if isinstance(a, slice) or isinstance(b, slice):
            part = self.products[a, b]
            return np.array(part, dtype=np.float64, order="C", copy=True)
        return np.ascontiguousarray(self.products[np.ix_(a, b)], dtype=np.float64)

    def exact_pairs(self, x: np.ndarray, ix: np.ndarray, y: np.ndarray, iy: np.ndarray,
                    chunk: int) -> np.ndarray:
        return squared_distances(x, y, ix, iy)  # as computed tiles are rechecked: the same


class _HammingSpace:
    """Differing positions of integer code maps: exact integer tiles, no recheck needed."""

    exact_tiles = True
    distance: DistanceName = "hamming"

    def __init__(self, device: torch.device, n_codes: int, code_length: int) -> None:
        self.device = device
        self.n_codes = n_codes
        self.code_length = code_length
        # One-hot matrix products are exact (integer sums < 2^24) and fast for small codebooks.
        self.one_hot = n_codes * code_length <= 16384 and code_length < 2**24

    def fit_center(self, sets: Sequence[_Points], block: int) -> None:
        pass

    def block(self, points: _Points, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
        rows = torch.from_numpy(np.ascontiguousarray(points.unique_rows(start, stop),
                                                     dtype=np.int64)).to(self.device)
        if self.one_hot:
            rows = torch.nn.functional.one_hot(rows, self.n_codes).reshape(rows.shape[0], -1)
            rows = rows.to(torch.float32)
        return rows, np.zeros(rows.shape[0])

    def error_constant(self, dim: int) -> float:
        return 0.0

    def tile(self, q: torch.Tensor, q_norms: torch.Tensor, r: torch.Tensor,
             r_norms: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            return (q @ r.T).neg_().add_(float(self.code_length))
        out = torch.zeros((q.shape[0], r.shape[0]), dtype=torch.float32, device=q.device)
        chunk = max(1, (1 << 24) // max(1, q.shape[0] * r.shape[0]))
        for p in range(0, self.code_length, chunk):
            out += (q[:, None, p:p + chunk] != r[None, :, p:p + chunk]).sum(-1)
        return out

    def exact(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.count_nonzero(np.asarray(a) != np.asarray(b), axis=1).astype(np.float64)

    def exact_pairs(self, x: np.ndarray, ix: np.ndarray, y: np.ndarray, iy: np.ndarray,
                    chunk: int) -> np.ndarray:
        return _gathered_pairs(self.exact, x, ix, y, iy, chunk)


def _gathered_pairs(exact: Any, x: np.ndarray, ix: np.ndarray, y: np.ndarray,
                    iy: np.ndarray, chunk: int) -> np.ndarray:
    """``exact(x[ix], y[iy])`` gathered ``chunk`` pairs at a time (bounded memory)."""
    out = np.empty(len(ix), dtype=np.float64)
    for s in range(0, len(ix), chunk):
        out[s:s + chunk] = exact(x[ix[s:s + chunk]], y[iy[s:s + chunk]])
    return out


# ---------------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------------


class NeighbourEngine:
    """Exact blockwise nearest neighbours and ball tests in bounded memory.

    Parameters
    ----------
    distance:
        ``"euclidean"`` or ``"cosine"`` on float features, ``"hamming"`` on integer code maps
        (any shape ``(N, ...)``, flattened per sample).
    device:
        Where tiles are computed (``"cpu"``, ``"cuda"``); exact rechecks run on the CPU.
    precision:
        ``"float32"`` (default; fast, with exact float64 rechecks of every undecided
        comparison; float64 tiles above 32,768 features, where the float32 error bound
        leaves too much undecided) or ``"float64"`` tiles (same results, slower).
    memory_mb:
        Budget for the working set (tiles, candidate lists, cached reference blocks) on top
        of the features themselves; block sizes are chosen from it.
    progress:
        Show a tqdm bar on stderr for sweeps with many tiles.
    block:
        Fix the (query, reference) block sizes instead of deriving them from ``memory_mb``
        (for tests and tuning).
    """

    def __init__(self, distance: DistanceName = "euclidean", *, device: str | torch.device = "cpu",
                 precision: Literal["float32", "float64"] = "float32", memory_mb: float = 256.0,
                 progress: bool = False, block: tuple[int, int] | None = None) -> None:
        if distance not in DISTANCES:
            raise InputError("distance", f"must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if precision not in ("float32", "float64"):
            raise InputError("precision", f"must be 'float32' or 'float64', got {precision!r}")
        if memory_mb < 8:
            raise InputError("memory_mb", f"must be at least 8, got {memory_mb}")
        self.distance: DistanceName = distance
        self.device = torch.device(device)
        self.precision = precision
        self.memory_mb = float(memory_mb)
        self.progress = progress
        self.block = block
        if (self.device.type == "cuda" and precision == "float32"
                and torch.get_float32_matmul_precision() != "highest"):
            # TF32 products break the error bound: compute tiles in float64 instead.
            self.precision = "float64"

    # -- input ---------------------------------------------------------------------------------

    def validate(self, x: np.ndarray, source: str) -> np.ndarray:
        """Check a feature array (or code maps) and return it as a 2-D array (no copy if fine)."""
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise InputError(source, f"expected an array of shape (N, ...) with N >= 1, got "
                                     f"shape {x.shape}")
        if self.distance == "hamming":
            if not np.issubdtype(x.dtype, np.integer):
                raise InputError(source, f"hamming distance needs integer code maps, got "
                                         f"dtype {x.dtype}")
            x = x.reshape(x.shape[0], -1)
            if x.size and x.min() < 0:
                raise InputError(source, "code maps must be non-negative integers")
            return x
        if x.ndim != 2:
            raise InputError(source, f"expected features of shape (N, D), got shape {x.shape}")
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise InputError(source, f"features must be numeric, got dtype {x.dtype}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        step = max(1, (16 << 20) // max(x.shape[1], 1))  # row blocks: bounded temporaries
        blocks = range(0, x.shape[0], step)
        if not all(np.isfinite(x[s:s + step]).all() for s in blocks):
            raise InputError(source, "features contain NaN or infinity")
        if self.distance == "cosine" and any((np.abs(x[s:s + step]).max(axis=1) == 0).any()
                                             for s in blocks):
            raise InputError(source, "cosine distance is undefined for all-zero feature rows")
        return x

    def _space(self, sets: Sequence[_Points], products: np.ndarray | None = None
               ) -> _FloatSpace | _HammingSpace | _ProductSpace:
        if products is not None:
            return _ProductSpace(products, self.device)
        if self.distance == "hamming":
            n_codes = max(p.max_value() for p in sets) + 1
            return _HammingSpace(self.device, n_codes, sets[0].dim)
        wide = sets[0].dim > _FLOAT32_MAX_DIM  # float32's bound would leave too much undecided
        dtype = torch.float32 if self.precision == "float32" and not wide else torch.float64
        return _FloatSpace(self.distance, dtype, self.device)

    def points(self, x: np.ndarray, source: str = "features") -> _Points:
        """``x`` validated, with its identical rows grouped, for several sweeps (pass it as
        ``query`` or ``reference``; ``query_rows``/``reference_rows`` then select from it
        without hashing again)."""
        return self._points(x, source)

    def _points(self, x: np.ndarray | _Points, source: str,
                rows: np.ndarray | None = None) -> _Points:
        if isinstance(x, _Points):
            return x if rows is None else x.subset(self._rows(rows, x.x.shape[0], source))
        x = self.validate(x, source)
        return _Points(x, None if rows is None else self._rows(rows, x.shape[0], source))

    @staticmethod
    def _rows(rows: np.ndarray, n: int, source: str) -> np.ndarray:
        rows = np.asarray(rows)
        if (rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer)
                or rows.min() < 0 or rows.max() >= n):
            raise InputError(source, f"rows must be a non-empty 1-D array of indices below {n}")
        return rows.astype(np.int64)

    # -- public API ----------------------------------------------------------------------------

    def knn(self, query: np.ndarray, reference: np.ndarray | None = None, k: int = 5, *,
            query_rows: np.ndarray | None = None,
            reference_rows: np.ndarray | None = None,
            inner_products: np.ndarray | None = None) -> Neighbours:
        """The ``k`` nearest reference points of each query; ``reference=None`` means the query
        set itself, each point excluding itself (but not its duplicates, which are at 0).
        ``query_rows``/``reference_rows``/``inner_products``: see :meth:`sweep`."""
        sweep = self.sweep(query, reference, k=k, query_rows=query_rows,
                           reference_rows=reference_rows, inner_products=inner_products)
        assert sweep.neighbours is not None
        return sweep.neighbours

    def sweep(self, query: np.ndarray, reference: np.ndarray | None = None, *, k: int = 0,
              reference_nearest: bool = False, reference_balls: Sequence[Ball] = (),
              query_balls: Sequence[Ball] = (), realism_radii: np.ndarray | None = None,
              query_name: str = "query", reference_name: str = "reference",
              query_rows: np.ndarray | None = None,
              reference_rows: np.ndarray | None = None,
              inner_products: np.ndarray | None = None) -> Sweep:
        """One pass of ``query`` against ``reference`` (``None``: the query set, self excluded).

        ``k``: nearest reference points per query. ``reference_nearest``: the nearest query of
        every reference point. ``reference_balls``: balls around the reference points (radii
        indexed like the reference); the result counts, per query, the balls containing it.
        ``query_balls``: balls around the queries; counts per reference point.
        ``realism_radii``: reference radii (scores) for the realism score, ``max_p r_p / d(x, p)``
        over reference points with a finite radius (pass ``inf`` to leave a point out).
        ``query_rows`` / ``reference_rows``: sweep only these rows of the arrays (e.g. one
        class), read in place; results are indexed like the selected rows, exactly as for
        ``query[query_rows]`` (the same numbers, without copying the rows).
        ``inner_products``: the float64 matrix ``query @ reference.T`` of the whole arrays
        (``query @ query.T`` without a reference), Euclidean distance only; tiles are then
        read from it instead of computed (see :class:`_ProductSpace`), with the same exact
        results.
        """
        self_mode = reference is None
        if self_mode and reference_rows is not None:
            raise ValueError("reference_rows needs a reference set (query_rows select the set)")
        q = self._points(query, query_name, query_rows)
        r = q if self_mode else self._points(reference, reference_name, reference_rows)
        if q.dim != r.dim:
            raise InputError(query_name, f"has {q.dim} features per sample but "
                                         f"{reference_name} has {r.dim}")
        if self_mode and (reference_nearest or reference_balls or query_balls
                          or realism_radii is not None):
            raise ValueError("ball tests and reference_nearest need two different sets")
        available = r.n - (1 if self_mode else 0)
        if k < 0 or k > available:
            raise InputError(reference_name, f"needs more than k={k} points for the k nearest "
                                             f"neighbours, has {available}")
        if inner_products is not None:
            n_ref = q.x.shape[0] if self_mode else r.x.shape[0]
            if self.distance != "euclidean":
                raise ValueError("inner_products are for the euclidean distance")
            if inner_products.shape != (q.x.shape[0], n_ref):
                raise ValueError(f"inner_products must have shape ({q.x.shape[0]}, {n_ref}), "
                                 f"got {inner_products.shape}")
        balls_r = [self._unique_radii(b, r, reference_name) for b in reference_balls]
        balls_q = [self._unique_radii(b, q, query_name) for b in query_balls]
        realism = None
        if realism_radii is not None:
            realism = self._unique_radii(Ball(np.asarray(realism_radii, np.float64)), r,
                                         reference_name).radii
        return _SweepRun(self, q, r, self_mode, k, reference_nearest, balls_r, balls_q,
                         realism, inner_products).run()

    @staticmethod
    def _unique_radii(ball: Ball, points: _Points, source: str) -> Ball:
        radii = np.asarray(ball.radii, dtype=np.float64)
        if radii.shape != (points.n,):
            raise ValueError(f"{source}: ball radii must have shape ({points.n},), got "
                             f"{radii.shape}")
        unique = radii[points.first]
        if points.has_duplicates and not np.array_equal(radii, unique[points.inverse]):
            raise ValueError(f"{source}: identical points must have identical ball radii")
        return Ball(unique, ball.strict, ball.count, ball.identical)


class _SweepRun:
    """State of one sweep (kept out of the engine so the engine stays reusable)."""

    def __init__(self, engine: NeighbourEngine, q: _Points, r: _Points, self_mode: bool, k: int,
                 reference_nearest: bool, balls_r: list[Ball], balls_q: list[Ball],
                 realism: np.ndarray | None, products: np.ndarray | None = None) -> None:
        self.e = engine
        self.q, self.r, self.self_mode = q, r, self_mode
        self.k = k
        self.want_ref_nearest = reference_nearest
        self.balls_r, self.balls_q = balls_r, balls_q
        self.realism = realism
        self.space = engine._space([q] if self_mode else [q, r], products)
        self.dense_balls: dict[str, bool] = {}
        self.stats: dict[str, float] = {"tiles": 0, "exact_rechecks": 0, "fallback_rows": 0,
                                        "tile_s": 0.0, "reduce_s": 0.0, "exact_s": 0.0}
        d = q.dim
        tile_dtype = getattr(self.space, "dtype", torch.float32)
        itemsize = 4 if self.space.exact_tiles or tile_dtype == torch.float32 else 8
        if isinstance(self.space, _HammingSpace) and self.space.one_hot:
            d = self.space.n_codes * self.space.code_length
        budget = engine.memory_mb * 2**20
        # Bytes per tile entry: the tile, its difference to the radii, masks, float counts.
        entry_bytes = 20
        if isinstance(self.space, _HammingSpace) and not self.space.one_hot:
            entry_bytes += 16
        if isinstance(self.space, _ProductSpace):
            d = 1  # a block is its rows' indices; a tile gathers float64 products, then adds
            entry_bytes += 16
        # The converted reference is kept whole when it fits in half the budget (it is reused
        # by every query block); otherwise it is converted block by block.
        self.cache_ref = r.n_unique * d * itemsize <= budget / 2
        tile_budget = budget / 2 if self.cache_ref else budget / 4
        # Bytes per block entry: the block in the tile dtype, plus an int64 one-hot copy for
        # Hamming codes (float rows are centred through a small float64 scratch instead).
        row_bytes = d * (itemsize + (0 if isinstance(self.space, _FloatSpace) else 8))
        self.br = int(min(r.n_unique, 4096, max(64, budget / 4 / row_bytes)))
        self.bq = int(min(q.n_unique, max(16, tile_budget / (self.br * entry_bytes)),
                          max(16, budget / 4 / row_bytes)))
        if engine.block is not None:
            self.bq = max(1, min(q.n_unique, engine.block[0]))
            self.br = max(1, min(r.n_unique, engine.block[1]))
            self.cache_ref = False
        if self_mode:  # symmetric sweeps need the same blocks on both sides
            self.bq = self.br = min(self.bq, self.br)
        # Exact rechecks gather pairs of float64 rows (and their difference) in chunks.
        self.pair_chunk = max(16, int(budget / 16 / (max(q.dim, 1) * 8 * 3)))

    # -- exact recomputation ---------------------------------------------------------------------

    def exact_unique(self, qu: np.ndarray, ru: np.ndarray) -> np.ndarray:
        """Exact scores of unique-query/unique-reference pairs (float64)."""
        t0 = time.perf_counter()
        q, r = self.q, self.r
        out = self.space.exact_pairs(q.x, q.original(q.first[qu]), r.x,
                                     r.original(r.first[ru]), self.pair_chunk)
        self.stats["exact_rechecks"] += len(qu)
        self.stats["exact_s"] += time.perf_counter() - t0
        return out

    def exact_row(self, rows_of: _Points, row: int, cols_of: _Points) -> np.ndarray:
        """Exact scores of one unique point against all unique points of the other set."""
        n = cols_of.n_unique
        ix = np.repeat(rows_of.original(rows_of.first[row:row + 1]), n)
        return self.space.exact_pairs(rows_of.x, ix, cols_of.x,
                                      cols_of.original(cols_of.first), self.pair_chunk)

    # -- the sweep -------------------------------------------------------------------------------

    def run(self) -> Sweep:
        q, r = self.q, self.r
        space = self.space
        # Centre from blocks of at most a quarter of the budget in float64.
        center_rows = max(self.bq, 256)
        if center_rows * q.dim * 8 > self.e.memory_mb * 2**20 / 4:
            center_rows = max(1, int(self.e.memory_mb * 2**20 / 4 / (q.dim * 8)))
        space.fit_center([q] if self.self_mode else [q, r], center_rows)
        dev = self.e.device
        # Norms of every unique point give the error bound of every tile entry.
        r_blocks: list[tuple[torch.Tensor, torch.Tensor]] = []
        r_norm2_parts = []
        for s in range(0, r.n_unique, self.br):
            rb, rn = space.block(r, s, min(s + self.br, r.n_unique))
            r_norm2_parts.append(rn)
            if self.cache_ref:
                r_blocks.append((rb, torch.as_tensor(
                    rn, dtype=rb.dtype if rb.is_floating_point()
                    else getattr(space, "dtype", torch.float32), device=dev)))
        q_norm2 = (np.concatenate(r_norm2_parts) if self.self_mode else
                   np.concatenate([space.block(q, s, min(s + self.br, q.n_unique))[1]
                                   for s in range(0, q.n_unique, self.br)]))
        r_norm2 = np.concatenate(r_norm2_parts)
        c = space.error_constant(q.dim)
        q_norm = np.sqrt(q_norm2)
        r_norm = np.sqrt(r_norm2)
        tol_q = c * (q_norm + r_norm.max()) ** 2  # per query row, bounds any entry in its row
        tol_r = c * (q_norm.max() + r_norm) ** 2  # per reference column
        self.tol_q, self.tol_r = tol_q, tol_r

        nq_u, nr_u = q.n_unique, r.n_unique
        wr = torch.as_tensor(self._ref_weights(), dtype=torch.float32, device=dev)
        wq = torch.as_tensor(q.counts, dtype=torch.float32, device=dev)
        k_cand = 0
        if self.k:
            wide = not space.exact_tiles and q.dim > _WIDE_DIM
            extra = _EXTRA_CANDIDATES * (3 if wide else 1)
            k_cand = min(self.k + extra + int(q.has_duplicates or r.has_duplicates),
                         nr_u)
        knn_scores = np.empty((nq_u, self.k), dtype=np.float64)
        knn_idx = np.empty((nq_u, self.k), dtype=np.int64)
        knn_occ = np.empty((nq_u, self.k), dtype=np.int64)
        ball_counts_r = [np.zeros(nq_u, dtype=np.float64) for _ in self.balls_r]
        ball_counts_q = [np.zeros(nr_u, dtype=np.float64) for _ in self.balls_q]
        ref_best = np.full(nr_u, np.inf)  # running approximate nearest-query score
        ref_cands: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        ref_fallback = np.zeros(nr_u, dtype=bool)
        real_best = np.full(nq_u, -np.inf)
        real_arg = np.full(nq_u, -1, dtype=np.int64)
        realism_t = None
        if self.realism is not None:
            # Points left out (inf radius) get −1 so they never win the maximum ratio.
            usable = np.isfinite(self.realism) & (self.realism > 0)
            realism_t = torch.as_tensor(np.where(usable, self.realism, -1.0),
                                        dtype=getattr(space, "dtype", torch.float32),
                                        device=dev)
        # Decisions in the tiles' own precision (the error bound is for that precision).
        fdt = getattr(space, "dtype", torch.float32)
        # A set against itself: distances are symmetric, so each pair of blocks is computed
        # once and its transpose feeds the other block's candidates (about half the work).
        sym = self.self_mode and k_cand > 0
        n_rb = math.ceil(nr_u / self.br)
        if sym:
            glob_val = torch.full((nq_u, k_cand), math.inf, dtype=fdt, device=dev)
            glob_idx = torch.full((nq_u, k_cand), -1, dtype=torch.int64, device=dev)
            n_tiles = n_rb * (n_rb + 1) // 2
        else:
            n_tiles = math.ceil(nq_u / self.bq) * n_rb
        bar = progress_bar(total=n_tiles, desc="k-NN sweep", unit="tile", leave=False,
                           disable=not self.e.progress or n_tiles < 4)

        def ref_block(bi: int, rs: int, re: int) -> tuple[torch.Tensor, torch.Tensor]:
            if self.cache_ref:
                return r_blocks[bi]
            rb, rn = space.block(r, rs, re)
            return rb, torch.as_tensor(rn, dtype=rb.dtype if rb.is_floating_point() else fdt,
                                       device=dev)

        for qi, qs in enumerate(range(0, nq_u, self.bq)):
            qe = min(qs + self.bq, nq_u)
            if self.self_mode:
                qb, qn_t = ref_block(qi, qs, qe)  # same blocks as the reference
            else:
                qb, qn = space.block(q, qs, qe)
                qn_t = torch.as_tensor(qn, dtype=qb.dtype if qb.is_floating_point() else fdt,
                                       device=dev)
            # One bound for the whole block: the largest row bound covers every entry.
            tol_tile = float(tol_q[qs:qe].max())
            if sym:
                run_val, run_idx = glob_val[qs:qe], glob_idx[qs:qe]
            else:
                run_val = torch.full((qe - qs, k_cand), math.inf, dtype=fdt, device=dev)
                run_idx = torch.full((qe - qs, k_cand), -1, dtype=torch.int64, device=dev)
            for bi in range(qi if sym else 0, n_rb):
                rs = bi * self.br
                re = min(rs + self.br, nr_u)
                rb, rn_t = ref_block(bi, rs, re)
                t0 = time.perf_counter()
                s = space.tile(qb, qn_t, rb, rn_t)
                t1 = time.perf_counter()
                self.stats["tiles"] += 1
                self.stats["tile_s"] += t1 - t0
                if self.self_mode and rs < qe and qs < re:
                    self._mask_self(s, qs, qe, rs, re)
                if k_cand:
                    run_val, run_idx = _merge_topk(s, run_val, run_idx, rs, k_cand)
                    if sym and bi != qi:
                        glob_val[rs:re], glob_idx[rs:re] = _merge_topk(
                            s.T.contiguous(), glob_val[rs:re], glob_idx[rs:re], qs, k_cand)
                if self.want_ref_nearest:
                    self._ref_nearest_tile(s, qs, rs, re, ref_best, ref_cands, ref_fallback)
                if self.balls_r:
                    self._ball_group(s, tol_tile, self.balls_r, ball_counts_r, True, wr, qs, qe,
                                     rs, re)
                if self.balls_q:
                    self._ball_group(s, tol_tile, self.balls_q, ball_counts_q, False, wq, qs,
                                     qe, rs, re)
                if realism_t is not None:
                    ratio = realism_t[None, rs:re] / s
                    best, arg = ratio.max(dim=1)
                    best_np = best.cpu().numpy().astype(np.float64)
                    better = best_np > real_best[qs:qe]
                    real_best[qs:qe][better] = best_np[better]
                    real_arg[qs:qe][better] = arg.cpu().numpy()[better] + rs
                self.stats["reduce_s"] += time.perf_counter() - t1
                bar.update(1)
            if self.k:
                self._finish_knn(run_val.cpu().numpy(), run_idx.cpu().numpy(), qs, qe,
                                 knn_scores, knn_idx, knn_occ)
        bar.close()

        neighbours = None
        if self.k:
            neighbours = self._expand_knn(knn_scores, knn_idx, knn_occ)
        reference_nearest = None
        if self.want_ref_nearest:
            reference_nearest = self._finish_ref_nearest(ref_best, ref_cands, ref_fallback)
        realism_scores = None
        if self.realism is not None:
            realism_scores = self._finish_realism(real_arg)
        return Sweep(
            neighbours=neighbours,
            reference_nearest=reference_nearest,
            reference_ball_counts=[np.rint(cnt[q.inverse]).astype(np.int64)
                                   for cnt in ball_counts_r],
            query_ball_counts=[np.rint(cnt[r.inverse]).astype(np.int64) for cnt in ball_counts_q],
            realism=realism_scores,
            stats=self.stats,
        )

    # -- pieces --------------------------------------------------------------------------------

    def _ref_weights(self) -> np.ndarray:
        return self.r.counts.astype(np.float64)

    def _mask_self(self, s: torch.Tensor, qs: int, qe: int, rs: int, re: int) -> None:
        """Excluding self: the diagonal stands for the *other* copies of a point (score 0)."""
        lo, hi = max(qs, rs), min(qe, re)
        u = torch.arange(lo, hi, device=s.device)
        dup = torch.as_tensor(self.q.counts[lo:hi] >= 2, device=s.device)
        s[u - qs, u - rs] = torch.where(dup, 0.0, math.inf).to(s.dtype)

    def _ball_group(self, s: torch.Tensor, tol: float, balls: list[Ball],
                    totals: list[np.ndarray], around_columns: bool, weights: torch.Tensor,
                    qs: int, qe: int, rs: int, re: int) -> None:
        """Ball tests of one tile for a group of balls around the same points.

        Usually only a few entries per row lie inside any ball, so the entries below the
        largest radius (plus the error bound) are listed once and every ball is decided on
        that short list, exactly where the bound cannot decide. Tiles where the list would be
        long (a collapsed or very close set) go through the dense per-ball path instead.
        """
        key = "columns" if around_columns else "rows"
        lines = slice(qs, qe) if around_columns else slice(rs, re)
        pts = slice(rs, re) if around_columns else slice(qs, qe)
        if self.dense_balls.get(key, False):
            for j, ball in enumerate(balls):
                part = self._ball_tile(s, tol, ball, ball.radii[pts], around_columns,
                                       weights[pts], qs, rs)
                self._accumulate(totals[j], lines, part, ball.count)
            return
        largest = np.max(np.stack([b.radii[pts] for b in balls]), axis=0)
        largest_t = torch.as_tensor(largest + tol, dtype=s.dtype, device=s.device)
        mask = s <= (largest_t[None, :] if around_columns else largest_t[:, None])
        rows_t, cols_t = torch.nonzero(mask, as_tuple=True)
        del mask
        if len(rows_t) > s.numel() // 32:
            self.dense_balls[key] = True  # crowded: later tiles take the dense path
        approx = s[rows_t, cols_t].cpu().numpy().astype(np.float64)
        rows, cols = rows_t.cpu().numpy(), cols_t.cpu().numpy()
        point = cols if around_columns else rows
        line = rows if around_columns else cols
        w = weights[pts].cpu().numpy().astype(np.float64)[point]
        exact: np.ndarray | None = None
        n_lines = (qe - qs) if around_columns else (re - rs)
        for j, ball in enumerate(balls):
            rad = ball.radii[pts][point]
            if self.space.exact_tiles:
                inside = ball.inside(approx, rad)
            else:
                inside = approx < rad - tol
                undecided = ~inside & (approx <= rad + tol)
                if undecided.any():
                    if exact is None:
                        exact = np.full(len(approx), np.nan)
                    need = undecided & np.isnan(exact)
                    if need.any():
                        exact[need] = self.exact_unique(rows[need] + qs, cols[need] + rs)
                    ex = exact[undecided]
                    r_u = rad[undecided]
                    inside[undecided] = ball.inside(ex, r_u)
            if ball.count:
                part = np.bincount(line, weights=w * inside, minlength=n_lines)
            else:
                part = np.zeros(n_lines)
                part[line[inside]] = 1.0
            self._accumulate(totals[j], lines, part, ball.count)

    @staticmethod
    def _accumulate(total: np.ndarray, lines: slice, part: np.ndarray, count: bool) -> None:
        if count:
            total[lines] += part
        else:
            np.maximum(total[lines], part, out=total[lines])

    def _ball_tile(self, s: torch.Tensor, tol: float, ball: Ball, radii: np.ndarray,
                   around_columns: bool, weights: torch.Tensor, qs: int, rs: int) -> np.ndarray:
        """Counts (or 0/1 flags) of sure-inside entries plus exactly rechecked undecided ones.

        ``around_columns``: balls around the reference points (``radii`` per column; result
        per row, weighted by the reference multiplicities), else around the queries (per row;
        result per column). ``tol`` bounds the error of every entry of the tile, so entries
        below ``radius − tol`` are surely inside, above ``radius + tol`` surely outside, and
        only the band between is recomputed exactly. An exact duplicate (score 0) lands in
        the band or below, so strict balls see it too.
        """
        radii_t = torch.as_tensor(radii, dtype=s.dtype, device=s.device)
        shape = (1, -1) if around_columns else (-1, 1)
        lo = (radii_t - tol).reshape(shape)
        if self.space.exact_tiles:
            inside = ball.inside(s, lo)
            undecided = None
        else:
            inside = s < lo
            undecided = (s <= (radii_t + tol).reshape(shape)) ^ inside
        axis = 1 if around_columns else 0
        if ball.count:
            inside_f = inside.to(torch.float32)
            out = inside_f @ weights if around_columns else weights @ inside_f
            del inside_f
        else:
            out = inside.any(dim=axis)
        result = out.cpu().numpy().astype(np.float64)
        del inside
        if undecided is not None:
            # Only rows (or columns) holding undecided entries are searched for them.
            lines = torch.nonzero(undecided.any(dim=axis), as_tuple=True)[0]
            if len(lines):
                sub = undecided[lines] if around_columns else undecided[:, lines]
                i, j = torch.nonzero(sub, as_tuple=True)
                if around_columns:
                    rows, cols = lines[i].cpu().numpy(), j.cpu().numpy()
                else:
                    rows, cols = i.cpu().numpy(), lines[j].cpu().numpy()
                exact = self.exact_unique(rows + qs, cols + rs)
                rad = radii[cols] if around_columns else radii[rows]
                ok = ball.inside(exact, rad)
                w = weights.cpu().numpy().astype(np.float64)
                line = rows if around_columns else cols
                if ball.count:
                    np.add.at(result, line, (w[cols] if around_columns else w[rows]) * ok)
                else:
                    result[line[ok]] = 1.0
        return result

    def _ref_nearest_tile(self, s: torch.Tensor, qs: int, rs: int, re: int, ref_best: np.ndarray,
                          ref_cands: list, ref_fallback: np.ndarray) -> None:
        """Candidates for the nearest query of each reference column of the tile."""
        col_min = torch.amin(s, dim=0)
        col_min_np = col_min.cpu().numpy().astype(np.float64)
        ref_best[rs:re] = np.minimum(ref_best[rs:re], col_min_np)
        if self.space.exact_tiles:
            # Exact scores: the first row reaching the minimum is the answer for this tile.
            rows_np = (s == col_min[None, :]).to(torch.float32).argmax(dim=0).cpu().numpy()
            cols_np = np.arange(re - rs)
            ref_cands.append((rows_np + qs, cols_np + rs, col_min_np))
            return
        # Every query within twice the error bound of the column minimum may be the nearest.
        tr = torch.as_tensor(2 * self.tol_r[rs:re], dtype=s.dtype, device=s.device)
        rows, cols = torch.nonzero(s <= (col_min + tr)[None, :], as_tuple=True)
        rows_np, cols_np = rows.cpu().numpy(), cols.cpu().numpy()
        per_col = np.bincount(cols_np, minlength=re - rs)
        crowded = per_col > _MAX_COLUMN_CANDIDATES
        if crowded.any():
            ref_fallback[rs:re] |= crowded
            keep = ~crowded[cols_np]
            rows_np, cols_np = rows_np[keep], cols_np[keep]
            rows, cols = torch.as_tensor(rows_np), torch.as_tensor(cols_np)
        vals = s[rows, cols].cpu().numpy().astype(np.float64)
        ref_cands.append((rows_np + qs, cols_np + rs, vals))

    def _finish_ref_nearest(self, ref_best: np.ndarray, ref_cands: list,
                            ref_fallback: np.ndarray) -> Neighbours:
        q, r = self.q, self.r
        best = np.full(r.n_unique, np.inf)
        arg = np.full(r.n_unique, -1, dtype=np.int64)
        if ref_cands:
            qu = np.concatenate([c[0] for c in ref_cands])
            ru = np.concatenate([c[1] for c in ref_cands])
            approx = np.concatenate([c[2] for c in ref_cands])
            keep = (approx <= ref_best[ru] + 2 * self.tol_r[ru]) & ~ref_fallback[ru]
            qu, ru = qu[keep], ru[keep]
            exact = approx[keep] if self.space.exact_tiles else self.exact_unique(qu, ru)
            # Nearest first, ties to the lowest query index. Every candidate may have been
            # dropped (all columns crowded by ties, e.g. a collapsed set): none is first.
            order = np.lexsort((qu, exact, ru))
            qu, ru, exact = qu[order], ru[order], exact[order]
            first = np.r_[ru.size > 0, ru[1:] != ru[:-1]][:ru.size]
            best[ru[first]] = exact[first]
            arg[ru[first]] = qu[first]
        for col in np.flatnonzero(ref_fallback):
            self.stats["fallback_rows"] += 1
            scores = self.exact_row(r, col, q)
            arg[col] = int(np.argmin(scores))
            best[col] = scores[arg[col]]
        assert (arg >= 0).all()
        return Neighbours(best[r.inverse][:, None], q.first[arg][r.inverse][:, None],
                          self.e.distance, self.space.code_length)

    def _finish_knn(self, run_val: np.ndarray, run_idx: np.ndarray, qs: int, qe: int,
                    knn_scores: np.ndarray, knn_idx: np.ndarray, knn_occ: np.ndarray) -> None:
        """Exact k nearest (with multiplicities) from the approximate candidates of a block."""
        k = self.k
        n_rows, n_cand = run_val.shape
        rows_u = np.arange(qs, qe)
        weights = self.r.counts[np.maximum(run_idx, 0)].astype(np.int64)
        if self.self_mode:
            weights = weights - (run_idx == rows_u[:, None])
        weights[run_idx < 0] = 0
        cum = np.cumsum(weights, axis=1)
        kth_pos = np.argmax(cum >= k, axis=1)
        approx_kth = run_val[np.arange(n_rows), kth_pos].astype(np.float64)
        tol = self.tol_q[qs:qe]
        threshold = approx_kth + 2 * tol
        last = run_val[:, -1].astype(np.float64)
        all_kept = n_cand >= self._n_candidates_total()
        if self.space.exact_tiles:
            exact = np.where(run_idx >= 0, run_val.astype(np.float64), np.inf)
        else:
            check = (run_val.astype(np.float64) <= threshold[:, None]) & (run_idx >= 0)
            rr, cc = np.nonzero(check)
            exact = np.full((n_rows, n_cand), np.inf)
            exact[rr, cc] = self.exact_unique(rr + qs, run_idx[rr, cc])
        order = np.argsort(exact, axis=1, kind="stable")
        ex_sorted = np.take_along_axis(exact, order, 1)
        idx_sorted = np.take_along_axis(run_idx, order, 1)
        w_sorted = np.take_along_axis(np.where(np.isfinite(exact), weights, 0), order, 1)
        cum_sorted = np.cumsum(w_sorted, axis=1)
        targets = np.arange(1, k + 1)
        pos = np.argmax(cum_sorted[:, None, :] >= targets[None, :, None], axis=2)  # (rows, k)
        enough = cum_sorted[:, -1] >= k
        scores = np.take_along_axis(ex_sorted, pos, 1)
        kth_exact = scores[:, -1] if k else np.zeros(n_rows)
        # Settled when nothing beyond the kept candidates can be closer than the k-th found.
        if all_kept or self.space.exact_tiles:
            settled = enough.copy()
        else:
            settled = enough & ((last > threshold) | (kth_exact == 0) | (kth_exact <= last - tol))
        knn_scores[qs:qe] = scores
        knn_idx[qs:qe] = np.take_along_axis(idx_sorted, pos, 1)
        # Occurrence of the point within its group of identical rows.
        prev = np.where(pos > 0, np.take_along_axis(cum_sorted, np.maximum(pos - 1, 0), 1), 0)
        knn_occ[qs:qe] = targets[None, :] - 1 - prev
        for row in np.flatnonzero(~settled):
            self.stats["fallback_rows"] += 1
            self._fallback_knn_row(row + qs, knn_scores, knn_idx, knn_occ)

    def _n_candidates_total(self) -> int:
        return self.r.n_unique

    def _fallback_knn_row(self, u: int, knn_scores: np.ndarray, knn_idx: np.ndarray,
                          knn_occ: np.ndarray) -> None:
        scores = self.exact_row(self.q, u, self.r)
        weights = self.r.counts.copy()
        if self.self_mode:
            weights[u] -= 1
        scores = np.where(weights > 0, scores, np.inf)
        order = np.argsort(scores, kind="stable")
        cum = np.cumsum(weights[order])
        targets = np.arange(1, self.k + 1)
        pos = np.searchsorted(cum, targets)
        knn_scores[u] = scores[order][pos]
        knn_idx[u] = order[pos]
        knn_occ[u] = targets - 1 - np.where(pos > 0, cum[np.maximum(pos - 1, 0)], 0)

    def _expand_knn(self, scores_u: np.ndarray, idx_u: np.ndarray, occ_u: np.ndarray) -> Neighbours:
        """Unique-level neighbour lists to original rows (group members, self excluded)."""
        q, r = self.q, self.r
        scores = scores_u[q.inverse]
        groups = idx_u[q.inverse]
        occ = occ_u[q.inverse]
        if self.self_mode:
            # Skip the query's own position within its group of identical rows.
            own = groups == q.inverse[:, None]
            occ = occ + (own & (occ >= q.rank_in_group[:, None]))
        indices = r.member(groups, occ)
        return Neighbours(scores, indices, self.e.distance, self.space.code_length)

    def _finish_realism(self, real_arg: np.ndarray) -> np.ndarray:
        q = self.q
        assert self.realism is not None
        valid = real_arg >= 0
        out = np.full(q.n_unique, np.nan)
        if valid.any():
            qu = np.flatnonzero(valid)
            ru = real_arg[valid]
            exact = self.exact_unique(qu, ru)
            rad = self.realism[ru]
            d_rad = scores_to_distances(rad, self.e.distance, self.space.code_length)
            d_ex = scores_to_distances(exact, self.e.distance, self.space.code_length)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[qu] = np.where(d_ex > 0, d_rad / np.where(d_ex > 0, d_ex, 1.0), np.inf)
        return out[q.inverse]


def _merge_topk(s: torch.Tensor, run_val: torch.Tensor, run_idx: torch.Tensor, offset: int,
                k_cand: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a tile's smallest entries per row into the running candidates of those rows."""
    kk = min(k_cand, s.shape[1])
    v, i = torch.topk(s, kk, dim=1, largest=False, sorted=False)
    allv = torch.cat([run_val, v], dim=1)
    alli = torch.cat([run_idx, i + offset], dim=1)
    run_val, pos = torch.topk(allv, k_cand, dim=1, largest=False, sorted=True)
    return run_val, torch.gather(alli, 1, pos)


def knn(query: np.ndarray, reference: np.ndarray | None = None, k: int = 5, *,
        distance: DistanceName = "euclidean", device: str = "cpu", memory_mb: float = 256.0,
        precision: Literal["float32", "float64"] = "float32") -> Neighbours:
    """Exact ``k`` nearest neighbours (see :class:`NeighbourEngine`)."""
    engine = NeighbourEngine(distance, device=device, precision=precision, memory_mb=memory_mb)
    return engine.knn(query, reference, k)
