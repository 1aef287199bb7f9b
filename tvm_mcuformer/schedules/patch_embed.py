"""Patch-embedding decomposition: a kernel = stride = P conv as field×field sub-convolutions.

MCUFormer splits the large receptive field of the patch embedding into small
sub-convolutions whose int32 partial sums accumulate into one small buffer.
:func:`patch_embed_kernel` builds that kernel as a TIR PrimFunc:

* input int8 ``x [N, C, H, W]``, weight int8 ``w [O, C, P, P]``, output int32
  ``y [N, O, H/P, W/P]``; no padding, dilation 1, groups 1;
* one output pixel at a time: ``O`` int32 partial sums are zeroed, then each
  sub-field (origins ``0, field, 2·field, …`` on both axes; sizes
  ``min(field, P − origin)``, so P = 7, field 4 gives 4 and 3) adds its
  sub-convolution into them, then the ``O`` sums are written to ``y``;
* the partial-sum buffer is the kernel's only allocation: through
  :func:`tvm_mcuformer.lowering.kernels.lower_kernels` it becomes one workspace
  of ``O`` int32 (``O · 4`` bytes).

:func:`patch_embed_dot_kernel` is the same decomposition on the dual-MAC
micro-kernels: each sub-field's input bytes are gathered into one short row and
the weight is stored sub-field major (:func:`field_major_weight`, laid out at
compile time), so each pair of output channels takes the row's dot product
with word loads.

Integer addition is associative, so the result equals ``ops.conv2d_int`` /
``ops.conv2d_int_ref`` with stride P and padding 0 bit for bit. Buffers have
int64 shapes and the function the op pattern of a conv, as Relax's legalized
kernels do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tvm import tirx
from tvm.script import tirx as T

from .dense import K_STEPS, TILES, micro_kernel_name

# Relax's kOutEWiseFusable, the pattern of the legalized conv2d this kernel replaces:
# FuseOps groups the bias add and requantization after it exactly as before.
OUT_ELEMWISE_FUSABLE = 4


def _i64(*values: int) -> tuple[tirx.IntImm, ...]:
    return tuple(tirx.IntImm("int64", int(v)) for v in values)


def patch_embed_geometry(
    x_shape: Sequence[int], w_shape: Sequence[int], patch: int, field: int
) -> tuple[int, int]:
    """Check the shapes and return the output grid ``(H/P, W/P)``; ValueError if they do not fit."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"patch embedding needs 4-D x and w, got {x_shape} and {w_shape}")
    _, c, h, w = (int(d) for d in x_shape)
    _, ci, kh, kw = (int(d) for d in w_shape)
    if patch < 1 or field < 1:
        raise ValueError(f"patch {patch} and field {field} must be positive")
    if ci != c or (kh, kw) != (patch, patch):
        raise ValueError(f"weight {tuple(w_shape)} is not [O, {c}, {patch}, {patch}]")
    if h % patch or w % patch:
        raise ValueError(f"input {h}x{w} is not a whole number of {patch}x{patch} patches")
    return h // patch, w // patch


