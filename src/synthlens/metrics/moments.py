"""Second moments of feature sets at a cost that scales with min(N, d).

FID needs, for each set of N feature rows in d dimensions, the mean μ, the trace of the
unbiased covariance Σ = XcᵀXc / (N − 1) (Xc: the centred rows) and, between two sets,
tr (Σ₁Σ₂)^½. Built as d×d matrices these cost O(N·d²) time, O(d²) memory and an O(d³)
eigendecomposition: nothing in a 2048-d Inception space, hours and gigabytes in a 16,384-d
pixel space holding a few thousand images. The same numbers follow from the rows:

* tr Σ = ‖Xc‖²_F / (N − 1);
* the non-zero eigenvalues of Σ₁Σ₂ are the squared singular values of F₁ᵀF₂ with
  Fᵢ = Xcᵢᵀ / √(Nᵢ − 1), so tr (Σ₁Σ₂)^½ = ‖X₁c X₂cᵀ‖_* / √((N₁ − 1)(N₂ − 1)), the nuclear
  norm (sum of singular values) of an N₁×N₂ matrix;
* with one covariance Σ₁ kept as a matrix and the other set as rows,
  tr (Σ₁Σ₂)^½ = Σ √λ(Y Yᵀ) / √(N₂ − 1) with Y = X₂c Σ₁^½ (the N₂×N₂ eigenproblem).

A :class:`Gaussian` keeps the d×d covariance when d ≤ max(N, :data:`DIRECT_MAX_DIM`), the
form FID has always used (so values in the usual spaces are unchanged), and otherwise only
its mean and a view of the rows (never a copy), centring blocks of columns in float64 when
a product needs them. :func:`gram` is the one blockwise inner-product routine: FID's cross
products, the Vendi score's similarity matrix and KID's kernels in high dimensions.

In such a space every metric of one set is a function of the inner products of the sets
involved (real training, held-out real, synthetic): the k-NN sweeps (squared distances are
‖a‖² + ‖b‖² − 2a·b), FID (means, traces and the centred cross product follow from the
products' entries: :func:`frechet`), KID (a kernel of the inner products) and the Vendi
score (their cosine normalisation). :class:`InnerProducts` computes each such N×M matrix
once, in float64, and every metric reads it (see :func:`shares_products` for when), so the
O(N·M·d) work is done once per pair of sets instead of once per metric and per class. For
8-bit pixels (``float32(k / 255)``, the ``pixels`` space) those products are exact byte
products (:mod:`synthlens.metrics.pixel_products`), about twice as fast as float64 BLAS.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from synthlens.metrics.pixel_products import lattice_gram

DIRECT_MAX_DIM = 2048
"""Up to this feature dimension every set keeps its d×d covariance (a 32 MB matrix, an
eigendecomposition of a second or two), and KID and the Vendi score compute as they always
did; above it, a set with fewer rows than dimensions is handled through its rows."""

BLOCK_BYTES = 64 * 2**20
"""Bytes of one converted block of feature columns (or rows) in the blockwise products."""

Form = Literal["covariance", "rows"]


def mean_cov(x: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Float64 mean and unbiased covariance, accumulated blockwise (bounded memory)."""
    n, d = x.shape
    mean = np.zeros(d)
    for s in range(0, n, block):
        mean += np.asarray(x[s:s + block], dtype=np.float64).sum(axis=0)
    mean /= n
    cov = np.zeros((d, d))
    for s in range(0, n, block):
        c = np.asarray(x[s:s + block], dtype=np.float64) - mean
        cov += c.T @ c
    cov /= max(n - 1, 1)
    return mean, cov


