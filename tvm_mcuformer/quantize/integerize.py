"""Rewrite a calibrated float Relax ``main`` into an integer-only int8 Relax module.

The rewrite walks ``main``'s bindings in order and keeps, for every float
variable, one of

* :class:`Q` — an int8 tensor with its scale (real = scale · q);
* :class:`Acc` — an int32 accumulator whose scale may differ per channel; it is
  *requantized* to int8 (multiplier + shift computed here, at compile time) only
  when something other than a bias add consumes it;
* :class:`Const` — a float constant (weights, biases), quantized where it is used.

Scalar multiplies/divides (the attention scale, before or after QKᵀ) cost
nothing: they change the scale, not the data. Layout ops, ``take``,
``strided_slice`` and ``split`` (views or copies, no arithmetic) run unchanged
on int8 and keep their input's scale; ``concat`` brings every part (constants
such as class and distillation tokens included) to its output's scale. ReLU,
ReLU6 and ``clip`` clamp at the input's scale. The graph's structure never
depends on weight values (the architecture search plans memory on untrained
weights). Matmul/conv become
int8×int8→int32 with per-output-channel symmetric weight scales and the bias
quantized to the accumulator's scale (activations are symmetric, so there is
no zero point to fold). Composite functions from
:mod:`tvm_mcuformer.relax_passes.recognize` become one fused integer GeLU,
LayerNorm or softmax kernel. Anything else is refused with the operator's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import tvm
from tvm import relax, te
from tvm.ir.expr import GenericConst

from .. import ops
from ..frontend.torch_export import SOURCE_ATTR
from ..relax_passes.recognize import GELU, HARDSWISH, LAYER_NORM, SILU, SOFTMAX
from .attention import (
    apply_layout,
    is_identity,
    match_scores,
    match_values,
    merged_order,
)
from .config import QuantConfig

QMAX = 127
LAYOUT_OPS = {
    "relax.reshape",
    "relax.permute_dims",
    "relax.strided_slice",
    "relax.take",
    "relax.squeeze",
    "relax.expand_dims",
    "relax.broadcast_to",
    "relax.flatten",
}


@dataclass
class Q:
    expr: relax.Expr
    scale: float
    # Layout views: the tensor they index and, per element, the flat element of it.
    root: relax.Expr | None = None
    index: np.ndarray | None = None


@dataclass
class Acc:
    expr: relax.Expr
    scale: np.ndarray  # per channel along ``axis`` (or one element)
    axis: int
    attn: tuple | None = None  # ("scores", Scores) | ("pv", Scores, m, shift, scale, v_off)


@dataclass
class Const:
    value: np.ndarray


def _key(expr) -> int:
    return expr.__chandle__()


def _requantize_axis(
    acc: te.Tensor, m: te.Tensor, shift: te.Tensor, axis: int, min_shift: int
) -> te.Tensor:
    """Per-channel requantize along any axis (``ops.requantize`` broadcasts on the last)."""
    return te.compute(
        acc.shape,
        lambda *i: ops.requantize_expr(acc[i], m[i[axis]], shift[i[axis]], "int8", min_shift),
        name="requantize",
    )


def _requantize_axis_hi_word(
    acc: te.Tensor, m: te.Tensor, rounding: te.Tensor, axis: int
) -> te.Tensor:
    """Per-channel high-word requantize along any axis (``rounding`` = 2^(shift − 33))."""
    return te.compute(
        acc.shape,
        lambda *i: ops.requantize_hi_word_expr(acc[i], m[i[axis]], rounding[i[axis]]),
        name="requantize",
    )


def _weight_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per slice along ``axis``."""
    reduce = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    amax = np.abs(w).max(axis=reduce, keepdims=True)
    scale = np.where(amax > 0, amax / QMAX, 1.0)
    q = np.clip(np.round(w / scale), -QMAX, QMAX).astype(np.int8)
    return q, scale.reshape(-1)


