"""Schedules of fused attention: row-wise (memory), then dual-MAC micro-kernels (speed).

The fused :func:`~tvm_mcuformer.ops.attention.attention_int` kernel indexes its
stages ``[i, h, ...]``. :func:`schedule_rowwise_attention` moves every stage
under the output's loops over query row ``i`` and head ``h``, so the scores,
their exponents and probabilities compact to one row of ``T`` elements instead
of ``heads·T²``. Without it the kernel keeps every head's score matrix in a
workspace (the ``all_heads`` ablation).

:func:`schedule_attention_kernels` is the row-wise schedule with both matmuls on
micro-kernels (``codegen/runtime/mcuformer_simd.h``, tensorized by hand as in
:mod:`.micro_kernel`), for an even head dimension D (at most 64, or a multiple of 4):

* ``QKᵀ`` row: the scores ``s_j = Σ_c q_c · k_{j,c}`` of every key by one call of
  ``mcuformer_qk_row`` (D ≤ 64: the query row is split into int16 lanes once, then
  each key is word loads, SXTB16 and SMLAD; D mod 4 bytes scalar); a larger head
  takes each score by ``mcuformer_dot_1x1_S`` (S = 64, 32, 16, 8 or 4 elements a call);
* row × V: value columns in tiles of 4 (2 when D is not a multiple of 4) with int32
  accumulators kept as C locals, keys four at a time by ``mcuformer_pv_4x4`` (or
  ``_4x2``); the last ``T mod 4`` keys (``attention_acc_tail``) in plain loops into
  their own local accumulators.

Every other stage is computed once per element of its row, the row maximum and
the exponent sum in the same pass as the values they reduce (integer addition
is associative: the kernel equals ``attention_int_ref`` bit for bit).
"""

from __future__ import annotations

from tvm import s_tir, tirx

from ..ops.attention import (
    ATTENTION_BLOCK,
    GEOMETRY_ATTR,
    KEY_STEP,
    TOTAL,
    AttentionGeometry,
)
from .dense import K_STEPS, SCHEDULED_ATTR, micro_kernel_name
from .micro_kernel import MICRO_KERNEL_ATTR, annotate_step, iter_names, place_calls
from .primfunc_pass import primfunc_pass

ROWWISE_ATTR = "mcuformer.rowwise_attention"
VALUE_TILES = (4, 2)  # value columns per row × V step: the largest dividing the head dimension
HEAD_STEPS = (64, 32, *K_STEPS)  # head-dimension elements per QKᵀ call, past QK_ROW_MAX
QK_ROW_MICRO_KERNEL = "mcuformer_qk_row"  # one query row against every key
QK_ROW_MAX = 64  # the largest head dimension of the row micro-kernel


def pv_micro_kernel(tile: int) -> str:
    """The row × V micro-kernel of four keys × ``tile`` value columns."""
    return f"mcuformer_pv_4x{tile}"


SCORES, ACC, TAIL = "attention_scores", "attention_acc", "attention_acc_tail"  # ops.attention
# (stage, the row reduction over it): the reduction runs in the stage's loop over the row
ROW_REDUCTIONS = (("attention_scores_int8", "row_max"), ("softmax_exp", "exp_sum"))


def _output(sch: s_tir.Schedule):
    try:
        return sch.get_sblock(ATTENTION_BLOCK)
    except Exception:  # noqa: BLE001 - no such block: another kernel
        return None


def _rows(sch: s_tir.Schedule, out) -> None:
    """Compute every stage not yet under the output's head loop there (consumers first);
    the row × V sums, if at the root, per output element (one int32 each, not a row)."""
    row, column = sch.get_loops(out)[1:3]  # [i, h, d]: under query row i and head h
    root = sch.get_sblock("root")

    def placed(block) -> bool:
        return any(sch.get(loop).same_as(sch.get(row)) for loop in sch.get_loops(block))

    for name in (TOTAL, TAIL, ACC):
        if _has(sch, name) and not placed(sch.get_sblock(name)):
            sch.compute_at(sch.get_sblock(name), column, preserve_unit_loops=True)
    for block in reversed(sch.get_child_blocks(root)):
        if not sch.get(block).same_as(sch.get(out)) and not placed(block):
            sch.compute_at(block, row, preserve_unit_loops=True)


