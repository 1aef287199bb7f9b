"""Schedule for the int8 dense kernel: 2×C register tiles, K by 16/8/4, dual-MAC micro-kernels.

A fused kernel holding an ``ops.dense_int`` block (``acc[..., m, n] = Σ_k
a[..., m, k] · w[n, k]``, weight N×K in flash) and its epilogue (bias add,
requantization) is scheduled as

* rows ``m`` in pairs (like CMSIS-NN's 2×2 ``arm_nn_mat_mult_nt_t_s8``), output
  channels in tiles of ``C`` (2 or 1: the largest that divides N) with 2·C int32
  accumulators in a ``local`` buffer: a C local array the compiler keeps in
  registers (``lowering.kernels`` keeps such small allocations on the stack
  instead of lifting them to the arena); each weight word is loaded once per two
  rows, each activation word once per C columns. An odd M's last pair computes
  row M - 1 twice: its second accumulator row is scratch (never stored: the
  epilogue keeps its row predicate) and its activation pointer is clamped to row
  M - 1, so nothing outside the tensors is read or written. A kernel with M = 1
  uses 1×C tiles;
* K in steps of 16, 8 or 4 (the largest that divides K), each step one call of
  the micro-kernel ``mcuformer_dot_2xC_S(acc0, acc1, a0, a1, w, w_stride,
  acc_stride)`` (``mcuformer_dot_1xC_S(acc, a, w, w_stride, acc_stride)`` for one
  row), a ``static inline`` function of ``codegen/runtime/mcuformer_simd.h``
  (SXTB16/SMLAD on Cortex-M4/M7, portable C with the same semantics elsewhere);
* the epilogue (bias, requantization) once per output after its tile's K loop,
  never in the inner loop, the biased sum a ``local`` int32 stage of its own; the
  tile's init and epilogue loops are unrolled so every accumulator index is a
  constant and the C compiler keeps the accumulators in registers.

The step is tensorized by hand (:mod:`.micro_kernel`): the tile's inner loops
are blockized and annotated, then the block's body is replaced by the
``call_extern``.

A kernel whose K is not a multiple of 4 keeps the plain schedule. Integer
addition is associative, so the scheduled kernel equals ``ops.dense_int_ref``
(+ epilogue) bit for bit.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base.common_schedules import try_inline

from .micro_kernel import MICRO_KERNEL_ATTR, annotate_step, place_calls
from .primfunc_pass import primfunc_pass

DENSE_BLOCK = "dense_int"  # the te.compute name of ops.dense_int
SCHEDULED_ATTR = "mcuformer.dense_scheduled"  # AutoInline leaves such kernels alone
K_STEPS = (16, 8, 4)  # reduction elements per micro-kernel call: the largest that divides K
TILES = (2, 1)  # output channels per register tile: the largest that divides N
ROWS = 2  # activation rows per register tile


def micro_kernel_name(cols: int, rows: int = 1, k_step: int = 4) -> str:
    """The C micro-kernel of one rows×cols×k_step step (defined in ``mcuformer_simd.h``)."""
    return f"mcuformer_dot_{rows}x{cols}_{k_step}"


def _dense_block(sch: s_tir.Schedule):
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint == DENSE_BLOCK:
            return block
    return None


def _bias_block(sch: s_tir.Schedule) -> str | None:
    """The name of the int32 stage adding the bias to the dense output, if another stage
    reads it. It stays a stage of its own (in ``local`` scope: registers): inlined into the
    requantization, TVM's simplifier widens ``int64(acc + bias)`` to a 64-bit addition and
    a 64 × 64-bit product, where a 32 × 32 → 64-bit multiply (SMULL) suffices."""
    consumers = sch.get_consumers(_dense_block(sch))
    if len(consumers) != 1:
        return None
    block = sch.get(consumers[0])
    (out,) = block.writes
    if str(out.source.dtype) != "int32" or not sch.get_consumers(consumers[0]):
        return None
    return block.name_hint


def _position(sch: s_tir.Schedule, block) -> int:
    """The index of ``block`` among the root's children (program order)."""
    children = sch.get_child_blocks(sch.get_sblock("root"))
    return next(i for i, b in enumerate(children) if sch.get(b).same_as(sch.get(block)))


