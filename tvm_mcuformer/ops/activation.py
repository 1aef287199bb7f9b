"""Piecewise-linear activations on int8: clip (ReLU, ReLU6) and the hard-swish product.

* ``clip_int(x, lo, hi)`` → int8 ``min(max(x, lo), hi)`` with integer bounds
  (``None``: unbounded). The output keeps the input's scale: ReLU is
  ``clip_int(x, 0, None)``, ReLU6 at scale ``s`` is ``clip_int(x, 0, round(6/s))``.
* ``hardswish_int(x, offset, lo, hi, in_scale, out_scale)`` → int8
  ``requantize(x · clamp(x + offset, lo, hi))``: the real
  ``v · clamp(v + a, l, h)`` with ``offset = round(a/s)``, ``lo = round(l/s)``,
  ``hi = round(h/s)`` at input scale ``s``; the product (real ``s² ·``) is
  requantized with ``quantize_multiplier(s² / out_scale)``. Hardswish is this
  with ``(a, l, h) = (3, 0, 6)`` followed by a division by 6, which is a free
  rescale (:mod:`tvm_mcuformer.quantize.integerize`). ``|x · clamp| < 2^15``.

Both have bit-exact numpy twins ``*_ref``.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .fixed_point import quantize_multiplier, requantize_expr, requantize_ref


def clip_int(x: te.Tensor, lo: int | None, hi: int | None) -> te.Tensor:
    """int8 clamp of int8 ``x`` to ``[lo, hi]`` (bounds saturated to int8; ``None``: none)."""

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        v = x[i]
        if lo is not None:
            v = tirx.max(v, tirx.const(max(lo, -128), "int8"))
        if hi is not None:
            v = tirx.min(v, tirx.const(min(hi, 127), "int8"))
        return v

    return te.compute(x.shape, body, name="clip_int")


def clip_int_ref(x: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    """Numpy twin of :func:`clip_int`."""
    lo = -128 if lo is None else max(lo, -128)
    hi = 127 if hi is None else min(hi, 127)
    return np.clip(np.asarray(x), lo, hi).astype(np.int8)


def hardswish_int(
    x: te.Tensor, offset: int, lo: int, hi: int, in_scale: float, out_scale: float
) -> te.Tensor:
    """int8 ``x · clamp(x + offset, lo, hi)`` requantized from ``in_scale²`` to ``out_scale``."""
    m, shift = quantize_multiplier(in_scale * in_scale / out_scale)

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        v = x[i].astype("int32")
        gate = tirx.min(tirx.max(v + offset, tirx.const(lo, "int32")), tirx.const(hi, "int32"))
        return requantize_expr(v * gate, m, shift, "int8")

    return te.compute(x.shape, body, name="hardswish_int")


def hardswish_int_ref(
    x: np.ndarray, offset: int, lo: int, hi: int, in_scale: float, out_scale: float
) -> np.ndarray:
    """Numpy twin of :func:`hardswish_int`, bit-exact."""
    m, shift = quantize_multiplier(in_scale * in_scale / out_scale)
    v = np.asarray(x).astype(np.int32)
    return requantize_ref(v * np.clip(v + offset, lo, hi), m, shift, "int8")
