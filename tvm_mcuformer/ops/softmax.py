"""Softmax over the last axis: integer-only (Shiftmax-style) and the float reference.

Integer ``softmax_int(x, in_scale)`` for int8 ``x`` (real ``in_scale · x``), per row:

    d   = x − max(x)                      (int32, in [−255, 0])
    e   = exp_int(d, in_scale)            (Q15; the row maximum gives exactly 2^15)
    S   = Σ e                             (int32; ≥ 2^15, fits for N < 65536)
    out = min(127, (e · 128 + S // 2) // S)   (operands ≥ 0: C division is floor division)

so ``out`` is int8 with the fixed scale ``SOFTMAX_OUT_SCALE = 1/128`` (values in
``[0, 127]``; 1.0 saturates at 127). :func:`softmax_int` computes ``exp_int`` twice
(in the sum and in the output) rather than materialising an ``[..., N]`` buffer:
only the per-row ``max`` and ``S`` are stored. :func:`softmax_int_rows` is the same
function for kernels computed one row at a time (fused attention): it stores ``e``
once per element (a ``uint16`` stage: ``e ≤ 2^15``).

Measured against the true softmax of the dequantised input (in_scale 0.02–0.1,
N = 1, 16, 49, 197, random and extreme rows): within 0.5 output units of
``min(127, 128 · softmax)``, i.e. correctly rounded there, and identical to
``softmax_float`` on those inputs; see ``tests/test_integer_ops.py``.

Float ``softmax_float(x, in_scale)`` (for the ablation) dequantises to float32,
takes the float softmax ``exp(in_scale·(x − max)) / Σ``, and quantises to scale
1/128 with round-half-up ``floor(p · 128 + 0.5)`` clamped to ``[0, 127]``.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .int_exp import exp_int_expr, exp_int_ref

SOFTMAX_OUT_SCALE = 1.0 / 128
_OUT_ONE = 128


def _row_max(x: te.Tensor) -> te.Tensor:
    k = te.reduce_axis((0, x.shape[-1]), name="k")
    return te.compute(
        x.shape[:-1], lambda *r: te.max(x[(*r, k)].astype("int32"), axis=k), name="row_max"
    )


def _normalize(e: tirx.PrimExpr, s: tirx.PrimExpr) -> tirx.PrimExpr:
    """``min(127, (e · 128 + S // 2) // S)`` as int8 (operands ≥ 0, S ≥ 2^15: C division
    is floor division)."""
    return tirx.min(tirx.truncdiv(e * _OUT_ONE + (s >> 1), s), 127).astype("int8")


def softmax_int(x: te.Tensor, in_scale: float) -> te.Tensor:
    """Integer softmax of int8 ``x [..., N]``; int8 output at scale 1/128."""
    mx = _row_max(x)

    def exp_at(idx: tuple) -> tirx.PrimExpr:
        return exp_int_expr(x[idx].astype("int32") - mx[idx[:-1]], in_scale)

    k = te.reduce_axis((0, x.shape[-1]), name="k")
    total = te.compute(x.shape[:-1], lambda *r: te.sum(exp_at((*r, k)), axis=k), name="exp_sum")
    return te.compute(x.shape, lambda *i: _normalize(exp_at(i), total[i[:-1]]), name="softmax_int")


def softmax_int_rows(x: te.Tensor, in_scale: float) -> te.Tensor:
    """:func:`softmax_int` of int8 ``x [..., N]`` with ``e`` stored once (stage
    ``softmax_exp``, uint16)."""
    n = int(x.shape[-1])
    mx = _row_max(x)
    e = te.compute(
        x.shape,
        lambda *i: exp_int_expr(x[i].astype("int32") - mx[i[:-1]], in_scale).astype("uint16"),
        name="softmax_exp",
    )
    k = te.reduce_axis((0, n), name="k")
    total = te.compute(
        x.shape[:-1], lambda *r: te.sum(e[(*r, k)].astype("int32"), axis=k), name="exp_sum"
    )
    return te.compute(
        x.shape, lambda *i: _normalize(e[i].astype("int32"), total[i[:-1]]), name="softmax_int"
    )


def softmax_int_ref(x: np.ndarray, in_scale: float) -> np.ndarray:
    """Numpy twin of :func:`softmax_int`, bit-exact."""
    x32 = np.asarray(x).astype(np.int32)
    e = exp_int_ref(x32 - x32.max(axis=-1, keepdims=True), in_scale)
    s = e.sum(axis=-1, keepdims=True, dtype=np.int32)
    return np.minimum((e * _OUT_ONE + s // 2) // s, 127).astype(np.int8)


def softmax_float(x: te.Tensor, in_scale: float) -> te.Tensor:
    """Float32 softmax of dequantised int8 ``x [..., N]``, quantised to scale 1/128."""
    mx = _row_max(x)

    def exp_at(idx: tuple) -> tirx.PrimExpr:
        d = (x[idx].astype("int32") - mx[idx[:-1]]).astype("float32")
        return te.exp(d * tirx.const(in_scale, "float32"))

    k = te.reduce_axis((0, x.shape[-1]), name="k")
    total = te.compute(x.shape[:-1], lambda *r: te.sum(exp_at((*r, k)), axis=k), name="exp_sum")

    def out(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        p = exp_at(i) / total[i[:-1]]
        q = te.floor(p * tirx.const(_OUT_ONE, "float32") + tirx.const(0.5, "float32"))
        return tirx.min(q, tirx.const(127.0, "float32")).astype("int8")

    return te.compute(x.shape, out, name="softmax_float")


def softmax_float_ref(x: np.ndarray, in_scale: float) -> np.ndarray:
    """Numpy float32 version of :func:`softmax_float` (may differ by 1 unit: float sums)."""
    x32 = np.asarray(x).astype(np.int32)
    d = (x32 - x32.max(axis=-1, keepdims=True)).astype(np.float32)
    e = np.exp(d * np.float32(in_scale))
    p = e / e.sum(axis=-1, keepdims=True, dtype=np.float32)
    q = np.floor(p * np.float32(_OUT_ONE) + np.float32(0.5))
    return np.minimum(q, np.float32(127)).astype(np.int8)
