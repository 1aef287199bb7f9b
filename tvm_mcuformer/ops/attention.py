"""Fused integer multi-head attention reading q, k and v in place from the qkv output.

``attention_int(qkv, geometry, score_m, score_shift, score_scale, out_m, out_shift)``
takes the int8 qkv activation as a flat ``[N]`` tensor and an
:class:`AttentionGeometry` saying where head ``h``'s query, key and value of
token ``t`` start: ``offset + t·row_stride + h·head_stride`` (elements
``0..head_dim−1`` follow contiguously). So the head split, the kᵀ transpose and
the head merge are never materialised. Per query row ``i`` and head ``h``:

    s_j  = Σ_c q[i,h,c] · k[j,h,c]                      (int32)
    s8_j = requantize(s_j, score_m, score_shift)       (int8 at ``score_scale``)
    p_j  = softmax_int(s8, score_scale)_j                (int8 at 1/128)
    o_c  = requantize(Σ_j p_j · v[j,h,c], out_m, out_shift)

written straight into the merged layout ``[T, heads, head_dim]`` (the bytes of
``[T, heads·head_dim]``). This is the
unfused integer path (``matmul_int`` → requantize → ``softmax_int`` →
``matmul_int`` → requantize) computed without its copies: bit-identical to it.
Score stages are indexed ``[i, h, j]`` so that a schedule computing them per
query row and head (``schedules.attention``) keeps one row of ``T`` scores,
not ``heads·T²``. Each stage is its own buffer (int32 scores, int8 requantized
scores, uint16 exponents, int8 probabilities), so each is computed once per
element; the probability row is zero-padded to :func:`padded_tokens` columns
and the row × V sum runs over the padding (value rows clamped to the last
token, times 0), so a schedule may take keys four at a time.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
from tvm import te

from .fixed_point import requantize_expr, requantize_ref
from .softmax import softmax_int_ref, softmax_int_rows

ATTENTION_BLOCK = "attention_int"  # name of the output stage (schedules find the kernel by it)
GEOMETRY_ATTR = "mcuformer.attention_geometry"  # the output stage's AttentionGeometry fields
KEY_STEP = 4  # keys per step of the row × V sum: the probability row is padded to a multiple


def padded_tokens(tokens: int) -> int:
    """Columns of a probability row: ``tokens`` rounded up to a multiple of :data:`KEY_STEP`."""
    return -(-tokens // KEY_STEP) * KEY_STEP


@dataclass(frozen=True)
class AttentionGeometry:
    """Where q, k, v of token ``t``, head ``h`` start in the flat qkv tensor."""

    tokens: int
    heads: int
    head_dim: int
    row_stride: int
    head_stride: int
    q_offset: int
    k_offset: int
    v_offset: int

    def at(self, offset: int, t, h):
        return offset + t * self.row_stride + h * self.head_stride

    def gather(self, qkv: np.ndarray, offset: int) -> np.ndarray:
        """``[heads, tokens, head_dim]`` of the part starting at ``offset`` (numpy)."""
        t = np.arange(self.tokens)[None, :, None]
        h = np.arange(self.heads)[:, None, None]
        c = np.arange(self.head_dim)[None, None, :]
        return np.asarray(qkv)[self.at(offset, t, h) + c]


def attention_int(
    qkv: te.Tensor,
    g: AttentionGeometry,
    score_m: int,
    score_shift: int,
    score_scale: float,
    out_m: int,
    out_shift: int,
) -> te.Tensor:
    """Fused int8 attention of flat int8 ``qkv``; int8 ``[tokens, heads, head_dim]`` out."""
    T, H, dh = g.tokens, g.heads, g.head_dim
    c = te.reduce_axis((0, dh), name="c")
    scores = te.compute(
        (T, H, T),
        lambda i, h, j: te.sum(
            qkv[g.at(g.q_offset, i, h) + c].astype("int32")
            * qkv[g.at(g.k_offset, j, h) + c].astype("int32"),
            axis=c,
        ),
        name="attention_scores",
    )
    scores8 = te.compute(
        (T, H, T),
        lambda i, h, j: requantize_expr(scores[i, h, j], score_m, score_shift),
        name="attention_scores_int8",
    )
    padded = padded_tokens(T)
    probs = softmax_int_rows(scores8, score_scale, padded)
    j = te.reduce_axis((0, padded), name="j")

    def value(j, h, d):  # rows past the last token (probability 0) read the last one
        return qkv[g.at(g.v_offset, j if padded == T else te.min(j, T - 1), h) + d]

    acc = te.compute(
        (T, H, dh),
        lambda i, h, d: te.sum(
            probs[i, h, j].astype("int32") * value(j, h, d).astype("int32"), axis=j
        ),
        name="attention_acc",
    )
    return te.compute(
        (T, H, dh),
        lambda i, h, d: requantize_expr(acc[i, h, d], out_m, out_shift),
        name=ATTENTION_BLOCK,
        attrs={GEOMETRY_ATTR: list(astuple(g))},
    )


def attention_int_ref(
    qkv: np.ndarray,
    g: AttentionGeometry,
    score_m: int,
    score_shift: int,
    score_scale: float,
    out_m: int,
    out_shift: int,
) -> np.ndarray:
    """Numpy twin of :func:`attention_int`, bit-exact."""
    q, k, v = (g.gather(qkv, o).astype(np.int32) for o in (g.q_offset, g.k_offset, g.v_offset))
    scores = requantize_ref(q @ k.transpose(0, 2, 1), score_m, score_shift)
    probs = softmax_int_ref(scores, score_scale).astype(np.int32)
    out = requantize_ref(probs @ v, out_m, out_shift)  # [H, T, dh]
    return np.ascontiguousarray(out.transpose(1, 0, 2))
