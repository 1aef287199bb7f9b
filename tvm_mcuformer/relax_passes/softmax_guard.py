"""Drop the fully-masked-row guard that ``F.scaled_dot_product_attention`` puts after softmax.

TVM imports SDPA as ``softmax(s)`` followed by
``where(not any(s != -inf, axis=-1), 0, softmax(s))``: rows whose every score is
−inf become zeros instead of NaN. A guard whose scores come from finite inputs
without an additive ``-inf`` mask can never fire, and an int8 score is always
finite, so on the int8 path the guard is the identity: this pass replaces it by
the softmax it wraps (it matches only the guard's exact shape and constants).
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import GenericConst
from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard


def _guard_pattern():
    scores = wildcard()
    soft = is_op("relax.nn.softmax")(scores)
    neg_inf = is_const()
    finite = is_op("relax.logical_not")(is_op("relax.equal")(scores, neg_inf))
    any_finite = is_op("relax.astype")(is_op("relax.max")(is_op("relax.astype")(finite)))
    masked_row = is_op("relax.logical_not")(any_finite)
    zero = is_const()
    guard = is_op("relax.where")(masked_row, is_op("relax.full_like")(soft, zero), soft)
    return guard, soft, neg_inf, zero


def _value(expr) -> np.ndarray:
    return expr.value.numpy() if isinstance(expr, GenericConst) else expr.data.numpy()


def RemoveSoftmaxGuard() -> tvm.transform.Pass:  # noqa: N802 - TVM pass naming
    """The pass: ``where(all(s == -inf), 0, softmax(s))`` → ``softmax(s)`` in every function."""
    guard, soft, neg_inf, zero = _guard_pattern()

    def rewrite(call, matches):
        inf, z = _value(matches[neg_inf]), _value(matches[zero])
        if inf.size == 1 and float(inf) == -math.inf and z.size == 1 and float(z) == 0.0:
            return matches[soft]
        return call

    @tvm.transform.module_pass(opt_level=0, name="mcuformer.RemoveSoftmaxGuard")
    def remove(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        out = tvm.IRModule(dict(mod.functions.items()))
        for gv, func in mod.functions.items():
            if isinstance(func, relax.Function):
                out[gv] = rewrite_call(guard, rewrite, func)
        return relax.transform.DeadCodeElimination()(out)

    return remove