def eigenvalues(m: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric float64 matrix, ascending (LAPACK ``syevd`` through torch,
    whose MKL build takes half the time of numpy's OpenBLAS at 5,000 × 5,000; the same
    values to about 1e-14 relative). The one eigenvalue routine of FID and the Vendi score."""
    import torch  # lazily: the metric catalogue imports this module without torch

    return torch.linalg.eigvalsh(torch.from_numpy(np.ascontiguousarray(m, np.float64))).numpy()


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance matrix (negative round-off eigenvalues to 0)."""
    cov = (cov + cov.T) / 2
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


PRODUCTS_BYTES = 512 * 2**20
"""Largest inner-product matrix :class:`InnerProducts` keeps (8,192 × 8,192 in float64)."""


def shares_products(d: int, *sizes: int) -> bool:
    """Whether sets of these sizes in ``d`` dimensions share their inner products.

    In a high-dimensional space (``d`` above :data:`DIRECT_MAX_DIM`) where no set has more
    rows than dimensions and each matrix fits :data:`PRODUCTS_BYTES`: there a matrix of
    inner products costs less than the d-dimensional work every metric would repeat.
    """
    largest = max(sizes)
    return high_dimensional(d) and largest <= d and largest * largest * 8 <= PRODUCTS_BYTES


class InnerProducts:
    """Float64 inner products ``X Yᵀ`` of feature arrays, each pair computed once by
    :func:`gram` and shared by every metric (see the module docstring).

    Arrays are recognised by identity (the object keeps them alive, so an identity is never
    reused while it is cached); ``parent`` supplies pairs cached higher up (the real
    training set's own products, shared by every synthetic set). ``products(x, y)`` is the
    matrix of ``x``'s rows by ``y``'s rows (a transposed view where ``(y, x)`` was computed);
    ``products(x)`` is ``x``'s own (symmetric, half the cost).
    """

    def __init__(self, parent: InnerProducts | None = None) -> None:
        self.parent = parent
        self._pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _find(self, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        node: InnerProducts | None = self
        while node is not None:
            hit = node._pairs.get((id(x), id(y)))
            if hit is not None and hit[0] is x and hit[1] is y:
                return hit[2]
            hit = node._pairs.get((id(y), id(x)))
            if hit is not None and hit[0] is y and hit[1] is x:
                return hit[2].T
            node = node.parent
        return None

    def __getstate__(self) -> dict[str, Any]:
        return {"parent": self.parent, "pairs": list(self._pairs.values())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Identities differ in another process: key the pairs by the unpickled arrays (a
        # pickle keeps one object per array, so the owner's arrays are these same objects).
        self.parent = state["parent"]
        self._pairs = {(id(x), id(y)): (x, y, m) for x, y, m in state["pairs"]}

    def __call__(self, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        y = x if y is None else y
        found = self._find(x, y)
        if found is None:
            found = raw_products(x, None if y is x else y)
            self._pairs[(id(x), id(y))] = (x, y, found)
        return found

    def holds(self, x: np.ndarray, y: np.ndarray | None = None) -> bool:
        """Whether the product is already cached (here or in a parent)."""
        return self._find(x, x if y is None else y) is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the matrices cached here (not in the parent)."""
        return sum(m.nbytes for _, _, m in self._pairs.values())


def raw_products(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """``X Yᵀ`` (``y=None``: ``X Xᵀ``) in float64, as :class:`InnerProducts` computes it:
    exact integer products for 8-bit pixel features
    (:func:`~synthlens.metrics.pixel_products.lattice_gram`, about twice as fast and within
    4·10⁻¹⁵ relative), float64 BLAS (:func:`gram`) for any other array."""
    found = lattice_gram(x, y)
    if found is not None:
        return found
    return gram(x) if y is None or y is x else gram(x, y)


def selected(matrix: np.ndarray, rows: np.ndarray | None, cols: np.ndarray | None
             ) -> np.ndarray:
    """``matrix[rows][:, cols]`` (``None``: all), the matrix itself when both are ``None``."""
    if rows is None and cols is None:
        return matrix
    return matrix[np.ix_(np.arange(matrix.shape[0]) if rows is None else rows,
                         np.arange(matrix.shape[1]) if cols is None else cols)]


def double_centred(raw: np.ndarray) -> np.ndarray:
    """``(X − μx)(Y − μy)ᵀ`` from the raw products ``raw = X Yᵀ`` of the rows themselves:
    ``x·y − x·μy − μx·y + μx·μy``, where x·μy is a row mean of ``raw``, μx·y a column mean
    and μx·μy the mean of all entries (float64, a new array; no pass over the columns)."""
    out = np.array(raw, dtype=np.float64, copy=True)
    total = float(out.mean())
    out -= out.mean(axis=1, keepdims=True)
    out -= raw.mean(axis=0, keepdims=True)
    out += total
    return out


def high_dimensional(d: int) -> bool:
    """Whether ``d`` exceeds :data:`DIRECT_MAX_DIM` (metrics then compute through rows)."""
    return d > DIRECT_MAX_DIM


def uses_rows(n: int, d: int) -> bool:
    """Whether a set of ``n`` rows in ``d`` dimensions is summarised by its rows."""
    return high_dimensional(d) and d > n


class Gaussian:
    """Mean and covariance of a feature set, as a d×d matrix or through the rows.

    Build with :meth:`fit` (the form is chosen by :func:`uses_rows`) or
    :meth:`from_moments`. In the rows form the object holds a reference to the caller's
    array and the row indices, so a class or a bootstrap resample costs no copy.
    """

    def __init__(self, mean: np.ndarray | None, n: int, *, cov: np.ndarray | None = None,
                 data: np.ndarray | None = None, rows: np.ndarray | None = None,
                 sqrt: np.ndarray | None = None) -> None:
        if (cov is None) == (data is None):
            raise ValueError("a Gaussian holds either a covariance or the rows")
        if mean is not None:
            self.__dict__["mean"] = mean
        elif cov is not None:
            raise ValueError("a covariance needs its mean")
        self.n = int(n)
        self.cov = cov
        self.data = data
        self.rows = rows
        if sqrt is not None:
            self.__dict__["sqrt"] = sqrt

    @classmethod
    def fit(cls, x: np.ndarray, rows: np.ndarray | None = None) -> Gaussian:
        """Float64 moments of ``x`` (or of ``x[rows]``)."""
        n = x.shape[0] if rows is None else len(rows)
        if not uses_rows(n, x.shape[1]):
            mean, cov = mean_cov(x if rows is None else x[rows])
            return cls(mean, n, cov=cov)
        return cls(None, n, data=x, rows=None if rows is None else np.asarray(rows))

    @classmethod
    def from_moments(cls, mean: np.ndarray, cov: np.ndarray,
                     sqrt: np.ndarray | None = None, n: int = 0) -> Gaussian:
        """A Gaussian given by its mean and covariance (``n`` is informative only)."""
        return cls(np.asarray(mean, np.float64), n, cov=np.asarray(cov, np.float64),
                   sqrt=sqrt)

    @cached_property
    def mean(self) -> np.ndarray:
        """The float64 mean (in the rows form, summed from the rows on first use: FID from
        shared inner products never needs it)."""
        assert self.data is not None
        mean = np.zeros(self.data.shape[1])
        for s, e in _row_blocks(self.n, self.data.shape[1]):
            mean += np.asarray(_take(self.data, self.rows, s, e), dtype=np.float64).sum(axis=0)
        return mean / self.n

    @property
    def form(self) -> Form:
        return "covariance" if self.cov is not None else "rows"

    @property
    def dim(self) -> int:
        return int(self.data.shape[1] if self.data is not None else self.mean.shape[0])

    @cached_property
    def trace(self) -> float:
        """tr Σ: the trace of the matrix, or ‖Xc‖²_F / (N − 1) from the rows."""
        if self.cov is not None:
            return np.trace(self.cov)
        total = 0.0
        for _, block in self.centred_blocks():
            total += float(np.einsum("ij,ij->", block, block))
        return total / max(self.n - 1, 1)

    @cached_property
    def sqrt(self) -> np.ndarray:
        """Σ^½ (covariance form only), computed once per object."""
        if self.cov is None:
            raise ValueError("the rows form keeps no covariance matrix")
        return psd_sqrt(self.cov)

    def centred_blocks(self, width: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """(columns, float64 centred rows restricted to them), block by block of columns."""
        assert self.data is not None
        width = width or _column_width(self.n)
        for s in range(0, self.dim, width):
            cols = slice(s, min(s + width, self.dim))
            block = _columns(self.data, self.rows, cols, np.float64)
            block -= self.mean[cols]
            yield cols, block

    def covariance(self) -> np.ndarray:
        """The d×d covariance (built from the rows in the rows form: for checks only)."""
        if self.cov is not None:
            return self.cov
        assert self.data is not None
        x = self.data if self.rows is None else self.data[self.rows]
        return mean_cov(x)[1]


def trace_sqrt_product(g1: Gaussian, g2: Gaussian,
                       products: InnerProducts | None = None) -> float:
    """``tr (Σ₁Σ₂)^½`` in whichever form costs least (see the module docstring).

    Two sets of rows: the centred cross product, from ``products`` (the raw inner products
    of the two arrays, shared with the other metrics) when given, else by :func:`gram`.

    Two covariances: Σ₁Σ₂ is similar to the symmetric PSD matrix A Σ₂ A with A = Σ₁^½ (kept
    with ``g1``), so the trace is the sum of square roots of its eigenvalues, found stably by
    ``eigvalsh`` (``scipy.linalg.sqrtm`` of the non-symmetric product can return complex
    values and fails on singular covariances).
    """
    if g1.cov is not None and g2.cov is not None:
        a = g1.sqrt
        m = a @ g2.cov @ a
        vals = eigenvalues((m + m.T) / 2)
        return float(np.sqrt(np.clip(vals, 0.0, None)).sum())
    if g1.cov is not None or g2.cov is not None:
        matrix, rows = (g1, g2) if g1.cov is not None else (g2, g1)
        y = np.zeros((rows.n, rows.dim))
        for cols, block in rows.centred_blocks():
            y += block @ matrix.sqrt[cols]
        vals = eigenvalues(y @ y.T)
        return float(np.sqrt(np.clip(vals, 0.0, None)).sum() / np.sqrt(max(rows.n - 1, 1)))
    if products is not None:
        cross = double_centred(selected(products(g1.data, g2.data), g1.rows, g2.rows))
    else:
        cross = gram(g1.data, g2.data, x_rows=g1.rows, y_rows=g2.rows,
                     x_shift=g1.mean, y_shift=g2.mean)
    return _nuclear_norm(cross) / np.sqrt(max(g1.n - 1, 1) * max(g2.n - 1, 1))


def _nuclear_norm(cross: np.ndarray) -> float:
    # Singular values as square roots of the eigenvalues of the smaller of CᵀC and CCᵀ, as
    # the covariance form does with A Σ₂ A (an SVD of C costs about three times more).
    small = cross.T @ cross if cross.shape[1] <= cross.shape[0] else cross @ cross.T
    del cross
    vals = eigenvalues(small)
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet(g1: Gaussian, g2: Gaussian, products: InnerProducts | None = None) -> float:
    """``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½`` in float64 (clipped at 0).

    Two sets of rows with ``products`` (the inner products shared with the other metrics)
    are read from those alone, with no pass over the d columns: with P₁₁, P₂₂, P₁₂ the
    products of the rows, ‖μᵢ‖² and μ₁·μ₂ are the means of their entries,
    tr Σᵢ = (tr Pᵢᵢ − Nᵢ‖μᵢ‖²) / (Nᵢ − 1), and the centred cross product is P₁₂ centred on
    both sides (see :func:`trace_sqrt_product`).
    """
    if products is not None and g1.cov is None and g2.cov is None:
        assert g1.data is not None and g2.data is not None
        p11 = selected(products(g1.data), g1.rows, g1.rows)
        p22 = selected(products(g2.data), g2.rows, g2.rows)
        m11, m22 = float(p11.mean()), float(p22.mean())
        trace1 = (float(np.trace(p11)) - g1.n * m11) / max(g1.n - 1, 1)
        trace2 = (float(np.trace(p22)) - g2.n * m22) / max(g2.n - 1, 1)
        del p11, p22
        p12 = selected(products(g1.data, g2.data), g1.rows, g2.rows)
        m12 = float(p12.mean())
        tsp = _nuclear_norm(double_centred(p12)) / np.sqrt(
            max(g1.n - 1, 1) * max(g2.n - 1, 1))
        value = m11 + m22 - 2 * m12 + trace1 + trace2 - 2 * tsp
        return float(max(value, 0.0))
    diff = g1.mean - g2.mean
    value = diff @ diff + g1.trace + g2.trace - 2 * trace_sqrt_product(g1, g2, products)
    return float(max(value, 0.0))


def gram(x: np.ndarray, y: np.ndarray | None = None, *, x_rows: np.ndarray | None = None,
         y_rows: np.ndarray | None = None, x_shift: np.ndarray | None = None,
         y_shift: np.ndarray | None = None, dtype: type[np.floating] = np.float64
         ) -> np.ndarray:
    """``(X − x_shift)(Y − y_shift)ᵀ`` of row subsets of two arrays, in ``dtype``.

    ``y=None`` means Y = X (``x_rows`` and ``x_shift`` apply to both; the product is then
    symmetric and costs half). Columns are converted (and shifted) a block at a time,
    :data:`BLOCK_BYTES` per block, and BLAS accumulates the products in place, so memory is
    the result plus one or two blocks whatever d.
    """
    same = y is None
    if same:
        y, y_rows, y_shift = x, x_rows, x_shift
    assert y is not None
    if (x_rows is None and y_rows is None and x_shift is None and y_shift is None
            and x.dtype == dtype and y.dtype == dtype):
        return np.asarray(x @ y.T)  # nothing to convert: one product, no copies
    nx = x.shape[0] if x_rows is None else len(x_rows)
    ny = y.shape[0] if y_rows is None else len(y_rows)
    d = x.shape[1]
    out = np.zeros((nx, ny), dtype=dtype, order="F")  # BLAS accumulates into it in place
    gemm, syrk = get_blas_funcs(("gemm", "syrk"), dtype=np.dtype(dtype))
    width = max(1, int(BLOCK_BYTES // (np.dtype(dtype).itemsize * (nx + (0 if same else ny)))))
    for s in range(0, d, width):
        cols = slice(s, min(s + width, d))
        a = _columns(x, x_rows, cols, dtype)
        if x_shift is not None:
            a -= x_shift[cols].astype(dtype)
        # a is C-ordered, so a.T is the Fortran-ordered (columns × rows) array BLAS reads.
        if same:
            out = syrk(1.0, a.T, beta=1.0, c=out, trans=1, overwrite_c=1)
            continue
        b = _columns(y, y_rows, cols, dtype)
        if y_shift is not None:
            b -= y_shift[cols].astype(dtype)
        out = gemm(1.0, a.T, b.T, beta=1.0, c=out, trans_a=1, overwrite_c=1)
    if same:  # syrk fills the upper triangle
        lower = np.tril_indices(nx, -1)
        out[lower] = out.T[lower]
    return out


# ---------------------------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------------------------


def row_block(d: int, rows: int = 4096) -> int:
    """Rows per block of a blockwise pass over d-dimensional rows in float64: ``rows``,
    fewer when that would exceed :data:`BLOCK_BYTES` (never fewer for d ≤ 2048)."""
    return max(1, min(rows, int(BLOCK_BYTES // (8 * max(d, 1)))))


def _column_width(n: int) -> int:
    return max(1, int(BLOCK_BYTES // (8 * max(n, 1))))


def _row_blocks(n: int, d: int) -> Iterator[tuple[int, int]]:
    step = row_block(d)
    for s in range(0, n, step):
        yield s, min(s + step, n)


def _take(x: np.ndarray, rows: np.ndarray | None, start: int, stop: int) -> np.ndarray:
    return x[start:stop] if rows is None else x[rows[start:stop]]


def _columns(x: np.ndarray, rows: np.ndarray | None, cols: slice,
             dtype: type[np.floating]) -> np.ndarray:
    """A contiguous copy of ``x[rows, cols]`` in ``dtype`` (the caller may modify it)."""
    if rows is None:
        return np.array(x[:, cols], dtype=dtype, order="C", copy=True)
    return np.ascontiguousarray(x[rows, cols], dtype=dtype)  # fancy indexing copied already
