"""Fixed-point multipliers and requantisation of integer accumulators.

A positive real factor ``r`` is represented at build time as ``(m, shift)`` with
``m`` in ``[2^30, 2^31)`` and ``shift`` in ``[1, 62]``, so that ``r ≈ m · 2^-shift``
(relative error ≤ 2^-31). Applying it to an integer accumulator is

    q = clamp(((int64) acc · m + (1 << (shift − 1))) >> shift)

an arithmetic right shift, i.e. ``round(acc · m · 2^-shift)`` with ties rounded
towards +inf. ``|acc| ≤ 2^31`` and ``m < 2^31`` keep every intermediate inside
int64. The result is clamped to the output dtype: ``[-128, 127]`` for int8,
``[-2^31, 2^31 − 1]`` for int32.

When every shift is at least :data:`HI_WORD_MIN_SHIFT` (33) and the output is
int8, the TE expression skips the 64-bit shift: with ``P = acc · m`` (``|P| <
2^62``) and ``hi = P >> 32`` (``|hi| ≤ 2^30``),

    (P + 2^(shift − 1)) >> shift  ==  (hi + 2^(shift − 33)) >> (shift − 32)

exactly (floor division nests), all in int32 after one 32×32→64 multiply —
the same integers as the twin, a third of the instructions on a Cortex-M.

Every TE builder here has a numpy twin ``*_ref`` that computes the same integers.
"""

from __future__ import annotations

import math

import numpy as np
from tvm import te, tirx

DTYPE_RANGES = {"int8": (-128, 127), "int32": (-(2**31), 2**31 - 1)}
SHIFT_MIN, SHIFT_MAX = 1, 62
HI_WORD_MIN_SHIFT = 33  # from this shift on, requantization needs only the product's high word
INTEGER_TYPES = (int, np.integer)


def _check_real(real: float) -> None:
    if not (math.isfinite(real) and real > 0.0):
        raise ValueError(f"multiplier {real!r} must be finite and > 0")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Return ``(m, shift)`` with ``m`` in ``[2^30, 2^31)``, ``real ≈ m · 2^-shift``.

    ``m = floor(frac · 2^31 + 0.5)`` where ``real = frac · 2^e``, ``frac`` in
    ``[0.5, 1)``. Representable reals lie in about ``[2^-32, 2^30)``; anything
    needing a shift outside ``[1, 62]`` raises ``ValueError``.
    """
    real = float(real)
    _check_real(real)
    frac, exp = math.frexp(real)
    m = math.floor(frac * 2**31 + 0.5)
    if m == 2**31:
        m, exp = 2**30, exp + 1
    shift = 31 - exp
    if not SHIFT_MIN <= shift <= SHIFT_MAX:
        raise ValueError(
            f"multiplier {real!r} needs shift {shift}, outside [{SHIFT_MIN}, {SHIFT_MAX}]"
        )
    return m, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`quantize_multiplier`: int32 arrays ``(m, shift)``, same shape."""
    reals = np.asarray(reals, dtype=np.float64)
    invalid = ~(np.isfinite(reals) & (reals > 0.0))
    if invalid.any():
        _check_real(float(reals[invalid].reshape(-1)[0]))
    frac, exp = np.frexp(reals)
    m = np.floor(frac * 2.0**31 + 0.5).astype(np.int64)
    carry = m == 2**31
    m = np.where(carry, 2**30, m)
    exp = exp.astype(np.int64) + carry
    shift = 31 - exp
    bad = (shift < SHIFT_MIN) | (shift > SHIFT_MAX)
    if bad.any():
        real = float(reals[bad].reshape(-1)[0])
        raise ValueError(
            f"multiplier {real!r} needs shift {int(shift[bad].reshape(-1)[0])}, "
            f"outside [{SHIFT_MIN}, {SHIFT_MAX}]"
        )
    return m.astype(np.int32), shift.astype(np.int32)


def _check_dtype(out_dtype: str) -> tuple[int, int]:
    if out_dtype not in DTYPE_RANGES:
        raise ValueError(f"out_dtype {out_dtype!r} must be one of {sorted(DTYPE_RANGES)}")
    return DTYPE_RANGES[out_dtype]


def _check_shift(shift: int) -> None:
    if not SHIFT_MIN <= shift <= SHIFT_MAX:
        raise ValueError(f"shift {shift} outside [{SHIFT_MIN}, {SHIFT_MAX}]")


def clamp_expr(value: tirx.PrimExpr, out_dtype: str) -> tirx.PrimExpr:
    """Clamp an integer expression to ``out_dtype``'s range and cast to it."""
    lo, hi = _check_dtype(out_dtype)
    dtype = str(value.ty.dtype)
    clamped = tirx.min(tirx.max(value, tirx.const(lo, dtype)), tirx.const(hi, dtype))
    return clamped.astype(out_dtype)


def requantize_expr(
    acc: tirx.PrimExpr,
    m: int | tirx.PrimExpr,
    shift: int | tirx.PrimExpr,
    out_dtype: str = "int8",
    min_shift: int | None = None,
) -> tirx.PrimExpr:
    """Scalar requantisation expression (see the module docstring) for fusing into TE.

    ``min_shift``: a lower bound of a tensor ``shift`` known at build time (an int
    ``shift`` is its own bound); from :data:`HI_WORD_MIN_SHIFT` on, an int32
    accumulator is requantised to int8 through the high word of the product.
    """
    if isinstance(shift, INTEGER_TYPES):
        min_shift = int(shift)
    hi_word = min_shift is not None and min_shift >= HI_WORD_MIN_SHIFT
    dtype = str(acc.dtype) if isinstance(acc, te.TensorSlice) else str(acc.ty.dtype)
    if hi_word and out_dtype == "int8" and dtype == "int32":
        return _requantize_hi_word(acc, m, shift)
    acc64 = acc.astype("int64")
    if isinstance(shift, INTEGER_TYPES):
        _check_shift(int(shift))
        rounding = tirx.const(1 << (int(shift) - 1), "int64")
        shift64 = tirx.const(int(shift), "int64")
    else:
        shift64 = shift.astype("int64")
        rounding = tirx.const(1, "int64") << (shift64 - tirx.const(1, "int64"))
    m64 = tirx.const(int(m), "int64") if isinstance(m, INTEGER_TYPES) else m.astype("int64")
    return clamp_expr((acc64 * m64 + rounding) >> shift64, out_dtype)


