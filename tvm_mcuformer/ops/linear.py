"""Integer linear algebra: int8 matmul into int32, residual add, mean; a conv reference.

* ``matmul_int(a [..., M, K], b [..., K, N])`` → int32 ``Σ_k a·b``; batch dims
  broadcast like ``relax.matmul`` / numpy (a 2-D ``b`` is the weight case).
* ``dense_int(a [..., M, K], w [N, K])`` → int32 ``Σ_k a·w``: the constant-weight
  matmul with the weight stored as the kernel reads it (row ``n`` = output channel
  ``n``'s K weights, contiguous), ``matmul_int(a, w.T)`` bit for bit.
* ``conv2d_int_ref(x NCHW, w OIHW, stride, padding)``: the numpy reference of an int8
  ``relax.nn.conv2d`` into int32 (groups = 1), which TVM legalizes (patch embeddings
  are decomposed instead: :mod:`tvm_mcuformer.relax_passes.patch_embed`).
* ``add_int(a, b, a_scale, b_scale, out_scale)`` → int8
  ``clamp((a·Ma + b·Mb + 2^15) >> 16)`` in int64, ``Ma = round(a_scale/out_scale · 2^16)``
  (likewise ``Mb``; numpy round-half-even at build time, each < 2^31), numpy broadcasting.
* ``mean_int(x, axis, in_scale, out_scale)`` → int8 (axis dropped): int32 sum over
  ``axis``, then :func:`requantize` with ``quantize_multiplier(in_scale / (N · out_scale))``.

int32 accumulators wrap on overflow in numpy but overflow is undefined in C: callers
keep ``K · 2^14`` (plus the bias) below 2^31. Shapes must be static.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tvm import te, tirx

from .fixed_point import clamp_expr, quantize_multiplier, requantize, requantize_ref

ADD_SHIFT = 16


def _static_shape(t: te.Tensor) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in t.shape)
    except TypeError:
        raise ValueError(f"tensor {t.name} has a symbolic shape {t.shape}") from None


def _broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def _broadcast_index(idx: Sequence[tirx.PrimExpr], shape: Sequence[int]) -> tuple:
    """Index into ``shape`` for output index ``idx`` under right-aligned numpy broadcasting."""
    tail = idx[len(idx) - len(shape) :]
    return tuple(0 if dim == 1 else i for i, dim in zip(tail, shape, strict=True))


def matmul_int(a: te.Tensor, b: te.Tensor) -> te.Tensor:
    """int32 matmul of int8 ``a [..., M, K]`` and ``b [..., K, N]``, broadcast batch dims."""
    a_shape, b_shape = _static_shape(a), _static_shape(b)
    if len(a_shape) < 2 or len(b_shape) < 2 or a_shape[-1] != b_shape[-2]:
        raise ValueError(f"matmul_int shapes {a_shape} x {b_shape} do not match")
    batch = _broadcast_shape(a_shape[:-2], b_shape[:-2])
    k = te.reduce_axis((0, a_shape[-1]), name="k")

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        ai = (*_broadcast_index(i[:-2], a_shape[:-2]), i[-2], k)
        bi = (*_broadcast_index(i[:-2], b_shape[:-2]), k, i[-1])
        return te.sum(a[ai].astype("int32") * b[bi].astype("int32"), axis=k)

    return te.compute((*batch, a_shape[-2], b_shape[-1]), body, name="matmul_int")


def matmul_int_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`matmul_int`."""
    return np.matmul(np.asarray(a).astype(np.int32), np.asarray(b).astype(np.int32))


def dense_int(a: te.Tensor, w: te.Tensor) -> te.Tensor:
    """int32 ``a [..., M, K] @ w [N, K]ᵀ`` of int8 operands (a constant weight, N×K rows)."""
    a_shape, w_shape = _static_shape(a), _static_shape(w)
    if len(a_shape) < 2 or len(w_shape) != 2 or a_shape[-1] != w_shape[1]:
        raise ValueError(f"dense_int shapes {a_shape} x {w_shape} do not match")
    k = te.reduce_axis((0, a_shape[-1]), name="k")

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        return te.sum(a[(*i[:-1], k)].astype("int32") * w[i[-1], k].astype("int32"), axis=k)

    return te.compute((*a_shape[:-1], w_shape[0]), body, name="dense_int")