class _Integerizer:
    def __init__(self, mod: tvm.IRModule, ranges: dict[int, float], config: QuantConfig):
        self.mod = mod
        self.ranges = ranges
        self.config = config
        self.bb = relax.BlockBuilder()
        self.env: dict[int, Q | Acc | Const] = {}
        # Attention stages found so far, by root expression (see :mod:`.attention`).
        self.attn: dict[int, tuple] = {}
        self.fused: dict[int, relax.Expr] = {}

    # -- values ---------------------------------------------------------------
    def scale_of(self, var) -> float:
        return self.ranges[_key(var)] / QMAX

    def value(self, expr) -> Q | Acc | Const:
        if isinstance(expr, GenericConst):
            return Const(expr.value.numpy())
        try:
            return self.env[_key(expr)]
        except KeyError:
            raise ValueError(f"unsupported expression {expr}") from None

    def q(self, expr, var_for_scale) -> Q:
        """``expr`` as int8; an accumulator is requantized to ``var_for_scale``'s range."""
        v = self.value(expr)
        if isinstance(v, Q):
            return self.merged_attention(v)
        if isinstance(v, Acc):
            out = self.materialize(v, self.scale_of(var_for_scale))
            if var_for_scale.same_as(expr):
                # Requantized to its own range: every later consumer (the q, k and v slices
                # of one qkv accumulator) shares this int8 tensor instead of the int32 one.
                self.env[_key(expr)] = out
            return out
        raise ValueError("a constant where an activation was expected")

    def materialize(self, acc: Acc, out_scale: float) -> Q:
        m, shift = ops.quantize_multipliers(np.asarray(acc.scale, np.float64) / out_scale)
        if m.size == 1:
            expr = self.bb.emit_te(ops.requantize, acc.expr, int(m[0]), int(shift[0]))
        elif int(shift.min()) >= ops.HI_WORD_MIN_SHIFT:  # store 2^(shift − 33): see the op
            mc, rc = relax.const(m.astype(np.int32)), relax.const(ops.hi_word_rounding(shift))
            expr = self.bb.emit_te(_requantize_axis_hi_word, acc.expr, mc, rc, acc.axis)
        else:
            mc, sc = relax.const(m.astype(np.int32)), relax.const(shift.astype(np.int32))
            expr = self.bb.emit_te(_requantize_axis, acc.expr, mc, sc, acc.axis, int(shift.min()))
        if acc.attn is not None and m.size == 1:
            self.attn[_key(expr)] = (*acc.attn, int(m[0]), int(shift[0]), out_scale)
        return Q(expr, out_scale)

    # -- attention: views of one qkv tensor, fused (see .attention) -----------
    def index_of(self, q: Q) -> tuple[relax.Expr, np.ndarray] | None:
        """The root ``q`` views and its element index array (``None``: not tracked)."""
        if not self.config.fuse_attention:
            return None
        if q.index is not None:
            return q.root, q.index
        shape = [int(d) for d in q.expr.ty.shape.values]
        return q.expr, np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)

    def merged_attention(self, v: Q) -> Q:
        """``v`` itself, or the fused attention kernel when ``v`` is its merged-heads output."""
        tracked = self.index_of(v) if v.index is not None else None
        info = self.attn.get(_key(tracked[0])) if tracked else None
        if info is None or info[0] != "pv":
            return v
        _, scores, score_m, score_shift, score_scale, v_offset, out_m, out_shift, _ = info
        order = merged_order(scores.heads, scores.tokens, scores.head_dim)
        if not np.array_equal(tracked[1].ravel(), order.ravel()):
            return v
        key = _key(tracked[0])
        if key not in self.fused:
            flat = self.bb.emit(relax.op.reshape(scores.qkv, [scores.qkv_size]))
            geometry = scores.geometry(v_offset)  # not a TE argument: bound here

            def fused(qkv: te.Tensor) -> te.Tensor:
                return ops.attention_int(
                    qkv, geometry, score_m, score_shift, score_scale, out_m, out_shift
                )

            self.fused[key] = self.bb.emit_te(fused, flat, primfunc_name_hint="attention_int")
        shape = list(tracked[1].shape)
        fused = self.fused[key]
        same = shape == [int(d) for d in fused.ty.shape.values]
        out = fused if same else self.bb.emit(relax.op.reshape(fused, shape))
        return Q(out, v.scale, fused, np.arange(tracked[1].size).reshape(shape))

    # -- ops ------------------------------------------------------------------
    def bind(self, var, call) -> Q | Acc | Const | list:
        if isinstance(call, relax.Call) and isinstance(call.op, relax.GlobalVar):
            return self.composite(var, call)
        if isinstance(call, relax.Tuple):
            return [self.value(f) for f in call.fields]
        if isinstance(call, relax.TupleGetItem):
            return self.value(call.tuple_value)[call.index]
        if not isinstance(call, relax.Call):
            return self.value(call)
        name = call.op.name
        if name in LAYOUT_OPS:
            return self.layout(var, call, self.value(call.args[0]))
        if name == "relax.split":
            return self.split(var, call)
        if name == "relax.concat":
            return self.concat(var, call)
        if name in ("relax.nn.relu", "relax.clip"):
            return self.clip(call)
        args = [self.value(a) for a in call.args]
        if name == "relax.nn.conv2d":
            return self.conv2d(call, args)
        if name == "relax.matmul":
            return self.matmul(call, args)
        if name == "relax.add":
            return self.add(var, call, args)
        if name in ("relax.multiply", "relax.divide"):
            return self.rescale(name, call, args)
        if name == "relax.mean":
            return self.mean(var, call)
        raise ValueError(f"operator {name} has no integer kernel")

    def layout(self, var, call, x) -> Q | Const:
        if isinstance(x, Const):
            return Const(_const_layout(call, x.value))
        # A layout op moves values without changing them: an accumulator the file gives no
        # range for (a TFLite op's matmul before its reshape) takes its output's range.
        arg = call.args[0]
        xq = self.q(arg, arg if _key(arg) in self.ranges else var)
        tracked = self.index_of(xq)
        src = xq.expr
        if call.op.name == "relax.reshape" and tracked is not None:
            if np.array_equal(tracked[1].ravel(), np.arange(tracked[1].size)):
                src = tracked[0]  # a reshape of a reshape: one view of the root
                shape = [int(d) for d in src.ty.shape.values]
                if shape == [int(d) for d in var.ty.shape.values]:
                    return Q(src, xq.scale, src, np.arange(tracked[1].size).reshape(shape))
        new = relax.Call(call.op, [src, *call.args[1:]], call.attrs, call.ty_args)
        out = Q(self.bb.emit(new), xq.scale)
        if tracked is not None:
            try:
                out.root, out.index = tracked[0], apply_layout(call, tracked[1])
            except ValueError:
                pass  # not modelled: this view is not tracked (no fusion through it)
        return out

    def parts(self, expr) -> list:
        """The values of a tuple argument (inline or bound to a variable)."""
        if isinstance(expr, relax.Tuple):
            return [self.value(f) for f in expr.fields]
        return list(self.value(expr))

    def split(self, var, call) -> list[Q]:
        """``split`` as one ``strided_slice`` per part, each keeping the input's scale."""
        xq = self.q(call.args[0], call.args[0])
        axis = int(call.attrs.axis)
        begin, parts = 0, []
        for ty in var.ty.fields:
            size = int(ty.shape.values[axis])
            sliced = relax.op.strided_slice(xq.expr, [axis], [begin], [begin + size])
            parts.append(Q(self.bb.emit(sliced), xq.scale))
            begin += size
        return parts

    def concat(self, var, call) -> Q:
        """Every part (activation or constant) at the output's scale, then ``concat``."""
        out_scale = self.scale_of(var)
        parts = []
        for v in self.parts(call.args[0]):
            if isinstance(v, Const):
                q = np.clip(np.round(v.value / out_scale), -QMAX, QMAX).astype(np.int8)
                parts.append(relax.const(q))
            elif isinstance(v, Acc):
                parts.append(self.materialize(v, out_scale).expr)
            elif v.scale == out_scale:
                parts.append(v.expr)
            else:
                m, shift = ops.quantize_multiplier(v.scale / out_scale)
                parts.append(self.bb.emit_te(ops.requantize, v.expr, m, shift))
        expr = self.bb.emit(relax.op.concat(parts, axis=int(call.attrs.axis)))
        return Q(expr, out_scale)

    def clip(self, call) -> Q:
        """ReLU / ReLU6 / ``clip``: integer bounds at the input's scale."""
        xq = self.q(call.args[0], call.args[0])
        if call.op.name == "relax.nn.relu":
            lo, hi = 0.0, math.inf
        else:
            lo, hi = (float(a.value) for a in call.args[1:3])
        lo_q = None if lo == -math.inf else math.ceil(round(lo / xq.scale, 6))
        hi_q = None if hi == math.inf else math.floor(round(hi / xq.scale, 6))
        return Q(self.bb.emit_te(ops.clip_int, xq.expr, lo_q, hi_q), xq.scale)

    def conv2d(self, call, args) -> Acc:
        x, w = args
        if not isinstance(w, Const):
            raise ValueError("conv2d with a computed weight is not supported")
        attrs = call.attrs
        if int(attrs.groups) != 1 or any(int(d) != 1 for d in attrs.dilation):
            raise ValueError("only conv2d with groups = 1 and dilation 1 is supported")
        xq = self.q(call.args[0], call.args[0])
        wq, ws = _weight_per_channel(w.value, axis=0)
        stride = tuple(int(s) for s in attrs.strides)
        padding = tuple(int(p) for p in attrs.padding)
        conv = relax.op.nn.conv2d(
            xq.expr, relax.const(wq), strides=stride, padding=padding, out_dtype="int32"
        )
        acc = self.bb.emit(conv)
        return Acc(acc, xq.scale * ws, axis=1)

    def matmul(self, call, args) -> Acc:
        a, b = args
        aq = self.q(call.args[0], call.args[0])
        if isinstance(b, Const):
            wq, ws = _weight_per_channel(b.value, axis=-1)
            if wq.ndim == 2:  # stored N×K, the order the dense kernel reads it
                acc = self.bb.emit_te(ops.dense_int, aq.expr, relax.const(wq.T.copy()))
            else:
                acc = self.bb.emit_te(ops.matmul_int, aq.expr, relax.const(wq))
            return Acc(acc, aq.scale * ws, axis=-1)
        bq = self.q(call.args[1], call.args[1])
        acc = self.bb.emit_te(ops.matmul_int, aq.expr, bq.expr)
        return Acc(acc, np.array([aq.scale * bq.scale]), axis=-1, attn=self.attention_stage(aq, bq))

    def attention_stage(self, a: Q, b: Q) -> tuple | None:
        """``("scores", ..)`` for q·kᵀ or ``("pv", ..)`` for softmax·v read from one qkv."""
        ta, tb = self.index_of(a), self.index_of(b)
        if ta is None or tb is None:
            return None
        info = self.attn.get(_key(ta[0]))
        if info is not None and info[0] == "probs":
            _, scores, score_m, score_shift, score_scale = info
            shape = (scores.heads, scores.tokens, scores.tokens)
            if is_identity(ta[1], shape) and tb[0].same_as(scores.qkv):
                v_offset = match_values(scores, tb[1])
                if v_offset is not None:
                    return ("pv", scores, score_m, score_shift, score_scale, v_offset)
            return None
        if ta[0].same_as(tb[0]):
            size = int(np.prod([int(d) for d in ta[0].ty.shape.values], dtype=np.int64))
            scores = match_scores(ta[0], size, ta[1], tb[1])
            return None if scores is None else ("scores", scores)
        return None

    def add(self, var, call, args) -> Q | Acc:
        a, b = args
        if isinstance(a, Const):
            a, b = b, a
            lhs, rhs = call.args[1], call.args[0]
        else:
            lhs, rhs = call.args[0], call.args[1]
        if isinstance(a, Acc) and isinstance(b, Const):
            return self.bias_add(a, b.value)
        out_scale = self.scale_of(var)
        aq = self.q(lhs, lhs)
        if isinstance(b, Const):
            amax = float(np.abs(b.value).max()) or 1.0
            bq = Q(
                relax.const(
                    np.clip(np.round(b.value / (amax / QMAX)), -QMAX, QMAX).astype(np.int8)
                ),
                amax / QMAX,
            )
        else:
            bq = self.q(rhs, rhs)
        expr = self.bb.emit_te(ops.add_int, aq.expr, bq.expr, aq.scale, bq.scale, out_scale)
        return Q(expr, out_scale)

    def bias_add(self, acc: Acc, bias: np.ndarray) -> Acc:
        """``acc + bias`` in int32, ``bias`` (any constant that broadcasts, a scalar too) at
        the accumulator's per-channel scale."""
        scale = acc.scale[0]
        if acc.scale.size > 1:
            rank = len(acc.expr.ty.shape.values) if acc.axis >= 0 else max(bias.ndim, -acc.axis)
            shape = [1] * rank
            shape[acc.axis] = -1
            scale = acc.scale.reshape(shape)
        bq = np.round(bias / scale)
        if np.abs(bq).max(initial=0) >= 2**31:
            raise ValueError("a bias overflows int32 at its accumulator scale")
        expr = self.bb.emit(relax.op.add(acc.expr, relax.const(bq.astype(np.int32))))
        return Acc(expr, acc.scale, acc.axis)

    def rescale(self, name, call, args) -> Q | Acc:
        x, c = args
        if not isinstance(c, Const) or c.value.size != 1 or c.value.item() <= 0:
            raise ValueError(f"{name} is supported only by a positive scalar constant")
        factor = c.value.item() if name == "relax.multiply" else 1.0 / c.value.item()
        if isinstance(x, Q):
            return replace(x, scale=x.scale * factor)
        if isinstance(x, Acc):
            return replace(x, scale=x.scale * factor)
        raise ValueError(f"{name} of two constants was not folded")

    def mean(self, var, call) -> Q:
        axes = [int(a) for a in call.attrs.axis]
        if len(axes) != 1 or bool(call.attrs.keepdims):
            raise ValueError("mean is supported over one axis without keepdims")
        xq = self.q(call.args[0], call.args[0])
        out_scale = self.scale_of(var)
        expr = self.bb.emit_te(ops.mean_int, xq.expr, axes[0], xq.scale, out_scale)
        return Q(expr, out_scale)

    def composite(self, var, call) -> Q:
        func = self.mod[call.op]
        kind = func.attrs["Composite"] if func.attrs and "Composite" in func.attrs else None
        consts = {
            _key(p): self.value(a).value
            for p, a in zip(func.params, call.args, strict=True)
            if isinstance(self.value(a), Const)
        }
        act = next(a for a in call.args if not isinstance(self.value(a), Const))
        xq = self.q(act, act)
        if kind == GELU and self.config.gelu == "float":
            out_scale = self.scale_of(var)
            return Q(self.bb.emit_te(ops.gelu_float, xq.expr, xq.scale, out_scale), out_scale)
        if kind in (GELU, SILU):
            out_scale = self.scale_of(var)
            slope = ops.GELU_SIGMOID_SLOPE if kind == GELU else 1.0
            return Q(self.gelu_int(xq, out_scale, slope), out_scale)
        if kind == HARDSWISH:
            out_scale = self.scale_of(var)
            offset, lo, hi = _hardswish_constants(func, consts)
            s = xq.scale
            expr = self.bb.emit_te(
                ops.hardswish_int,
                xq.expr,
                round(offset / s),
                round(lo / s),
                round(hi / s),
                s,
                out_scale,
            )
            return Q(expr, out_scale)
        if kind == SOFTMAX:
            op = ops.softmax_int if self.config.softmax == "int" else ops.softmax_float
            out = Q(self.bb.emit_te(op, xq.expr, xq.scale), ops.SOFTMAX_OUT_SCALE)
            self.note_probs(xq, out)
            return out
        if kind == LAYER_NORM:
            gamma, beta, eps = _layer_norm_constants(func, consts)
            out_scale = self.scale_of(var)
            if self.config.layernorm == "int":
                g, b = ops.layernorm_int_params(gamma, beta, out_scale)
                expr = self.bb.emit_te(
                    ops.layernorm_int,
                    xq.expr,
                    relax.const(g),
                    relax.const(b),
                    eps,
                    xq.scale,
                    iterations=self.config.ln_iterations,
                    affine_bounds=(int(np.abs(g).max()), int(np.abs(b).max())),
                )
            else:
                expr = self.bb.emit_te(
                    ops.layernorm_float,
                    xq.expr,
                    relax.const(gamma.astype(np.float32)),
                    relax.const(beta.astype(np.float32)),
                    eps,
                    xq.scale,
                    out_scale,
                )
            return Q(expr, out_scale)
        raise ValueError(f"call of {call.op.name_hint} (composite {kind}) is not supported")

    def gelu_int(self, xq: Q, out_scale: float, slope: float) -> relax.Expr:
        """The integer ``x · σ(slope · x)``: a table of it (``config.tables``) or the formula."""
        if self.config.tables:
            table = ops.int8_table(ops.gelu_int_ref, xq.scale, out_scale, slope)
            return self.bb.emit_te(
                ops.lookup_int8, xq.expr, relax.const(table), "gelu_int",
                primfunc_name_hint="gelu_int",
            )  # fmt: skip
        return self.bb.emit_te(ops.gelu_int, xq.expr, xq.scale, out_scale, slope)

    def note_probs(self, scores: Q, probs: Q) -> None:
        """Record ``probs`` as attention probabilities if ``scores`` is a whole q·kᵀ."""
        tracked = self.index_of(scores)
        info = self.attn.get(_key(tracked[0])) if tracked else None
        if info is None or info[0] != "scores" or self.config.softmax != "int":
            return
        _, s, score_m, score_shift, _ = info
        if is_identity(tracked[1], (s.heads, s.tokens, s.tokens)):
            self.attn[_key(probs.expr)] = ("probs", s, score_m, score_shift, scores.scale)

    # -- driver ---------------------------------------------------------------
    def run(self) -> tuple[tvm.IRModule, list[float], list[float]]:
        main = self.mod["main"]
        params = []
        for p in main.params:
            shape = [int(d) for d in p.ty.shape.values]
            qp = relax.Var(p.name, relax.TensorType(shape, "int8"))
            params.append(qp)
            self.env[_key(p)] = Q(qp, self.scale_of(p))
        with self.bb.function("main", params):
            with self.bb.dataflow():
                bindings = [b for block in main.body.blocks for b in block.bindings]
                for i, b in enumerate(bindings):
                    try:
                        self.env[_key(b.var)] = self.bind(b.var, b.value)
                    except ValueError as err:
                        raise ValueError(
                            f"int8: {err}, at {_where(main, bindings, i)}; give that layer an op "
                            "with an integer form (see docs/architecture.md) or compile with "
                            "--quantize none to keep float"
                        ) from None
                result = main.body.body
                fields = _result_vars(main, result)
                outs = [self.q(f, f) for f in fields]
                out = self.bb.emit_output(
                    relax.Tuple([o.expr for o in outs]) if len(outs) > 1 else outs[0].expr
                )
            self.bb.emit_func_output(out)
        in_scales = [self.scale_of(p) for p in main.params]
        return self.bb.finalize(), in_scales, [o.scale for o in outs]