def schedule_rowwise_attention(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """``func`` with every stage computed per query row and head; ``None`` if not attention."""
    sch = s_tir.Schedule(func)
    out = _output(sch)
    if out is None:
        return None
    _rows(sch, out)
    return sch.mod["main"].with_attr(ROWWISE_ATTR, True)


def schedule_attention_kernels(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The row-wise schedule with micro-kernel matmuls; ``None`` if not attention, for an
    odd head dimension (or one above 64 that is not a multiple of 4), or under 4 tokens."""
    sch = s_tir.Schedule(func)
    out = _output(sch)
    if out is None:
        return None
    g = AttentionGeometry(*(int(x) for x in sch.get(out).annotations[GEOMETRY_ATTR]))
    tile = next((t for t in VALUE_TILES if g.head_dim % t == 0), None)
    whole = g.head_dim <= QK_ROW_MAX or g.head_dim % 4 == 0
    if tile is None or not whole or g.tokens < KEY_STEP:
        return None
    pv = _tile_row_times_values(sch, out, tile)
    _rows(sch, out)
    for producer, reduction in ROW_REDUCTIONS:  # one pass over the row, not two
        sch.reverse_compute_at(
            sch.get_sblock(reduction), sch.get_loops(sch.get_sblock(producer))[-1]
        )
    qk = _tile_scores(sch, g.head_dim)
    qk, pv = sch.get(qk), sch.get(pv)
    qkv = qk.reads[-1].source.name
    calls = {
        str(qk.annotations[MICRO_KERNEL_ATTR]): _scores_call(qk, g, qkv),
        pv_micro_kernel(tile): _values_call(pv, g, qkv, tile),
    }
    func = place_calls(sch.mod["main"], calls)
    return func.with_attr(ROWWISE_ATTR, True).with_attr(SCHEDULED_ATTR, True)


def _tile_row_times_values(sch: s_tir.Schedule, out, tile: int):
    """Value columns by ``tile`` (local accumulators), keys by 4: the annotated row × V step."""
    d0, d1 = sch.split(sch.get_loops(out)[2], [None, tile])
    unrolled = [d1]  # constant accumulator indices: registers
    stages = [TOTAL, TAIL] if _has(sch, TAIL) else []  # consumers first
    for name in stages:
        block = sch.get_sblock(name)
        sch.compute_at(block, d0, preserve_unit_loops=True)
        sch.set_scope(block, 0, "local")
        unrolled.append(sch.get_loops(block)[-1 if name == TOTAL else -2])
    acc = sch.get_sblock(ACC)
    sch.compute_at(acc, d0, preserve_unit_loops=True)
    *_, d, j = sch.get_loops(acc)
    j0, j1 = sch.split(j, [None, KEY_STEP])
    sch.reorder(j0, d, j1)
    sch.set_scope(acc, 0, "local")
    init = sch.decompose_reduction(acc, j0)
    unrolled.append(sch.get_loops(init)[-1])
    for loop in unrolled:
        sch.unroll(loop)
    return annotate_step(sch, d, pv_micro_kernel(tile))


def _has(sch: s_tir.Schedule, name: str) -> bool:
    try:
        sch.get_sblock(name)
    except Exception:  # noqa: BLE001 - no such block
        return False
    return True


def _tile_scores(sch: s_tir.Schedule, head_dim: int):
    """The annotated QKᵀ step: the whole row (every key) in one call when the head fits
    :data:`QK_ROW_MAX` bytes, else each score in steps of the head dimension."""
    scores = sch.get_sblock(SCORES)
    *_, j, c = sch.get_loops(scores)
    if head_dim <= QK_ROW_MAX:
        return annotate_step(sch, j, QK_ROW_MICRO_KERNEL)
    k_step = next(s for s in HEAD_STEPS if head_dim % s == 0)
    c0, c1 = sch.split(c, [None, k_step])
    sch.decompose_reduction(scores, c0)
    return annotate_step(sch, c1, micro_kernel_name(1, 1, k_step))


def _int(step: tirx.SBlock):
    """A literal of the step's index type (int64 iterators take ``T.int64`` literals)."""
    wide = str(step.iter_vars[0].var.ty) == "int64"
    return (lambda x: f"T.int64({x})") if wide else str


def _scores_call(step: tirx.SBlock, g: AttentionGeometry, qkv: str) -> str:
    """``scores[i, h, :] = q[i, h] · k[:, h]`` (one call per row), or
    ``scores[i, h, j] += q[i, h, c0·S : +S] · k[j, h, c0·S : +S]``."""
    name = str(step.annotations[MICRO_KERNEL_ATTR])
    lit = _int(step)
    names = iter_names(step)
    i, h = names[:2]
    row = name.startswith(QK_ROW_MICRO_KERNEL)
    j, c0 = (lit(0), lit(0)) if row else names[2:]
    k_step = g.head_dim if row else int(name.rsplit("_", 1)[1])
    base = f"{h} * {lit(g.head_stride)} + {c0} * {lit(k_step)}"
    q = f"T.address_of({qkv}[{lit(g.q_offset)} + {i} * {lit(g.row_stride)} + {base}])"
    k = f"T.address_of({qkv}[{lit(g.k_offset)} + {j} * {lit(g.row_stride)} + {base}])"
    acc = f"T.address_of({step.writes[0].source.name}[{i}, {h}, {j}])"
    tail = f"{g.row_stride}, {g.tokens}, {g.head_dim}" if row else "0, 1"
    return f'T.evaluate(T.call_extern("void", "{name}", {acc}, {q}, {k}, {tail}))'


def _values_call(step: tirx.SBlock, g: AttentionGeometry, qkv: str, tile: int) -> str:
    """``acc[i, h, d0·t : +t] += p[i, h, j0·4 : +4] · v[j0·4 : +4, h, d0·t : +t]``, t = ``tile``."""
    i, h, d0, j0 = iter_names(step)
    lit = _int(step)
    rows = []
    for r in range(KEY_STEP):
        key = f"({j0} * {lit(KEY_STEP)} + {lit(r)})"
        index = (
            f"{lit(g.v_offset)} + {key} * {lit(g.row_stride)} + {h} * {lit(g.head_stride)}"
            f" + {d0} * {lit(tile)}"
        )
        rows.append(f"T.address_of({qkv}[{index}])")
    acc = f"T.address_of({step.writes[0].source.name}[{i}, {h}, {d0} * {lit(tile)}])"
    probs = next(r.source.name for r in step.reads if r.source.name.startswith("softmax_int"))
    probs = f"T.address_of({probs}[{i}, {h}, {j0} * {lit(KEY_STEP)}])"
    args = ", ".join([acc, probs, *rows])
    return f'T.evaluate(T.call_extern("void", "{pv_micro_kernel(tile)}", {args}))'


# Every fused attention kernel: row-wise (memory), or row-wise on micro-kernels (speed).
RowwiseAttention = primfunc_pass(
    schedule_rowwise_attention, "mcuformer.RowwiseAttention", ROWWISE_ATTR
)
ScheduleAttention = primfunc_pass(
    schedule_attention_kernels, "mcuformer.ScheduleAttention", SCHEDULED_ATTR
)
