"""Tensorize by hand: replace annotated TIR blocks by calls of C micro-kernels.

A schedule blockizes the loops one micro-kernel call computes and annotates the
new block with :data:`MICRO_KERNEL_ATTR` (the micro-kernel's name);
:func:`place_calls` then replaces each annotated block's body by that
micro-kernel's ``call_extern`` through TVMScript (print → edit → parse, as
``lowering.kernels`` does): ``Schedule.tensorize`` crashes the process in TVM
0.27.0.post1, even on its documented example. The block keeps its read and
write regions, so buffer compaction still sees what the call touches. The
micro-kernels are ``static inline`` functions of
``codegen/runtime/mcuformer_simd.h``.
"""

from __future__ import annotations

import re

import tvm.script
from tvm import s_tir, tirx

MICRO_KERNEL_ATTR = "mcuformer.micro_kernel"


def annotate_step(sch: s_tir.Schedule, loop, name: str):
    """Blockize the loops from ``loop`` down into one block computed by micro-kernel ``name``."""
    step = sch.blockize(loop)
    sch.annotate(step, MICRO_KERNEL_ATTR, name)
    return step


def iter_names(step: tirx.SBlock) -> list[str]:
    """The names of a step block's iteration variables, in order (as its TVMScript binds them)."""
    return [iv.var.name for iv in step.iter_vars]


def place_calls(func: tirx.PrimFunc, calls: dict[str, str]) -> tirx.PrimFunc:
    """``func`` with every block annotated ``name`` computed by the TVMScript ``calls[name]``."""
    marker = re.compile(rf'^(\s*)T\.sblock_attr\(\{{"{re.escape(MICRO_KERNEL_ATTR)}": "([^"]+)"')
    out: list[str] = []
    indent: str | None = None
    for line in func.script().split("\n"):
        if indent is not None:
            if line.startswith(indent) or not line.strip():
                continue  # the step's loop nest: replaced by the call
            indent = None
        match = marker.match(line)
        if match:
            indent, name = match.groups()
            out.append(indent + calls[name])
            continue
        out.append(line)
    try:
        return tvm.script.from_source("\n".join(out))
    except Exception as err:
        raise RuntimeError(f"cannot place the micro-kernel calls: {err}") from err
