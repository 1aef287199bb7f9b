"""LayerNorm over the last axis: integer-only (Newton square root) and the float reference.

Integer ``layernorm_int(x, g, b, eps, in_scale, *, iterations=3)`` for int8
``x [..., C]`` (real ``in_scale · x``), per row:

    sum  = Σ x                                         (int32)
    mean = floordiv(32·sum + C, 2C)                    (round(16·sum / C), ties up; Q4)
    y    = 16·x − mean                                 (int32 in [−4080, 4080]; Q4)
    var  = Σ y² // C + E    (int32 Σ for C ≤ 129, else int64; Q8), E = round(eps·256/in_scale²)
    std  = isqrt_newton(max(var, 1), iterations)       (int32 ≥ 1, Q4)
    z    = floordiv(y · 128, std)                      (Q7 normalised value)
    out  = clamp(((z · G[c] + 2^15) >> 16) + B[c], −128, 127)   (int64, or int32 if bounded)

The mean keeps the 4 fraction bits of ``y``: rounding it to an integer first
(``(x − round(sum/C)) · 16``) costs up to 9 output units on low-variance rows.

``isqrt_newton`` starts at ``k0 = 2^ceil(bitlength(v)/2)``, computed as
``1 << #{i in 0..15 : v ≥ 4^i}`` (an unrolled comparison chain, plain C), so
``√v ≤ k0 < 2√v``. Each step is ``k ← min(k, (k + v // k) >> 1)``: from above,
Newton's integer step decreases towards ``floor(√v)`` and never goes below it
(so ``std ≥ 1``); the ``min`` only stops the 1-unit oscillation once converged
(``v = (k+1)² − 1``), making the sequence non-increasing. The relative excess
after 1, 2, 3 steps is ≤ 25%, 2.5%, 3e-4 (``e ← e²/(2(1+e))``); an unconverged
``std`` is too large, so ``z`` shrinks towards 0. Divisions whose operands are
non-negative use C (truncating) division, equal to floor division there.

The row statistics (mean, variance, each Newton step) are per-row stages written
as reductions over a unit axis, so elementwise inlining never recomputes them per
element.

The affine parameters are per-channel int32 tensors computed at build time by
:func:`layernorm_int_params` (``G[c] = round(gamma[c] · 2^16 / (128 · out_scale))``,
``B[c] = round(beta[c] / out_scale)``, numpy round-half-even) and passed to the TE
builder as ``te.Tensor`` inputs (Relax constants), like every per-channel array.

Measured against the exact LayerNorm of the dequantised input, in output units
(C = 16, 64, 192; in_scale 0.02–0.1; gamma in [0.5, 1.5], beta in [−0.5, 0.5],
out_scale 0.04; random and extreme rows): max error 32.3, 13.3, 2.29, 2.21, 2.21,
2.21 for 0–5 iterations; with 3 iterations 1.18 on random full-range rows (the
2.21 is a row spanning only [−3, 3]) and at most 2 units from ``layernorm_float``.
See ``tests/test_integer_ops.py``.

Float ``layernorm_float(x, gamma, beta, eps, in_scale, out_scale)`` (for the
ablation) normalises ``v = in_scale · x`` in float32 (mean from the exact integer
sum, biased variance), applies float32 ``gamma``/``beta`` tensors and quantises with
round-half-up ``floor(o / out_scale + 0.5)`` clamped to ``[−128, 127]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from tvm import te, tirx

from .fixed_point import clamp_expr

Y_FRAC_BITS = 4
Y_MAX = 255 << Y_FRAC_BITS  # |y| = |16·x − mean| ≤ 16·255
Z_ONE = 128
AFFINE_SHIFT = 16
_MAX_EPS_TERM = 2**30
_ISQRT_STEPS = 16


def layernorm_int_params(
    gamma: np.ndarray, beta: np.ndarray, out_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Build-time int32 ``(G, B)`` for :func:`layernorm_int` (formulas in the module doc)."""
    if not (math.isfinite(out_scale) and out_scale > 0.0):
        raise ValueError(f"out_scale {out_scale!r} must be finite and > 0")
    g = np.round(np.asarray(gamma, np.float64) * 2**AFFINE_SHIFT / (Z_ONE * out_scale))
    b = np.round(np.asarray(beta, np.float64) / out_scale)
    for name, arr in (("gamma", g), ("beta", b)):
        if not (np.isfinite(arr).all() and np.abs(arr).max(initial=0) < 2**31):
            raise ValueError(f"layernorm {name} / out_scale {out_scale!r} overflows int32")
    return g.astype(np.int32), b.astype(np.int32)


def _eps_term(eps: float, in_scale: float) -> int:
    if not (math.isfinite(in_scale) and in_scale > 0.0 and math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"need in_scale > 0 and eps >= 0, got {in_scale!r}, {eps!r}")
    term = round(eps * 2 ** (2 * Y_FRAC_BITS) / in_scale**2)
    if term > _MAX_EPS_TERM:
        raise ValueError(f"eps {eps!r} / in_scale {in_scale!r}² overflows the variance")
    return term


