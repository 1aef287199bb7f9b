"""Inline elementwise producers/consumers so fused kernels keep few temporaries.

Legalized Relax ops fuse into PrimFuncs that materialise every intermediate
(reshape, multiply, erf, ...) as a full buffer. On a microcontroller those
buffers would cost arena bytes; inlining them turns a fused kernel into one
loop nest that keeps only what a reduction really needs.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base.common_schedules import try_inline

from ..ops.attention import ATTENTION_BLOCK
from .dense import SCHEDULED_ATTR
from .primfunc_pass import primfunc_pass

# Kept materialised in fused attention: inlining the probabilities into the row × V
# reduction would recompute the integer exponent head_dim times per score.
ATTENTION_KEPT = ("softmax_int", "softmax_float")


def inline_elementwise(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Return ``func`` with every inlinable block inlined (compute or reverse).

    In fused attention the softmax probabilities stay a stage of their own (one
    row of ``T`` after :mod:`.attention` schedules it), read by the row × V sum.
    An epilogue that cannot be inlined into its producer (the bias add after a
    matmul, the requantization after the per-pixel patch-embedding block) is
    computed right after each produced element instead, so the producer's
    output buffer compacts to what one iteration writes.
    """
    sch = s_tir.Schedule(func)
    blocks = normalize_prim_func(sch)
    if blocks is None:  # not in a shape the analysis understands: leave it as is
        return func
    names = {sch.get(b.block_rv).name_hint for b in blocks}
    if ATTENTION_BLOCK in names:
        blocks = [b for b in blocks if sch.get(b.block_rv).name_hint not in ATTENTION_KEPT]
    remaining = try_inline(sch, blocks)
    _fuse_epilogues(sch, remaining)
    return sch.mod["main"]


def _fuse_epilogues(sch: s_tir.Schedule, blocks: list) -> None:
    for producer, consumer in zip(blocks, blocks[1:], strict=False):
        if not consumer.is_injective():
            continue
        spatial = sum(1 for it in producer.iters if it.kind == "S")
        loops = sch.get_loops(producer.block_rv)
        if spatial == 0 or spatial > len(loops):
            continue
        try:
            sch.reverse_compute_at(consumer.block_rv, loops[spatial - 1])
        except Exception:  # noqa: BLE001 - the schedule refuses: keep the plain order
            continue


# Every PrimFunc not scheduled already gets :func:`inline_elementwise`.
AutoInline = primfunc_pass(inline_elementwise, "mcuformer.AutoInline", SCHEDULED_ATTR)