def dense_int_ref(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`dense_int`."""
    return matmul_int_ref(a, np.asarray(w).T)


def _conv_geometry(
    x_shape: Sequence[int], w_shape: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Return ``(top, left, bottom, right)`` padding and the NCHW output shape."""
    if len(padding) == 2:
        pads = (padding[0], padding[1], padding[0], padding[1])
    elif len(padding) == 4:
        pads = tuple(padding)
    else:
        raise ValueError(f"padding {padding} must be (ph, pw) or (top, left, bottom, right)")
    n, c, h, w = x_shape
    o, ci, kh, kw = w_shape
    if ci != c or len(stride) != 2:
        raise ValueError(f"conv2d_int: x {x_shape}, w {w_shape}, stride {stride} do not match")
    oh = (h + pads[0] + pads[2] - kh) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - kw) // stride[1] + 1
    return pads, (n, o, oh, ow)


def conv2d_int_ref(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, ...]
) -> np.ndarray:
    """int32 result of an int8 NCHW/OIHW conv2d (groups 1, zero padding), in numpy."""
    pads, (_, _, oh, ow) = _conv_geometry(x.shape, w.shape, stride, padding)
    xp = np.pad(
        np.asarray(x).astype(np.int32), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3]))
    )
    w32 = np.asarray(w).astype(np.int32)
    sh, sw = stride
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), np.int32)
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            patch = xp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            out += np.einsum("nchw,oc->nohw", patch, w32[:, :, i, j])
    return out


def add_multipliers(a_scale: float, b_scale: float, out_scale: float) -> tuple[int, int]:
    """Build-time ``(Ma, Mb)``: ``round(scale / out_scale · 2^16)``, each in ``[0, 2^31)``."""
    mults = []
    for scale in (a_scale, b_scale):
        ratio = scale / out_scale
        if not (math.isfinite(ratio) and 0.0 < ratio < 2 ** (31 - ADD_SHIFT)):
            raise ValueError(f"add_int scale ratio {scale!r} / {out_scale!r} out of range")
        mults.append(int(np.round(ratio * 2**ADD_SHIFT)))
    return mults[0], mults[1]


def add_int(
    a: te.Tensor, b: te.Tensor, a_scale: float, b_scale: float, out_scale: float
) -> te.Tensor:
    """Requantising int8 residual add, numpy broadcasting; int8 output at ``out_scale``."""
    ma, mb = add_multipliers(a_scale, b_scale, out_scale)
    a_shape, b_shape = _static_shape(a), _static_shape(b)
    shape = _broadcast_shape(a_shape, b_shape)

    # int32 when no sum can overflow it (|a|, |b| ≤ 128): the same integers, cheaper on an MCU
    wide = "int32" if 128 * (ma + mb) + (1 << (ADD_SHIFT - 1)) < 2**31 else "int64"

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        av = a[_broadcast_index(i, a_shape)].astype(wide)
        bv = b[_broadcast_index(i, b_shape)].astype(wide)
        acc = av * tirx.const(ma, wide) + bv * tirx.const(mb, wide)
        acc = acc + tirx.const(1 << (ADD_SHIFT - 1), wide)
        return clamp_expr(acc >> tirx.const(ADD_SHIFT, wide), "int8")

    return te.compute(shape, body, name="add_int")


def add_int_ref(
    a: np.ndarray, b: np.ndarray, a_scale: float, b_scale: float, out_scale: float
) -> np.ndarray:
    """Numpy twin of :func:`add_int`, bit-exact."""
    ma, mb = add_multipliers(a_scale, b_scale, out_scale)
    acc = np.asarray(a).astype(np.int64) * ma + np.asarray(b).astype(np.int64) * mb
    return np.clip((acc + (1 << (ADD_SHIFT - 1))) >> ADD_SHIFT, -128, 127).astype(np.int8)


def _mean_multiplier(count: int, in_scale: float, out_scale: float) -> tuple[int, int]:
    return quantize_multiplier(in_scale / (count * out_scale))


def mean_int(x: te.Tensor, axis: int, in_scale: float, out_scale: float) -> te.Tensor:
    """int8 mean of int8 ``x`` over ``axis`` (dropped), requantised to ``out_scale``."""
    shape = _static_shape(x)
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"mean_int axis {axis} out of range for shape {shape}")
    axis = axis % len(shape)
    count = shape[axis]
    k = te.reduce_axis((0, count), name="k")

    def body(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        return te.sum(x[(*i[:axis], k, *i[axis:])].astype("int32"), axis=k)

    total = te.compute(shape[:axis] + shape[axis + 1 :], body, name="mean_sum")
    m, shift = _mean_multiplier(count, in_scale, out_scale)
    return requantize(total, m, shift, "int8")


def mean_int_ref(x: np.ndarray, axis: int, in_scale: float, out_scale: float) -> np.ndarray:
    """Numpy twin of :func:`mean_int`, bit-exact."""
    x = np.asarray(x)
    m, shift = _mean_multiplier(x.shape[axis], in_scale, out_scale)
    return requantize_ref(x.astype(np.int32).sum(axis=axis, dtype=np.int32), m, shift, "int8")