def patch_embed_kernel(
    x_shape: Sequence[int], w_shape: Sequence[int], patch: int, field: int = 4
) -> tirx.PrimFunc:
    """The decomposed patch-embedding PrimFunc ``(x int8, w int8, y int32)``.

    ``patch`` is P (kernel = stride = P); ``field`` the side of a sub-convolution.
    Raises ValueError when H or W is not a multiple of P or the weight is not
    ``[O, C, P, P]``.
    """
    oh, ow = patch_embed_geometry(x_shape, w_shape, patch, field)
    n, c, _, _ = (int(d) for d in x_shape)
    o = int(w_shape[0])
    grid = -(-patch // field)  # sub-fields per axis, the last one possibly smaller
    xs, ws, ys = _i64(*x_shape), _i64(*w_shape), _i64(n, o, oh, ow)
    # TVMScript constants (int64 like the buffer shapes); K = output channels.
    N, C, K, OH, OW, P, F, G = _i64(n, c, o, oh, ow, patch, field, grid)  # noqa: N806

    @T.prim_func(private=True, s_tir=True)
    def patch_embed(x: T.Buffer(xs, "int8"), w: T.Buffer(ws, "int8"), y: T.Buffer(ys, "int32")):
        T.func_attr({"tirx.noalias": True, "op_pattern": OUT_ELEMWISE_FUSABLE})
        for pn, pi, pj in T.grid(N, OH, OW):
            with T.sblock("pixel"):
                vn, vi, vj = T.axis.remap("SSS", [pn, pi, pj])
                T.reads(x[vn, 0:C, vi * P : vi * P + P, vj * P : vj * P + P], w[0:K, 0:C, 0:P, 0:P])
                T.writes(y[vn, 0:K, vi, vj])
                partial = T.alloc_buffer((K,), "int32")
                for oc in range(K):
                    partial[oc] = 0
                for a, b, oc, ic in T.grid(G, G, K, C):
                    for u in range(T.min(F, P - a * F)):
                        for v in range(T.min(F, P - b * F)):
                            r = T.meta_var(a * F + u)
                            s = T.meta_var(b * F + v)
                            partial[oc] = partial[oc] + T.Cast(
                                "int32", x[vn, ic, vi * P + r, vj * P + s]
                            ) * T.Cast("int32", w[oc, ic, r, s])
                for oc in range(K):
                    y[vn, oc, vi, vj] = partial[oc]

    return patch_embed


def field_length(channels: int, field: int) -> int:
    """Bytes of one gathered sub-field (``channels·field²``) padded to a multiple of 4."""
    return -(-channels * field * field // 4) * 4


def field_major_weight(w: np.ndarray, field: int) -> np.ndarray:
    """``w [O, C, P, P]`` as ``[G, G, O, L]``: each sub-field's weights, one output channel
    per row in the order :func:`patch_embed_dot_kernel` gathers the input, zero-padded to
    ``L = field_length(C, field)`` (the padding of edge sub-fields included)."""
    o, c, p, _ = w.shape
    grid = -(-p // field)
    padded = np.zeros((o, c, grid * field, grid * field), w.dtype)
    padded[:, :, :p, :p] = w
    blocks = padded.reshape(o, c, grid, field, grid, field).transpose(2, 4, 0, 1, 3, 5)
    out = np.zeros((grid, grid, o, field_length(c, field)), w.dtype)
    out[..., : c * field * field] = blocks.reshape(grid, grid, o, c * field * field)
    return out


def patch_embed_dot_kernel(
    x_shape: Sequence[int], w_shape: Sequence[int], patch: int, field: int = 4
) -> tirx.PrimFunc:
    """The decomposed patch embedding on dual-MAC micro-kernels ``(x int8, wf int8, y int32)``.

    ``wf`` is the weight in :func:`field_major_weight`'s layout (``w_shape`` is the
    conv's ``[O, C, P, P]``). Per output pixel and sub-field, the ``C·field²`` input
    bytes are gathered into a row of ``L`` (zero where the sub-field passes the patch
    edge, then zero padding), and each pair of output channels adds that row's dot
    product with its two weight rows into the partial sums, ``S`` bytes a call of
    ``mcuformer_dot_1xC_S`` (``codegen/runtime/mcuformer_simd.h``). The row stays a C
    local when ``L`` is small (48 bytes for RGB and field 4). Bit-identical to
    :func:`patch_embed_kernel`.
    """
    oh, ow = patch_embed_geometry(x_shape, w_shape, patch, field)
    n, c, _, _ = (int(d) for d in x_shape)
    o = int(w_shape[0])
    grid = -(-patch // field)
    length = field_length(c, field)
    step = next(s for s in K_STEPS if length % s == 0)
    cols = next(t for t in TILES if o % t == 0)
    name = micro_kernel_name(cols, 1, step)
    xs, ys = _i64(*x_shape), _i64(n, o, oh, ow)
    wfs = _i64(grid, grid, o, length)
    N, C, K, OH, OW, P, F, G, L = _i64(n, c, o, oh, ow, patch, field, grid, length)  # noqa: N806
    TILE, STEP, CFF, LAST = _i64(cols, step, c * field * field, patch - 1)  # noqa: N806

    @T.prim_func(private=True, s_tir=True)
    def patch_embed(x: T.Buffer(xs, "int8"), wf: T.Buffer(wfs, "int8"), y: T.Buffer(ys, "int32")):
        T.func_attr({"tirx.noalias": True, "op_pattern": OUT_ELEMWISE_FUSABLE})
        for pn, pi, pj in T.grid(N, OH, OW):
            with T.sblock("pixel"):
                vn, vi, vj = T.axis.remap("SSS", [pn, pi, pj])
                T.reads(
                    x[vn, 0:C, vi * P : vi * P + P, vj * P : vj * P + P], wf[0:G, 0:G, 0:K, 0:L]
                )
                T.writes(y[vn, 0:K, vi, vj])
                partial = T.alloc_buffer((K,), "int32")
                row = T.alloc_buffer((L,), "int8")
                for oc in range(K):
                    partial[oc] = 0
                for a, b in T.grid(G, G):
                    for ic, u, v in T.grid(C, F, F):
                        r = T.meta_var(a * F + u)
                        s = T.meta_var(b * F + v)
                        pixel = T.meta_var(
                            x[vn, ic, vi * P + T.min(r, LAST), vj * P + T.min(s, LAST)]
                        )
                        row[(ic * F + u) * F + v] = T.if_then_else(
                            r < P, T.if_then_else(s < P, pixel, T.int8(0)), T.int8(0)
                        )
                    for t in range(L - CFF):
                        row[CFF + t] = T.int8(0)
                    for oc, k in T.grid(K // TILE, L // STEP):
                        T.evaluate(
                            T.call_extern(
                                "void",
                                name,
                                T.address_of(partial[oc * TILE]),
                                T.address_of(row[k * STEP]),
                                T.address_of(wf[a, b, oc * TILE, k * STEP]),
                                length,
                                1,
                            )
                        )
                for oc in range(K):
                    y[vn, oc, vi, vj] = partial[oc]

    return patch_embed
