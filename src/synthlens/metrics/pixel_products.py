"""Inner products of 8-bit pixel features through exact integer matrix products.

The ``pixels`` space holds ``float32(k / 255)`` for 8-bit values ``k``. Every such value is
a multiple of 2⁻³¹, ``J(k) = 2³¹ · float32(k / 255)`` is an integer, and it splits as
``J(k) = q·k + r(k)`` with ``q = 8,421,505`` and ``r(k)`` in [−127, 0], a signed byte. So for
two rows of codes ``K`` and ``L`` (R_K = r(K)):

    2⁶² · x·y = q² · K·L + q · (K·R_L + R_K·L) + R_K·R_L

The first two terms are products of bytes, which ``torch._int_mm`` multiplies into exact
32-bit integers (oneDNN's VNNI kernels: about 8× the float64 rate of BLAS on the same
cores). Column blocks are accumulated as integers held exactly in float64, and the result
is rounded three times at the end. The last term is left out: |r(k)| ≤ ρ·J(k) with
ρ = :data:`MAX_RATIO` (5.9·10⁻⁸, ``float32``'s own rounding), so it is below ρ² ≈ 3.5·10⁻¹⁵
of x·y, and with the final roundings the result is within :data:`RELATIVE_ERROR` · x·y of
the exact product of the float32 features (x·y ≤ ‖x‖‖y‖ for non-negative rows). A float64
BLAS product of 65,536 terms carries up to d·u ≈ 7·10⁻¹², so these are the more exact
numbers, at a third of the cost.

Arrays that are not such a lattice (any value not ``float32(k / 255)``: averaged pixels,
other features, float64 arrays) give ``None`` and the caller computes float64 products.
Integer products are used only where a probe of extreme values comes out exact on this
machine (some oneDNN kernels without VNNI saturate 16-bit intermediates), and every
product is spot-checked against float64 dot products of a few of its entries, its corners
among them (a disagreement warns and falls back to float64 products).
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np

from synthlens.metrics.threads import over_rows

if TYPE_CHECKING:
    import torch

LEVELS = 255
"""Pixel values are ``float32(k) / 255`` for k in 0..255, as the pixel extractor writes."""

_VALUES = np.arange(LEVELS + 1, dtype=np.float32) / np.float32(LEVELS)
_SCALE = 2.0**-62
_Q = 8421505
_J = _VALUES.astype(np.float64) * 2.0**31
assert np.array_equal(_J, np.rint(_J)), "float32(k/255) is a multiple of 2^-31"
_R64 = _J.astype(np.int64) - _Q * np.arange(LEVELS + 1, dtype=np.int64)
assert _R64.min() >= -128 and _R64.max() <= 127
_R = _R64.astype(np.int8)

MAX_RATIO = float(max(abs(_R64[k]) / _J[k] for k in range(1, LEVELS + 1)))
"""Largest |r(k)| / J(k): the relative size of the byte left over by ``q·k``."""

RELATIVE_ERROR = MAX_RATIO**2 + 8 * 2.0**-53
"""Bound on |computed − exact| / (x·y) for non-negative lattice rows x, y (the dropped
R_K·R_L term, at most MAX_RATIO² of it, and the six roundings of the final combination)."""

BLOCK_BYTES = 64 * 2**20
"""Bytes of the byte codes of one block of columns (both arrays)."""

FLUSH_COLUMNS = 1 << 16
"""Columns accumulated in int32 before the running sums move to float64."""

_ROWS_PER_ENCODE = 64  # rows converted at a time (stays in cache)
_SPOT_CHECKS = 16


@functools.cache
def integer_products_exact() -> bool:
    """Whether ``torch._int_mm`` multiplies signed bytes exactly here (probed once with the
    extreme values, which overflow a saturating 16-bit intermediate)."""
    try:
        import torch

        rng = np.random.default_rng(0)
        a = rng.integers(-128, 128, (24, 4160))
        b = rng.integers(-128, 128, (20, 4160))
        a[0], a[1], a[2] = 127, -128, np.tile([127, -128], 2080)
        b[0], b[1], b[2] = 127, -128, np.tile([-128, 127], 2080)
        got = torch._int_mm(torch.from_numpy(a.astype(np.int8)),
                            torch.from_numpy(b.astype(np.int8)).T)
        return bool(np.array_equal(got.numpy(), a @ b.T))
    except Exception:  # no int8 kernel on this build or device
        return False


def is_lattice(x: np.ndarray) -> bool:
    """Whether every value of the float32 array ``x`` is ``float32(k) / 255``."""
    if x.dtype != np.float32 or x.ndim != 2:
        return False
    codes = np.empty((min(_ROWS_PER_ENCODE, x.shape[0]), x.shape[1]), dtype=np.uint8)
    for s in range(0, x.shape[0], _ROWS_PER_ENCODE):
        part = x[s:s + _ROWS_PER_ENCODE]
        if not _codes(part, codes[:part.shape[0]]):
            return False
    return True


def _codes(part: np.ndarray, out: np.ndarray) -> bool:
    """Write the 8-bit codes of ``part`` into ``out``; False when ``part`` is no lattice."""
    scaled = np.multiply(part, np.float32(LEVELS), dtype=np.float32)
    np.rint(scaled, out=scaled)
    with np.errstate(invalid="ignore"):  # NaN or out of range: caught below (thread-local)
        out[...] = scaled.astype(np.uint8)
    back = out.astype(np.float32)
    back /= np.float32(LEVELS)  # IEEE division, as the extractor's: float32(k / 255)
    return bool(np.array_equal(back, part))


def _encode(x: np.ndarray, cols: slice, codes: np.ndarray, remainders: np.ndarray) -> bool:
    """Fill ``codes`` with k − 128 and ``remainders`` with r(k) (int8) for ``x[:, cols]``
    (row ranges split over threads)."""
    return all(over_rows(lambda lo, hi: _encode_rows(x, cols, codes, remainders, lo, hi),
                         x.shape[0], 4 * _ROWS_PER_ENCODE))


def _encode_rows(x: np.ndarray, cols: slice, codes: np.ndarray, remainders: np.ndarray,
                 lo: int, hi: int) -> bool:
    scratch = np.empty((min(_ROWS_PER_ENCODE, hi - lo), cols.stop - cols.start),
                       dtype=np.uint8)
    for s in range(lo, hi, _ROWS_PER_ENCODE):
        part = x[s:min(s + _ROWS_PER_ENCODE, hi), cols]
        u = scratch[:part.shape[0]]
        if not _codes(part, u):
            return False
        np.bitwise_xor(u, np.uint8(128), out=codes[s:s + part.shape[0]].view(np.uint8))
        np.take(_R, u, out=remainders[s:s + part.shape[0]])
    return True


def lattice_gram(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray | None:
    """``x yᵀ`` (``y=None``: ``x xᵀ``) in float64 for pixel-lattice arrays, within
    :data:`RELATIVE_ERROR` of the exact products; ``None`` when either array is not a lattice
    or integer products are not exact on this machine."""
    if not integer_products_exact():
        return None
    same = y is None or y is x
    y = x if y is None else y
    if x.dtype != np.float32 or y.dtype != np.float32 or x.ndim != 2 or y.ndim != 2:
        return None
    import torch

    nx, d = x.shape
    ny = y.shape[0]
    if y.shape[1] != d:
        raise ValueError(f"products of {d}-d and {y.shape[1]}-d rows")
    if nx == 0 or ny == 0 or d == 0:
        return np.zeros((nx, ny))
    rows = nx + (0 if same else ny)
    width = min(d, FLUSH_COLUMNS, max(64, BLOCK_BYTES // (2 * rows) // 64 * 64))
    # Blocks accumulate in int32, exact up to FLUSH_COLUMNS columns (|k'·l'| ≤ 2¹⁴ and
    # |k'·r + r·k'| < 2¹⁵ per column); wider arrays move the running sums to float64, where
    # these integers are exact as well.
    run: list[torch.Tensor] = []  # K'·L' and K'·R_L + R_K·L' (K'·R_K alone when same)
    wide: list[torch.Tensor] = []
    run_columns = 0
    sums = {name: np.zeros(n, dtype=np.int64) for name, n in
            (("kx", nx), ("rx", nx), ("ky", ny), ("ry", ny))}
    for s in range(0, d, width):
        cols = slice(s, min(s + width, d))
        w = cols.stop - cols.start
        a_k, a_r = np.empty((nx, w), np.int8), np.empty((nx, w), np.int8)
        if not _encode(x, cols, a_k, a_r):
            return None
        b_k, b_r = a_k, a_r
        if not same:
            b_k, b_r = np.empty((ny, w), np.int8), np.empty((ny, w), np.int8)
            if not _encode(y, cols, b_k, b_r):
                return None
        if run and run_columns + w > FLUSH_COLUMNS:
            _move(run, wide, same)
            run_columns = 0
        tk_a, tr_a = torch.from_numpy(a_k), torch.from_numpy(a_r)
        tk_b, tr_b = torch.from_numpy(b_k), torch.from_numpy(b_r)
        # Into running sum 0: K'·L'; into 1: K'·R_L and R_K·L'. One 32-bit product alive
        # at a time besides the two running sums.
        terms = [(0, tk_a, tk_b), (1, tk_a, tr_b)] + ([] if same else [(1, tr_a, tk_b)])
        for slot, a, b in terms:
            product = torch._int_mm(a, b.T)
            if len(run) == slot:
                run.append(product)
            else:
                run[slot].add_(product)
            del product
        run_columns += w
        sums["kx"] += a_k.sum(axis=1, dtype=np.int64)
        sums["rx"] += a_r.sum(axis=1, dtype=np.int64)
        if not same:
            sums["ky"] += b_k.sum(axis=1, dtype=np.int64)
            sums["ry"] += b_r.sum(axis=1, dtype=np.int64)
    if same:
        sums["ky"], sums["ry"] = sums["kx"], sums["rx"]
    if wide:
        _move(run, wide, same)
    kl, kr = wide if wide else run
    wide_sums = bool(wide)
    run.clear()
    wide.clear()
    # Undo the shift k' = k − 128:  K·L = K'·L' + 128(ΣK' + ΣL') + 128²·d, an integer
    # that float64 holds exactly; then q²·K·L + q·(K·R_L + R_K·L) with
    # K·R_L + R_K·L = K'·R_L + R_K·L' + 128(ΣR_L + ΣR_K), each step rounded once.
    out = kl.to(torch.float64)  # the float64 sums themselves when they were moved
    del kl
    out.add_(torch.from_numpy(128.0 * sums["kx"])[:, None])
    out.add_(torch.from_numpy(128.0 * sums["ky"] + 128.0 * 128.0 * d)[None, :])
    out.mul_(float(_Q) * _Q)
    out.add_(kr, alpha=float(_Q))
    if same and not wide_sums:  # K'·R_K: the symmetric term is it plus its transpose
        out.add_(kr.T, alpha=float(_Q))
    del kr
    out.add_(torch.from_numpy(128.0 * _Q * sums["rx"])[:, None])
    out.add_(torch.from_numpy(128.0 * _Q * sums["ry"])[None, :])
    out.mul_(_SCALE)
    result = out.numpy()
    if not _spot_check(result, x, y):
        warnings.warn("integer inner products disagree with float64 dot products on this "
                      "machine; computing float64 products instead", RuntimeWarning,
                      stacklevel=2)
        return None
    return result


def _move(run: list[torch.Tensor], wide: list[torch.Tensor], same: bool) -> None:
    """Add the int32 running sums into the float64 ones (created on the first move)."""
    import torch

    kl, kr = run
    if same:  # K'·R_K summed; the symmetric term is it plus its transpose
        kr = kr + kr.T
    if wide:
        wide[0].add_(kl)
        wide[1].add_(kr)
    else:
        wide.extend([kl.to(torch.float64), kr.to(torch.float64)])
    run.clear()


def _spot_check(out: np.ndarray, x: np.ndarray, y: np.ndarray) -> bool:
    """A few entries against float64 dot products (a guard against a kernel that is not
    exact on some shape the probe did not cover): the four corners, where the kernels'
    edge tiles are, and random ones."""
    n, m = out.shape
    rng = np.random.default_rng(n * 7919 + m)
    i = np.r_[0, 0, n - 1, n - 1, rng.integers(0, n, _SPOT_CHECKS - 4)]
    j = np.r_[0, m - 1, 0, m - 1, rng.integers(0, m, _SPOT_CHECKS - 4)]
    a = x[i].astype(np.float64)
    b = y[j].astype(np.float64)
    dots = np.einsum("ij,ij->i", a, b)
    bound = (RELATIVE_ERROR + 2 * (x.shape[1] + 2) * 2.0**-53) * np.abs(a * b).sum(axis=1)
    return bool(np.all(np.abs(out[i, j] - dots) <= bound))
