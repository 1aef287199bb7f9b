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
element. The row × V sum is two stages: ``attention_acc`` over the first
:func:`whole_steps` keys (a multiple of :data:`KEY_STEP`, so a schedule may take
keys four at a time) and ``attention_acc_tail`` over the last ``T mod 4``.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np
from tvm import te

from .fixed_point import requantize_expr, requantize_ref
from .softmax import softmax_int_ref, softmax_int_rows

ATTENTION_BLOCK = "attention_int"  # name of the output stage (schedules find the kernel by it)
GEOMETRY_ATTR = "mcuformer.attention_geometry"  # the output stage's AttentionGeometry fields
TOTAL = "attention_acc_total"  # attention_acc + attention_acc_tail, when T is not a multiple of 4
KEY_STEP = 4  # keys per step of the row × V sum (the rest: attention_acc_tail)


def whole_steps(tokens: int) -> int:
    """Keys of the ``attention_acc`` stage: ``tokens`` rounded down to a multiple of
    :data:`KEY_STEP`."""
    return tokens - tokens % KEY_STEP


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
    probs = softmax_int_rows(scores8, score_scale)

    def row_times_values(lo: int, hi: int, name: str) -> te.Tensor:
        r = te.reduce_axis((0, hi - lo), name="j")  # keys lo + r (axes start at 0 for schedules)
        return te.compute(
            (T, H, dh),
            lambda i, h, d: te.sum(
                probs[i, h, lo + r].astype("int32")
                * qkv[g.at(g.v_offset, lo + r, h) + d].astype("int32"),
                axis=r,
            ),
            name=name,
        )

    main = whole_steps(T)
    parts = [row_times_values(0, main, "attention_acc")] if main else []
    if main < T:
        parts.append(row_times_values(main, T, "attention_acc_tail"))

    acc = parts[0]
    if len(parts) > 1:  # a stage of its own: the int32 sum is not widened to int64
        acc = te.compute((T, H, dh), lambda i, h, d: acc[i, h, d] + parts[1][i, h, d], name=TOTAL)
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