def _check_iterations(iterations: int) -> None:
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")


def z_bound(channels: int) -> int:
    """A bound of ``|z| = |floordiv(128·y, std)|`` over every int8 row of ``channels``.

    One term of a sum of squares is at most the sum: ``y² ≤ Σ y² ≤ C·(var + 1)``
    (``var ≥ Σ y² // C``), and ``std ≥ floor(√var) ≥ 1`` (Newton from above never
    goes below it), so ``|z| ≤ 128·√C·√(var + 1)/floor(√var) + 1 ≤ 256·√C + 1``
    (the ratio peaks at 2, at ``var = 3``).
    """
    return 256 * math.isqrt(channels - 1) + 257 if channels > 1 else 257


def affine_fits_int32(channels: int, g_max: int, b_max: int) -> bool:
    """Whether ``z·G + 2^15`` and ``(that >> 16) + B`` fit int32 for every row."""
    scaled = z_bound(channels) * g_max + (1 << (AFFINE_SHIFT - 1))
    return scaled < 2**31 and (scaled >> AFFINE_SHIFT) + 1 + b_max < 2**31


def _per_row(rows: Sequence[tirx.PrimExpr], fn: Callable, name: str) -> te.Tensor:
    """A per-row scalar stage, written as a reduction over a unit axis.

    Elementwise inlining leaves reduction blocks alone, so the statistic is
    computed once per row instead of being recomputed for every element.
    """
    unit = te.reduce_axis((0, 1), name=f"{name}_unit")
    return te.compute(rows, lambda *r: te.sum(fn(*r), axis=unit), name=name)


def _isqrt(v: te.Tensor, iterations: int) -> te.Tensor:
    """Newton integer square root of an int32 per-row tensor ``v ≥ 1`` (see module doc).

    One per-row stage per step: a step reads its predecessor three times, and
    stages keep the TIR linear in ``iterations`` (nested expressions would not be).
    """

    def initial(*r: tirx.PrimExpr) -> tirx.PrimExpr:
        steps = sum(
            (v[r] >= tirx.const(4**i, "int32")).astype("int32") for i in range(_ISQRT_STEPS)
        )
        return tirx.const(1, "int32") << steps

    k = _per_row(v.shape, initial, "ln_isqrt0")
    for j in range(iterations):

        def step(*r: tirx.PrimExpr, prev: te.Tensor = k) -> tirx.PrimExpr:
            return tirx.min(prev[r], (prev[r] + tirx.truncdiv(v[r], prev[r])) >> 1)

        k = _per_row(v.shape, step, f"ln_isqrt{j + 1}")
    return k