def _consumer_names(sch: s_tir.Schedule, name: str) -> list[str]:
    return [sch.get(c).name_hint for c in sch.get_consumers(sch.get_sblock(name))]


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
    bias = _bias_block(sch)
    kept = () if bias is None else (bias, *_consumer_names(sch, bias))  # not inlined together
    remaining = try_inline(sch, [b for b in blocks if b.name not in kept])
    dense = _dense_block(sch)
    *spatial, n_loop, k_loop = sch.get_loops(dense)
    n, k = (int(sch.get(lp).extent) for lp in (n_loop, k_loop))
    k_step = next((s for s in K_STEPS if k % s == 0), None)
    if k_step is None or not spatial:
        return None
    cols = next(c for c in TILES if n % c == 0)
    m_loop = spatial[-1]
    m = int(sch.get(m_loop).extent)
    try:
        kept_blocks = [sch.get_sblock(name) for name in kept]
        epilogues = [ep.block_rv for ep in remaining] + kept_blocks
        epilogues = [
            ep
            for ep in sorted(epilogues, key=lambda b: _position(sch, b))
            if not sch.get(ep).same_as(sch.get(dense))
        ]
        step = _tile(sch, dense, epilogues, ROWS if m >= ROWS else 1, cols, k_step)
        if bias is not None:
            sch.set_scope(sch.get_sblock(bias), 0, "local")
    except s_tir.ScheduleError:  # a kernel shape the schedule does not cover
        return None
    step = sch.get(step)
    func = place_calls(sch.mod["main"], {step.annotations[MICRO_KERNEL_ATTR]: _call(step, k, m)})
    return func.with_attr(SCHEDULED_ATTR, True)


def _tile(sch: s_tir.Schedule, dense, epilogues: list, rows: int, cols: int, k_step: int):
    """Tile the dense block (and its epilogue blocks) rows×cols×k_step; the annotated step block."""
    *_, m_loop, n_loop, k_loop = sch.get_loops(dense)
    # an odd last row pair reads row M: its accumulators are a scratch row, its activation
    # pointer is clamped to row M - 1 (see _call), the epilogue keeps its row predicate
    m0, m1 = sch.split(m_loop, [None, rows], disable_predication=True)
    n0, n1 = sch.split(n_loop, [None, cols])
    k0, k1 = sch.split(k_loop, [None, k_step])
    sch.reorder(m0, n0, k0, m1, n1, k1)
    tile_loops = []
    for ep in epilogues:
        sch.reverse_compute_at(ep, n0)
        tile_loops += sch.get_loops(ep)[-2:]
    _local_accumulators(sch, dense, n0)
    init = sch.decompose_reduction(dense, k0)
    tile_loops += sch.get_loops(init)[-2:]
    for loop in tile_loops:  # constant accumulator indices: kept in registers by the C compiler
        sch.unroll(loop)
    return annotate_step(sch, m1, micro_kernel_name(cols, rows, k_step))


def _address(region, row: int = 0, last_row: int | None = None) -> str:
    """``T.address_of`` the region's first element, ``row`` rows (second-last axis) further,
    the row clamped to ``last_row`` when given."""
    index = [str(r.min) for r in region.region]
    if row:
        index[-2] = f"{index[-2]} + {row}"
        if last_row is not None:
            bound = f"T.int64({last_row})" if "T.int64" in index[-2] else str(last_row)
            index[-2] = f"T.min({index[-2]}, {bound})"
    return f"T.address_of({region.source.name}[{', '.join(index)}])"


def _call(step, k: int, m: int) -> str:
    """The micro-kernel call replacing the annotated step block (``m`` activation rows)."""
    acc, a, w = step.reads
    name = str(step.annotations[MICRO_KERNEL_ATTR])
    if name.startswith(f"mcuformer_dot_{ROWS}x"):  # a 2-row tile
        a1 = _address(a, 1, last_row=m - 1)  # an odd M's last pair: row M - 1 twice
        pointers = f"{_address(acc)}, {_address(acc, 1)}, {_address(a)}, {a1}"
    else:
        pointers = f"{_address(acc)}, {_address(a)}"
    return f'T.evaluate(T.call_extern("void", "{name}", {pointers}, {_address(w)}, {k}, 1))'


# Every PrimFunc holding a dense block gets :func:`schedule_dense`.
ScheduleDense = primfunc_pass(schedule_dense, "mcuformer.ScheduleDense", SCHEDULED_ATTR)
