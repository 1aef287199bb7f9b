"""Token overwrite: row-wise kernels that may write each output row over its input row.

In a token-wise layer (qkv, proj, fc1, fc2, an elementwise GeLU...) output row
(token) ``t`` depends only on input row ``t``. :func:`schedule_token_overwrite`
recognises such a kernel from its TIR (2-D input ``[N, K]`` read and 2-D output
``[N, M]`` written only at the row of the block's first, outermost iterator) and
schedules it so that output row ``t`` is computed into a one-row scratch buffer
and copied out once row ``t`` is finished. The planner may then place the
output over the input (:mod:`tvm_mcuformer.planner.inplace`):

* ``M ≤ K`` bytes per row: both at the same base, forward order — row ``t``'s
  copy overwrites only input rows ``≤ t``, already consumed;
* ``M > K``: the input at the *end* of the output's region, offset ``N·(M−K)``
  bytes — the same footprint as computing rows in reverse order with both at
  the base, since row ``t``'s copy ends at ``(t+1)·M ≤ N·(M−K) + (t+1)·K``.

Either way the layer needs ``max(N·K, N·M)`` bytes plus one row of scratch,
not ``N·K + N·M``. Kernels get the attribute ``mcuformer.token_overwrite``.
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx

from ..codegen.tir_to_c import TOKEN_OVERWRITE_ATTR as ATTR


def _shape(param) -> list[int]:
    return [int(d) for d in param.ty.shape]


def _rows_only(sch: s_tir.Schedule, block, buffer_name: str, rows: int) -> bool:
    """Every access of ``buffer_name`` in ``block`` is at row ``iter_vars[0]`` only."""
    stmt = sch.get(block)
    if not stmt.iter_vars or int(stmt.iter_vars[0].dom.extent) != rows:
        return False
    row = stmt.iter_vars[0].var
    for region in [*stmt.reads, *stmt.writes]:
        if region.source.name != buffer_name:
            continue
        first = region.region[0]
        if not (first.min.same_as(row) and int(first.extent) == 1):
            return False
    return True


def schedule_token_overwrite(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The row-scratch schedule of ``func``, or ``None`` if it is not row-wise."""
    params = list(func.params)
    if len(params) < 2:
        return None
    src, dst = _shape(params[0]), _shape(params[-1])
    if len(src) != 2 or len(dst) != 2 or src[0] != dst[0] or src[0] < 2:
        return None
    rows, src_name, dst_name = src[0], params[0].name, params[-1].name
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = sch.get_output_blocks(root)
    if len(outputs) != 1:
        return None
    out_block = outputs[0]
    outer = sch.get_loops(out_block)[0]
    blocks = _all_blocks(sch, root)
    for block in blocks:
        if not sch.get(sch.get_loops(block)[0]).same_as(sch.get(outer)):
            return None  # some work happens outside the row loop
        touches = {r.source.name for r in [*sch.get(block).reads, *sch.get(block).writes]}
        for name in (src_name, dst_name):
            if name in touches and not _rows_only(sch, block, name, rows):
                return None
    try:
        sch.cache_write(out_block, 0, "global")
        copy = sch.get_output_blocks(root)[0]
        sch.reverse_compute_at(copy, sch.get_loops(out_block)[0])
    except Exception:  # noqa: BLE001 - the schedule refuses: not a row-wise kernel
        return None
    return sch.mod["main"].with_attr(ATTR, True)


def _all_blocks(sch: s_tir.Schedule, root) -> list:
    out, todo = [], list(sch.get_child_blocks(root))
    while todo:
        b = todo.pop()
        out.append(b)
        todo.extend(sch.get_child_blocks(b))
    return out


@tvm.transform.module_pass(opt_level=0, name="mcuformer.TokenOverwrite")
def TokenOverwrite(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:  # noqa: N802
    """Apply :func:`schedule_token_overwrite` to every row-wise PrimFunc of ``mod``."""
    updated = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc) and not (func.attrs and ATTR in func.attrs):
            scheduled = schedule_token_overwrite(func)
            if scheduled is not None:
                updated[gv] = scheduled
    for gv, func in updated.items():
        mod[gv] = func
    return mod
