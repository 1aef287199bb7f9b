"""Find multi-head attention in the integer rewrite by following element indices.

The integerizer (:mod:`.integerize`) emits layout ops (reshape, permute,
strided slice, squeeze, broadcast) as it meets them, and also records, for
each int8 value, which element of a *root* tensor every element of it is
(:func:`apply_layout` on numpy index arrays). Whether ``q``, ``kᵀ`` and ``v``
are strided views of one qkv output then does not depend on how the model
wrote the split (``qkv[0]`` as ``take``, ``unbind``, slices of the last axis, ...):
:func:`head_geometry` reads the strides off the index arrays and checks them
element by element. The integerizer then emits one fused
:func:`~tvm_mcuformer.ops.attention.attention_int`, and the head-split and
head-merge copies it no longer needs are removed as dead code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import relax
from tvm.ir.expr import GenericConst

from ..ops.attention import AttentionGeometry


def _ints(expr) -> list[int]:
    if isinstance(expr, relax.ShapeExpr):
        return [int(v) for v in expr.values]
    return [int(getattr(f, "value", f)) for f in expr.fields]


def apply_layout(call: relax.Call, index: np.ndarray) -> np.ndarray:
    """The index array of ``call``'s result, given that of its first argument.

    Raises ``ValueError`` for a layout op it does not model (the caller then
    stops tracking, which only forgoes fusion).
    """
    name = call.op.name
    if name == "relax.reshape":
        return index.reshape(_ints(call.args[1]))
    if name == "relax.permute_dims":
        axes = call.attrs.axes
        return np.transpose(index, None if axes is None else [int(a) for a in axes])
    if name == "relax.strided_slice":
        axes, begin, end = (_ints(a) for a in call.args[1:4])
        strides = _ints(call.args[4]) if len(call.args) > 4 else [1] * len(axes)
        sl = [slice(None)] * index.ndim
        for a, b, e, s in zip(axes, begin, end, strides, strict=True):
            sl[a] = slice(b, e, s)
        return index[tuple(sl)]
    if name == "relax.squeeze":
        axes = call.attrs.axis
        return np.squeeze(index, None if axes is None else tuple(int(a) for a in axes))
    if name == "relax.expand_dims":
        return np.expand_dims(index, tuple(int(a) for a in call.attrs.axis))
    if name == "relax.broadcast_to":
        return np.broadcast_to(index, _ints(call.args[1]))
    if name == "relax.flatten":
        return index.reshape(-1)
    if name == "relax.take" and isinstance(call.args[1], GenericConst):
        axis = call.attrs.axis
        return np.take(index, call.args[1].value.numpy(), None if axis is None else int(axis))
    raise ValueError(f"{name} is not modelled")


def _heads(index: np.ndarray) -> np.ndarray | None:
    """``index`` as ``[heads, rows, cols]`` (leading axes of size 1 dropped), or ``None``."""
    if index.ndim == 2:
        return index[None]
    if index.ndim < 2 or int(np.prod(index.shape[:-3])) != 1:
        return None
    return index.reshape(index.shape[-3:])


def _strides(part: np.ndarray) -> tuple[int, int, int] | None:
    """``(offset, row_stride, head_stride)`` if ``part[h, t, c] = offset + t·rs + h·hs + c``."""
    h, t, c = part.shape
    off = int(part[0, 0, 0])
    rs = int(part[0, 1, 0]) - off if t > 1 else 0
    hs = int(part[1, 0, 0]) - off if h > 1 else 0
    expected = off + np.arange(t)[None, :, None] * rs + np.arange(h)[:, None, None] * hs
    if not np.array_equal(part, expected + np.arange(c)[None, None, :]):
        return None
    return off, rs, hs


@dataclass(frozen=True)
class Scores:
    """``q·kᵀ`` of heads read in place from ``qkv`` (the root expression)."""

    qkv: relax.Expr
    qkv_size: int
    tokens: int
    heads: int
    head_dim: int
    row_stride: int
    head_stride: int
    q_offset: int
    k_offset: int

    def geometry(self, v_offset: int) -> AttentionGeometry:
        return AttentionGeometry(
            self.tokens,
            self.heads,
            self.head_dim,
            self.row_stride,
            self.head_stride,
            self.q_offset,
            self.k_offset,
            v_offset,
        )


def match_scores(qkv, size: int, q_index: np.ndarray, kt_index: np.ndarray) -> Scores | None:
    """:class:`Scores` if ``q [.., H, T, dh]`` and ``kᵀ [.., H, dh, T]`` index one qkv alike."""
    q, kt = _heads(q_index), _heads(kt_index)
    if q is None or kt is None or q.shape != kt.transpose(0, 2, 1).shape:
        return None
    sq, sk = _strides(q), _strides(kt.transpose(0, 2, 1))
    if sq is None or sk is None or sq[1:] != sk[1:]:
        return None
    heads, tokens, dh = q.shape
    return Scores(qkv, size, tokens, heads, dh, sq[1], sq[2], sq[0], sk[0])


def match_values(scores: Scores, v_index: np.ndarray) -> int | None:
    """The value offset if ``v [.., H, T, dh]`` is read from the qkv like q and k, else ``None``."""
    v = _heads(v_index)
    if v is None or v.shape != (scores.heads, scores.tokens, scores.head_dim):
        return None
    sv = _strides(v)
    if sv is None or sv[1:] != (scores.row_stride, scores.head_stride):
        return None
    return sv[0]


def is_identity(index: np.ndarray, tail: tuple[int, ...]) -> bool:
    """``index`` is its root in order, shaped ``[1, .., 1, *tail]``."""
    heads = _heads(index) if len(tail) == 3 else None
    return (
        heads is not None
        and heads.shape == tail
        and np.array_equal(index.ravel(), np.arange(index.size))
    )


def merged_order(heads: int, tokens: int, head_dim: int) -> np.ndarray:
    """Flat index into ``[heads, tokens, head_dim]`` of the merged ``[tokens, heads·head_dim]``."""
    return np.arange(heads * tokens * head_dim).reshape(heads, tokens, head_dim).transpose(1, 0, 2)