def _where(main: relax.Function, bindings: list, i: int) -> str:
    """Where binding ``i`` sits: the model's module path when the frontend recorded it.

    An operator the frontend expanded into several bindings is named by the next
    binding that has a recorded source (the one that finishes the operator).
    """
    sources = main.attrs[SOURCE_ATTR] if main.attrs and SOURCE_ATTR in main.attrs else {}
    here = f"Relax variable {bindings[i].var.name}"
    for b in bindings[i:]:
        if b.var.name in sources:
            return f"{sources[b.var.name]}, {here}"
    return here


def _result_vars(main, result) -> list:
    if isinstance(result, relax.Tuple):
        return list(result.fields)
    for block in main.body.blocks:
        for b in block.bindings:
            if b.var.same_as(result) and isinstance(b.value, relax.Tuple):
                return list(b.value.fields)
    return [result]


def _const_layout(call, value: np.ndarray) -> np.ndarray:
    name = call.op.name
    if name == "relax.reshape":
        return value.reshape([int(d) for d in call.args[1].values])
    if name == "relax.permute_dims":
        axes = call.attrs.axes
        return np.transpose(value, None if axes is None else [int(a) for a in axes])
    raise ValueError(f"{name} of a constant is not supported")


def _const_arg(call, consts: dict[int, np.ndarray]) -> np.ndarray | None:
    """The constant argument of a call inside a composite (literal or bound parameter)."""
    for a in call.args:
        if isinstance(a, GenericConst):
            return a.value.numpy()
        if _key(a) in consts:
            return consts[_key(a)]
    return None


