"""Row-wise attention: one query row of one head at a time (QKᵀ row → softmax → row × V).

The fused :func:`~tvm_mcuformer.ops.attention.attention_int` kernel indexes its
stages ``[i, h, ...]``. :func:`schedule_rowwise_attention` moves every stage
under the output's loops over query row ``i`` and head ``h``, so the scores,
their maximum and sum compact to one row of ``T`` elements instead of
``heads·T²``. Without it the kernel keeps every head's score matrix in a
workspace (the ``all_heads`` ablation).
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx

from ..ops.attention import ATTENTION_BLOCK

ROWWISE_ATTR = "mcuformer.rowwise_attention"


def schedule_rowwise_attention(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """``func`` with every stage computed per query row and head; ``None`` if not attention."""
    sch = s_tir.Schedule(func)
    try:
        out = sch.get_sblock(ATTENTION_BLOCK)
    except Exception:  # noqa: BLE001 - no such block: another kernel
        return None
    row = sch.get_loops(out)[1]  # [i, h, d]: under query row i and head h
    root = sch.get_sblock("root")
    for block in reversed(sch.get_child_blocks(root)):  # consumers first
        if sch.get(block).same_as(sch.get(out)):
            continue
        if not any(sch.get(loop).same_as(sch.get(row)) for loop in sch.get_loops(block)):
            sch.compute_at(block, row, preserve_unit_loops=True)
    return sch.mod["main"].with_attr(ROWWISE_ATTR, True)


@tvm.transform.module_pass(opt_level=0, name="mcuformer.RowwiseAttention")
def RowwiseAttention(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:  # noqa: N802
    """Apply :func:`schedule_rowwise_attention` to every fused attention kernel of ``mod``."""
    updated = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or (func.attrs and ROWWISE_ATTR in func.attrs):
            continue
        scheduled = schedule_rowwise_attention(func)
        if scheduled is not None:
            updated[gv] = scheduled
    for gv, func in updated.items():
        mod[gv] = func
    return mod
