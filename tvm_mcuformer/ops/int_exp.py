"""Integer-only exponential for non-positive arguments (shift-based, as I-ViT).

``exp_int(d, scale)`` takes int32 ``d ≤ 0`` standing for the real ``scale · d`` and
returns int32 ``≈ exp(scale · d) · 2^15`` (Q15, so ``exp(0) = 32768`` exactly):

1. ``u = round(−d · scale · log2(e) · 2^16)`` through the build-time fixed-point
   multiplier ``(m, s) = quantize_multiplier(scale · log2(e) · 2^16)``:
   ``u = (max(−max(d, 1 − 2^31), 0) · m + 2^(s−1)) >> s`` in int64 (so ``d > 0`` acts
   as 0; the operand ``−d`` is int32);
2. ``n = u >> 16`` (integer part of ``−scale · d · log2 e``), ``f = u & 0xFFFF``
   (fractional part in Q16);
3. ``p = 2^(−f/65536)`` in Q15 by the integer cubic in Horner form
   ``h = C3; h = ((h·f + 2^15) >> 16) + C2; h = ((h·f + 2^15) >> 16) + C1;
   p = ((h·f + 2^15) >> 16) + 2^15`` with ``(C1, C2, C3) = (−22654, 7550, −1281)``
   (Q15), all in int32 (``|h·f| < 2^31``). It is the minimax-relative fit of ``2^-t``
   on ``[0, 1)`` with ``p(0) = 1`` and ``p(1) = 1/2`` held exact (continuous across
   octaves), coefficients then tuned as integers. Measured over all 65536 values of
   ``f``: ``p`` lies in ``[16383, 32768]`` and its max relative error against
   ``2^15 · 2^(−f/65536)`` is 1.35e-4;
4. ``result = p >> min(n, 31)`` (0 once ``n ≥ 16``; the shift truncates).

Error against ``E = math.exp(scale · d) · 2^15``: ``|result − E| < 1.4e-4 · E + 1``
(polynomial, then the truncating shift). Measured in ``tests/test_integer_ops.py``
(scale 0.003–1, d from 0 to −2^31): max relative error 0.72% where ``E ≥ 128``
(exp ≥ 2^-8), max absolute error 3.7 Q15 units.

The expression holds no ``Let``: a ``Let`` duplicated by elementwise inlining is
ill-formed TIR, so shared subexpressions are left to common-subexpression
elimination (TVM's and the C compiler's).
"""

from __future__ import annotations

import math

import numpy as np
from tvm import te, tirx

from .fixed_point import quantize_multiplier

EXP_FRAC_BITS = 15
EXP_ONE = 1 << EXP_FRAC_BITS
EXP_POLY = (-22654, 7550, -1281)
NEG_MIN = -(2**31 - 1)  # d is clamped here first, so −d fits int32


def exp_int_params(scale: float) -> tuple[int, int]:
    """Build-time ``(m, shift)`` turning ``−d`` into ``u`` (log2 units, Q16)."""
    if not (math.isfinite(scale) and scale > 0.0):
        raise ValueError(f"exp_int scale {scale!r} must be finite and > 0")
    return quantize_multiplier(scale * math.log2(math.e) * 2**16)


def exp_int_expr(d: tirx.PrimExpr, scale: float) -> tirx.PrimExpr:
    """int32 expression ``≈ exp(scale · d) · 2^15`` for an integer expression ``d ≤ 0``."""
    m, shift = exp_int_params(scale)
    c1, c2, c3 = EXP_POLY
    i32, i64 = "int32", "int64"
    # -d in int32 (d ≥ −(2^31 − 1) after the clamp), widened only for the product: one
    # 32 × 32 → 64-bit multiply on a Cortex-M
    neg = tirx.max(tirx.const(0, i32) - tirx.max(d, tirx.const(NEG_MIN, i32)), tirx.const(0, i32))
    rounding = tirx.const(1 << (shift - 1), i64)
    u = (neg.astype(i64) * tirx.const(m, i64) + rounding) >> tirx.const(shift, i64)
    n = tirx.min(u >> tirx.const(16, i64), tirx.const(31, i64)).astype(i32)
    f = (u & tirx.const(0xFFFF, i64)).astype(i32)
    half = tirx.const(1 << 15, i32)
    sixteen = tirx.const(16, i32)
    h = ((tirx.const(c3, i32) * f + half) >> sixteen) + tirx.const(c2, i32)
    h = ((h * f + half) >> sixteen) + tirx.const(c1, i32)
    p = ((h * f + half) >> sixteen) + tirx.const(EXP_ONE, i32)
    return p >> n


def exp_int(d: te.Tensor, scale: float) -> te.Tensor:
    """Elementwise :func:`exp_int_expr` over an int32 tensor; int32 Q15 result."""
    return te.compute(d.shape, lambda *i: exp_int_expr(d[i], scale), name="exp_int")


def exp_int_ref(d: np.ndarray, scale: float) -> np.ndarray:
    """Numpy twin of :func:`exp_int`, bit-exact."""
    m, shift = exp_int_params(scale)
    c1, c2, c3 = EXP_POLY
    neg = np.maximum(-np.maximum(np.asarray(d).astype(np.int64), NEG_MIN), 0)
    u = (neg * m + (1 << (shift - 1))) >> shift
    n = np.minimum(u >> 16, 31)
    f = u & 0xFFFF
    h = ((c3 * f + (1 << 15)) >> 16) + c2
    h = ((h * f + (1 << 15)) >> 16) + c1
    p = ((h * f + (1 << 15)) >> 16) + EXP_ONE
    return (p >> n).astype(np.int32)
