"""Token overwrite: row-wise kernels that may write each output row over its input row.

In a token-wise layer (qkv, proj, fc1, fc2, GeLU, LayerNorm, softmax, and the
attention matmuls per head) output row ``t`` depends only on input row ``t``
(rows: every axis but the last). :func:`schedule_token_overwrite` recognises
such a kernel from its TIR block accesses (its first input and its output are
only ever indexed at the block's row iterators), computes every block per row,
and puts output row ``t`` into a one-row scratch buffer that is copied out once
row ``t`` is finished. The planner may then place the
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

import math

from tvm import s_tir, tirx

from .primfunc_pass import primfunc_pass

TOKEN_OVERWRITE_ATTR = "mcuformer.token_overwrite"  # marks kernels the planner may overlay


def _shape(param) -> list[int]:
    return [int(d) for d in param.ty.shape]


def _row_vars(sch: s_tir.Schedule, block, name: str, lead: list[int]) -> dict | None:
    """Leading axis → block iterator of every access of ``name`` in ``block``.

    ``None`` unless each access indexes every non-unit leading axis (all axes but
    the last) by one spatial block iterator, one element wide: the access then
    stays within one row.
    """
    stmt = sch.get(block)
    spatial = {iv.var.name: iv for iv in stmt.iter_vars if int(iv.iter_type) == 0}
    rows: dict[int, str] = {}
    for region in [*stmt.reads, *stmt.writes]:
        if region.source.name != name:
            continue
        for axis, n in enumerate(lead):
            if n == 1:
                continue
            r = region.region[axis]
            var = getattr(r.min, "name", None)
            if var not in spatial or int(r.extent) != 1:
                return None
            if int(spatial[var].dom.extent) != n or rows.setdefault(axis, var) != var:
                return None
    return rows


def schedule_token_overwrite(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The row-scratch schedule of ``func``, or ``None`` if it is not row-wise.

    Rows are all axes but the last: input ``[..., K]`` and output ``[..., M]``
    must share their leading shape, with at least two rows.
    """
    params = list(func.params)
    if len(params) < 2:
        return None
    src, dst = _shape(params[0]), _shape(params[-1])
    lead = dst[:-1]
    if len(src) != len(dst) or len(dst) < 2 or src[:-1] != lead or math.prod(lead) < 2:
        return None
    src_name, dst_name = params[0].name, params[-1].name
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = sch.get_output_blocks(root)
    if len(outputs) != 1:
        return None
    out_block = outputs[0]
    for block in _all_blocks(sch, root):
        maps = [_row_vars(sch, block, n, lead) for n in (src_name, dst_name)]
        if any(m is None for m in maps) or (maps[0] and maps[1] and maps[0] != maps[1]):
            return None
    # The out block's loops follow its iterators: the row loop is the one of its
    # last row iterator (the innermost leading axis that is not of size 1).
    row_map = _row_vars(sch, out_block, dst_name, lead)
    names = [iv.var.name for iv in sch.get(out_block).iter_vars]
    position = max((names.index(v) for v in row_map.values()), default=-1)
    loops = sch.get_loops(out_block)
    if position < 0 or position >= len(loops):
        return None
    producers = [
        b for b in sch.get_child_blocks(root) if not sch.get(b).same_as(sch.get(out_block))
    ]
    try:
        row = sch.get(loops[position])
        for block in reversed(producers):  # consumers first, so each lands under the row
            if not any(sch.get(loop).same_as(row) for loop in sch.get_loops(block)):
                sch.compute_at(block, loops[position], preserve_unit_loops=True)
        sch.cache_write(out_block, 0, "global")
        copy = sch.get_output_blocks(root)[0]
        sch.reverse_compute_at(copy, sch.get_loops(out_block)[position])
    except Exception:  # noqa: BLE001 - the schedule refuses: not a row-wise kernel
        return None
    return sch.mod["main"].with_attr(TOKEN_OVERWRITE_ATTR, True)


def _all_blocks(sch: s_tir.Schedule, root) -> list:
    out, todo = [], list(sch.get_child_blocks(root))
    while todo:
        b = todo.pop()
        out.append(b)
        todo.extend(sch.get_child_blocks(b))
    return out


# Every row-wise PrimFunc gets :func:`schedule_token_overwrite`.
TokenOverwrite = primfunc_pass(
    schedule_token_overwrite, "mcuformer.TokenOverwrite", TOKEN_OVERWRITE_ATTR
)