def _hardswish_constants(func, consts: dict[int, np.ndarray]) -> tuple[float, float, float]:
    """``a, lo, hi`` of a hard-swish composite ``x · clip(x + a, lo, hi)`` (clips merged)."""
    offset, lo, hi = 0.0, -math.inf, math.inf
    for b in (b for block in func.body.blocks for b in block.bindings):
        call = b.value
        if call.op.name == "relax.add":
            a = _const_arg(call, consts)
            if a.size != 1:
                raise ValueError("x * clip(x + a, lo, hi) is supported for a scalar a")
            offset = float(a.reshape(-1)[0])
        elif call.op.name == "relax.clip":
            lo = max(lo, float(call.args[1].value))
            hi = min(hi, float(call.args[2].value))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("x * clip(x + a, lo, hi) needs finite bounds to have an integer form")
    return offset, lo, hi


def _layer_norm_constants(func, consts: dict[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    """γ, β and ε of a LayerNorm composite, fused or decomposed, found by role.

    Decomposed form ``(x−mean)·rsqrt(var+ε)·γ+β``: ε is the constant added
    under the (r)sqrt, γ the constant of the multiply, β the constant of the
    other add. A form without γ or β gets ones or zeros.
    """
    bindings = [b for block in func.body.blocks for b in block.bindings]

    for b in bindings:
        if isinstance(b.value, relax.Call) and b.value.op.name == "relax.nn.layer_norm":
            gamma, beta = (consts[_key(a)] for a in b.value.args[1:3])
            return gamma, beta, float(b.value.attrs.epsilon)
    calls = [b for b in bindings if isinstance(b.value, relax.Call)]
    roots = [b.value.args[0] for b in calls if b.value.op.name in ("relax.rsqrt", "relax.sqrt")]
    eps_add = next(b for b in calls if any(b.var.same_as(r) for r in roots))
    eps = _const_arg(eps_add.value, consts)
    gamma = beta = None
    for b in calls:
        if b.value.op.name == "relax.multiply" and gamma is None:
            gamma = _const_arg(b.value, consts)
        elif b.value.op.name == "relax.add" and b is not eps_add and beta is None:
            beta = _const_arg(b.value, consts)
    width = int(func.params[0].ty.shape.values[-1])
    gamma = np.ones(width, np.float32) if gamma is None else gamma
    beta = np.zeros(width, np.float32) if beta is None else beta
    return gamma, beta, float(np.asarray(eps).reshape(-1)[0])


def integerize(
    mod: tvm.IRModule, ranges: dict[int, float], config: QuantConfig
) -> tuple[tvm.IRModule, list[float], list[float]]:
    """Return the integer module and the scales of its inputs and outputs."""
    return _Integerizer(mod, ranges, config).run()