def _isqrt_ref(v: np.ndarray, iterations: int) -> np.ndarray:
    exponent = sum((v >= 4**i).astype(np.int32) for i in range(_ISQRT_STEPS))
    k = np.int32(1) << exponent
    for _ in range(iterations):
        k = np.minimum(k, (k + v // k) // 2)
    return k


def layernorm_int(
    x: te.Tensor,
    g: te.Tensor,
    b: te.Tensor,
    eps: float,
    in_scale: float,
    *,
    iterations: int = 3,
    affine_bounds: tuple[int, int] | None = None,
) -> te.Tensor:
    """Integer LayerNorm of int8 ``x [..., C]`` with int32 ``G``, ``B`` tensors ``[C]``.

    ``g``, ``b`` come from :func:`layernorm_int_params` (which takes ``out_scale``);
    ``iterations`` is keyword-only so a float passed in its place fails loudly.
    ``affine_bounds``: ``(max |G|, max |B|)`` when known at build time; if then no
    affine result can overflow int32 (:func:`affine_fits_int32`), it is computed in
    int32 (the same integers; cheaper on a microcontroller), else in int64.
    """
    _check_iterations(iterations)
    eps_q = _eps_term(eps, in_scale)
    c = int(x.shape[-1])
    rows = x.shape[:-1]
    k = te.reduce_axis((0, c), name="k")
    total = te.compute(rows, lambda *r: te.sum(x[(*r, k)].astype("int32"), axis=k), name="ln_sum")
    mean = _per_row(
        rows, lambda *r: tirx.floordiv((total[r] << (Y_FRAC_BITS + 1)) + c, 2 * c), "ln_mean"
    )

    def y_at(idx: tuple) -> tirx.PrimExpr:
        return (x[idx].astype("int32") << Y_FRAC_BITS) - mean[idx[:-1]]

    k2 = te.reduce_axis((0, c), name="k2")
    wide = "int32" if c * Y_MAX**2 < 2**31 else "int64"  # int32 when no row sum can overflow
    ssq = te.compute(
        rows,
        lambda *r: te.sum(y_at((*r, k2)).astype(wide) * y_at((*r, k2)).astype(wide), k2),
        name="ln_ssq",
    )

    def var_at(*r: tirx.PrimExpr) -> tirx.PrimExpr:
        var = tirx.truncdiv(ssq[r], tirx.const(c, wide)).astype("int32") + eps_q
        return tirx.max(var, 1)

    std = _isqrt(_per_row(rows, var_at, "ln_var"), iterations)

    affine = "int32" if affine_bounds and affine_fits_int32(c, *affine_bounds) else "int64"

    def out(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        z = tirx.floordiv(y_at(i) * Z_ONE, std[i[:-1]])
        product = z.astype(affine) * g[i[-1]].astype(affine)
        scaled = (product + tirx.const(1 << (AFFINE_SHIFT - 1), affine)) >> tirx.const(
            AFFINE_SHIFT, affine
        )
        return clamp_expr(scaled + b[i[-1]].astype(affine), "int8")

    return te.compute(x.shape, out, name="layernorm_int")


def layernorm_int_ref(
    x: np.ndarray,
    g: np.ndarray,
    b: np.ndarray,
    eps: float,
    in_scale: float,
    *,
    iterations: int = 3,
) -> np.ndarray:
    """Numpy twin of :func:`layernorm_int`, bit-exact."""
    _check_iterations(iterations)
    eps_q = _eps_term(eps, in_scale)
    x32 = np.asarray(x).astype(np.int32)
    c = x32.shape[-1]
    total = x32.sum(axis=-1, keepdims=True, dtype=np.int32)
    mean = ((total << (Y_FRAC_BITS + 1)) + c) // (2 * c)
    y = (x32 << Y_FRAC_BITS) - mean
    ssq = (y.astype(np.int64) ** 2).sum(axis=-1, keepdims=True)
    var = (ssq // c).astype(np.int32) + np.int32(eps_q)
    std = _isqrt_ref(np.maximum(var, 1), iterations)
    z = (y * Z_ONE) // std
    scaled = (z.astype(np.int64) * np.asarray(g, np.int64) + (1 << (AFFINE_SHIFT - 1))) >> (
        AFFINE_SHIFT
    )
    return np.clip(scaled + np.asarray(b, np.int64), -128, 127).astype(np.int8)


def layernorm_float(
    x: te.Tensor,
    gamma: te.Tensor,
    beta: te.Tensor,
    eps: float,
    in_scale: float,
    out_scale: float,
) -> te.Tensor:
    """Float32 LayerNorm of dequantised int8 ``x [..., C]``, quantised to ``out_scale``."""
    c = int(x.shape[-1])
    rows = x.shape[:-1]
    f32 = "float32"
    k = te.reduce_axis((0, c), name="k")
    total = te.compute(rows, lambda *r: te.sum(x[(*r, k)].astype("int32"), axis=k), name="ln_sum")
    mean = te.compute(
        rows,
        lambda *r: total[r].astype(f32) * tirx.const(in_scale / c, f32),
        name="ln_mean",
    )

    def centred(idx: tuple) -> tirx.PrimExpr:
        return x[idx].astype(f32) * tirx.const(in_scale, f32) - mean[idx[:-1]]

    k2 = te.reduce_axis((0, c), name="k2")
    var = te.compute(
        rows,
        lambda *r: te.sum(centred((*r, k2)) * centred((*r, k2)), axis=k2),
        name="ln_var",
    )
    inv_std = te.compute(
        rows,
        lambda *r: (
            tirx.const(1.0, f32) / te.sqrt(var[r] / tirx.const(c, f32) + tirx.const(eps, f32))
        ),
        name="ln_inv_std",
    )

    def out(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        o = centred(i) * inv_std[i[:-1]] * gamma[i[-1]] + beta[i[-1]]
        q = te.floor(o / tirx.const(out_scale, f32) + tirx.const(0.5, f32))
        return clamp_expr(q, "int8")

    return te.compute(x.shape, out, name="layernorm_float")


def layernorm_float_ref(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    in_scale: float,
    out_scale: float,
) -> np.ndarray:
    """Numpy float32 version of :func:`layernorm_float` (may differ by 1 unit: float sums)."""
    f32 = np.float32
    x32 = np.asarray(x).astype(np.int32)
    c = x32.shape[-1]
    mean = x32.sum(axis=-1, keepdims=True, dtype=np.int32).astype(f32) * f32(in_scale / c)
    centred = x32.astype(f32) * f32(in_scale) - mean
    var = (centred * centred).sum(axis=-1, keepdims=True, dtype=f32)
    inv_std = f32(1.0) / np.sqrt(var / f32(c) + f32(eps))
    o = centred * inv_std * np.asarray(gamma, f32) + np.asarray(beta, f32)
    q = np.floor(o / f32(out_scale) + f32(0.5))
    return np.clip(q, -128, 127).astype(np.int8)