def _high_word(acc: tirx.PrimExpr, m: int | tirx.PrimExpr) -> tirx.PrimExpr:
    """The int32 high word of the 64-bit product ``acc · m`` (one SMULL on a Cortex-M)."""
    m64 = tirx.const(int(m), "int64") if isinstance(m, INTEGER_TYPES) else m.astype("int64")
    return ((acc.astype("int64") * m64) >> tirx.const(32, "int64")).astype("int32")


def _requantize_hi_word(
    acc: tirx.PrimExpr, m: int | tirx.PrimExpr, shift: int | tirx.PrimExpr
) -> tirx.PrimExpr:
    """int8 ``(hi + 2^(shift − 33)) >> (shift − 32)``, ``hi`` the product's high word."""
    hi = _high_word(acc, m)
    if isinstance(shift, INTEGER_TYPES):
        _check_shift(int(shift))
        rounding, down = tirx.const(1 << (int(shift) - 33), "int32"), tirx.const(int(shift) - 32)
    else:
        # ``& 31`` changes no valid amount (33 ≤ shift ≤ 62) but bounds it for TVM's
        # analyzer, which otherwise "proves" the result inside int8 and drops the clamp.
        shift32 = shift.astype("int32")
        mask = tirx.const(31, "int32")
        rounding = tirx.const(1, "int32") << ((shift32 - tirx.const(33, "int32")) & mask)
        down = (shift32 - tirx.const(32, "int32")) & mask
    return clamp_expr((hi + rounding) >> down, "int8")


def hi_word_rounding(shift: np.ndarray) -> np.ndarray:
    """Per-channel ``2^(shift − 33)`` (int32) for shifts from :data:`HI_WORD_MIN_SHIFT` on:
    what :func:`requantize_hi_word_expr` stores instead of the shift."""
    shift = np.asarray(shift, np.int64)
    if shift.size and not (HI_WORD_MIN_SHIFT <= shift.min() and shift.max() <= SHIFT_MAX):
        raise ValueError(f"high-word shifts must be in [{HI_WORD_MIN_SHIFT}, {SHIFT_MAX}]")
    return (np.int64(1) << (shift - HI_WORD_MIN_SHIFT)).astype(np.int32)


def requantize_hi_word_expr(acc: tirx.PrimExpr, m: tirx.PrimExpr, rounding: tirx.PrimExpr):
    """int8 ``(hi + r) >> (32 − clz(r))``, ``hi`` the high word of ``acc · m``: the
    high-word requantization with the per-channel rounding term ``r = 2^(shift − 33)``
    (:func:`hi_word_rounding`) stored instead of the shift, whose bit position gives the
    final shift ``shift − 32 = 32 − clz(r)`` (one CLZ instead of computing both from
    the shift). Bit-identical to :func:`requantize_expr` with that shift."""
    hi = _high_word(acc, m)
    # ``& 31`` changes no valid amount (1 ≤ shift − 32 ≤ 30) but keeps TVM's analyzer from
    # "proving" the result inside int8 and dropping the clamp (see _requantize_hi_word)
    down = (tirx.const(32, "int32") - tirx.clz(rounding).astype("int32")) & tirx.const(31, "int32")
    return clamp_expr((hi + rounding) >> down, "int8")


def requantize(
    acc: te.Tensor,
    m: int | te.Tensor,
    shift: int | te.Tensor,
    out_dtype: str = "int8",
    min_shift: int | None = None,
) -> te.Tensor:
    """Requantise an integer tensor; ``m``/``shift`` are ints or int32 ``[C]`` tensors.

    Tensor multipliers apply per output channel, broadcast along the LAST axis.
    ``min_shift``: the smallest value of a tensor ``shift`` (see :func:`requantize_expr`).
    """
    _check_dtype(out_dtype)

    def per_channel(param: int | te.Tensor, idx: tuple) -> int | tirx.PrimExpr:
        return param if isinstance(param, INTEGER_TYPES) else param[idx[-1]]

    return te.compute(
        acc.shape,
        lambda *i: requantize_expr(
            acc[i], per_channel(m, i), per_channel(shift, i), out_dtype, min_shift
        ),
        name="requantize",
    )


def requantize_ref(
    acc: np.ndarray,
    m: int | np.ndarray,
    shift: int | np.ndarray,
    out_dtype: str = "int8",
) -> np.ndarray:
    """Numpy twin of :func:`requantize`, bit-exact."""
    lo, hi = _check_dtype(out_dtype)
    if isinstance(shift, INTEGER_TYPES):
        _check_shift(int(shift))
    m64 = np.asarray(m, dtype=np.int64)
    shift64 = np.asarray(shift, dtype=np.int64)
    q = (np.asarray(acc).astype(np.int64) * m64 + (np.int64(1) << (shift64 - 1))) >> shift64
    return np.clip(q, lo, hi).astype(out_dtype)
