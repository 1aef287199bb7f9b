"""Inline elementwise producers/consumers so fused kernels keep few temporaries.

Legalized Relax ops fuse into PrimFuncs that materialise every intermediate
(reshape, multiply, erf, ...) as a full buffer. On a microcontroller those
buffers would cost arena bytes; inlining them turns a fused kernel into one
loop nest that keeps only what a reduction really needs.
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base.common_schedules import try_inline


def inline_elementwise(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Return ``func`` with every inlinable block inlined (compute or reverse)."""
    sch = s_tir.Schedule(func)
    blocks = normalize_prim_func(sch)
    if blocks is None:  # not in a shape the analysis understands: leave it as is
        return func
    try_inline(sch, blocks)
    return sch.mod["main"]


@tvm.transform.module_pass(opt_level=0, name="mcuformer.AutoInline")
def AutoInline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:  # noqa: N802
    """Apply :func:`inline_elementwise` to every PrimFunc of ``mod``."""
    updated = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc):
            updated[gv] = inline_elementwise(func)
    for gv, func in updated.items():
        mod[gv] = func
    return mod
