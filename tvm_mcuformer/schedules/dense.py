"""Schedule for the int8 dense kernel: 1×C register tiles, K by 4, dual-MAC micro-kernels.

A fused kernel holding an ``ops.dense_int`` block (``acc[..., m, n] = Σ_k
a[..., m, k] · w[n, k]``, weight N×K in flash) and its epilogue (bias add,
requantization) is scheduled as

* per row ``m``, output channels in tiles of ``C`` (4, 2 or 1: the largest that
  divides N) with ``C`` int32 accumulators in a ``local`` buffer: a C local array
  the compiler keeps in registers (``lowering.kernels`` keeps such small
  allocations on the stack instead of lifting them to the arena);
* K in steps of 4, each step one call of the micro-kernel
  ``mcuformer_dot_1xC_4(acc, a, w, w_stride, acc_stride)``, the ``static
  inline`` function of ``codegen/runtime/mcuformer_simd.h`` (SXTB16/SMLAD on
  Cortex-M4/M7, portable C with the same semantics elsewhere);
* the epilogue (bias, requantization) once per output after its tile's K loop,
  never in the inner loop; the tile's init and epilogue loops are unrolled so
  every accumulator index is a constant and the C compiler keeps the
  accumulators in registers.

The step is tensorized by hand: the tile's inner loops are blockized (a TIR
schedule primitive) and annotated with :data:`MICRO_KERNEL_ATTR`, then the
annotated block's body is replaced by the ``call_extern`` through TVMScript
(print → edit → parse, as ``lowering.kernels`` does): ``Schedule.tensorize``
crashes the process in TVM 0.27.0.post1, even on its documented example.

A kernel whose K is not a multiple of 4 keeps the plain schedule. Integer
addition is associative, so the scheduled kernel equals ``ops.dense_int_ref``
(+ epilogue) bit for bit.
"""

from __future__ import annotations

import re

import tvm
import tvm.script
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base.common_schedules import try_inline

DENSE_BLOCK = "dense_int"  # the te.compute name of ops.dense_int
SCHEDULED_ATTR = "mcuformer.dense_scheduled"  # AutoInline leaves such kernels alone
MICRO_KERNEL_ATTR = "mcuformer.micro_kernel"
K_STEP = 4
TILES = (4, 2, 1)


def micro_kernel_name(cols: int) -> str:
    """The C micro-kernel of one 1×cols×4 step (defined in ``mcuformer_simd.h``)."""
    return f"mcuformer_dot_1x{cols}_4"


def _dense_block(sch: s_tir.Schedule):
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint == DENSE_BLOCK:
            return block
    return None


def _local_accumulators(sch: s_tir.Schedule, dense, tile_loop) -> None:
    """Put the dense block's output in a ``local`` buffer computed per tile."""
    try:
        sch.set_scope(dense, 0, "local")  # a fused kernel: the output is an intermediate
    except s_tir.ScheduleError:  # the output is a parameter: accumulate in a local copy
        copy = sch.cache_write(dense, 0, "local")
        sch.reverse_compute_at(copy, tile_loop)


def schedule_dense(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The tiled, micro-kernel schedule of a kernel holding a dense block, else ``None``."""
    sch = s_tir.Schedule(func)
    blocks = normalize_prim_func(sch)
    if blocks is None or _dense_block(sch) is None:
        return None
    remaining = try_inline(sch, blocks)
    dense = _dense_block(sch)
    *spatial, n_loop, k_loop = sch.get_loops(dense)
    n, k = (int(sch.get(lp).extent) for lp in (n_loop, k_loop))
    if k % K_STEP or not spatial:
        return None
    cols = next(c for c in TILES if n % c == 0)
    try:
        n0, n1 = sch.split(n_loop, [None, cols])
        k0, k1 = sch.split(k_loop, [None, K_STEP])
        sch.reorder(n0, k0, n1, k1)
        tile_loops = []
        for ep in remaining:
            if not sch.get(ep.block_rv).same_as(sch.get(dense)):
                sch.reverse_compute_at(ep.block_rv, n0)
                tile_loops.append(sch.get_loops(ep.block_rv)[-1])
        _local_accumulators(sch, dense, n0)
        init = sch.decompose_reduction(dense, k0)
        tile_loops.append(sch.get_loops(init)[-1])
        for loop in tile_loops:  # constant accumulator indices: kept in registers by the C compiler
            sch.unroll(loop)
        step = sch.blockize(n1)
        sch.annotate(step, MICRO_KERNEL_ATTR, micro_kernel_name(cols))
    except s_tir.ScheduleError:  # a kernel shape the schedule does not cover
        return None
    return _call_micro_kernels(sch.mod["main"], sch.get(step), k).with_attr(SCHEDULED_ATTR, True)


def _address(region) -> str:
    index = ", ".join(str(r.min) for r in region.region)
    return f"T.address_of({region.source.name}[{index}])"


def _call_micro_kernels(func: tirx.PrimFunc, step, k: int) -> tirx.PrimFunc:
    """Replace the annotated step block's loops by its micro-kernel call (TVMScript edit)."""
    acc, a, w = step.reads
    name = str(step.annotations[MICRO_KERNEL_ATTR])
    call = (
        f'T.evaluate(T.call_extern("void", "{name}", {_address(acc)}, {_address(a)}, '
        f"{_address(w)}, {k}, 1))"
    )
    marker = re.compile(rf'^(\s*)T\.sblock_attr\(\{{"{re.escape(MICRO_KERNEL_ATTR)}": ')
    out: list[str] = []
    indent: str | None = None
    for line in func.script().split("\n"):
        if indent is not None:
            if line.startswith(indent) or not line.strip():
                continue  # the step's loop nest: replaced by the call
            indent = None
        match = marker.match(line)
        if match:
            indent = match.group(1)
            out.append(indent + call)
            continue
        out.append(line)
    try:
        return tvm.script.from_source("\n".join(out))
    except Exception as err:
        raise RuntimeError(f"dense schedule: cannot place the micro-kernel call: {err}") from err


@tvm.transform.module_pass(opt_level=0, name="mcuformer.ScheduleDense")
def ScheduleDense(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:  # noqa: N802
    """Apply :func:`schedule_dense` to every PrimFunc of ``mod`` holding a dense block."""
    updated = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc) and not (func.attrs and SCHEDULED_ATTR in func.attrs):
            scheduled = schedule_dense(func)
            if scheduled is not None:
                updated[gv] = scheduled
    for gv, func in updated.items():
        mod[gv] = func
    return mod
