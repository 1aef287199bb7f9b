"""Fold everything in ``main`` that does not depend on its inputs into constants.

User models compute tensors from weights alone: a class token ``expand``-ed to
the batch, position embeddings concatenated or interpolated to the token grid,
attention masks built from ``arange``/``where`` (Hugging Face), weights
transposed for a matmul. TVM's ``FoldConstant`` folds only some of them. This
pass evaluates every input-independent tensor binding of ``main`` at once (one
Relax VM build on the host), binds each to its value, inlines the constants
into their uses (``CanonicalizeBindings``) and drops what became dead, so the
integer rewrite sees constants where the model sees parameters. Reshapes and
transposes of constants are left as they are (:data:`LEFT_AS_IS`): a model
with nothing else to fold costs no build.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

# Left to the integer rewrite, which applies them to constants itself: a model whose
# only input-independent calls are these (weights transposed for a matmul) needs no build.
LEFT_AS_IS = {"relax.reshape", "relax.permute_dims"}


def _key(expr) -> int:
    return expr.__chandle__()


def _bindings(main: relax.Function) -> list:
    return [b for block in main.body.blocks for b in block.bindings]


def _input_independent(main: relax.Function) -> tuple[list, list[int]]:
    """The bindings that need no input (in order), and the positions of tensor calls among them."""
    dependent = {_key(p) for p in main.params}
    bindings, folded = [], []
    for i, b in enumerate(_bindings(main)):
        if any(_key(v) in dependent for v in relax.analysis.free_vars(b.value)):
            dependent.add(_key(b.var))
            continue
        bindings.append(b)
        value = b.value
        if isinstance(b.var.ty, relax.TensorType) and isinstance(value, relax.Call):
            if getattr(value.op, "name", None) not in LEFT_AS_IS:
                folded.append(i)
    return bindings, folded


def _evaluate(mod: tvm.IRModule) -> dict[int, np.ndarray]:
    """``{position in main's bindings: value}`` of the input-independent tensor calls."""
    # Outside dataflow blocks every bound tensor can be returned; positions are kept.
    main = relax.transform.ToNonDataflow()(mod)["main"]
    bindings, folded = _input_independent(main)
    if not folded:
        return {}
    outputs = [_bindings(main)[i].var for i in folded]
    body = relax.SeqExpr([relax.BindingBlock(bindings)], relax.Tuple(outputs))
    probe = tvm.IRModule(
        {"main": relax.Function([], body, ret_ty=relax.TupleType([v.ty for v in outputs]))}
    )
    for gv, f in mod.functions.items():
        if gv.name_hint != "main":
            probe[gv] = f
    exe = tvm.compile(probe, tvm.target.Target({"kind": "llvm"}))
    values = relax.VirtualMachine(exe, tvm.cpu())["main"]()
    return {pos: values[j].numpy() for j, pos in enumerate(folded)}


def FoldInputIndependent() -> tvm.transform.Pass:  # noqa: N802 - TVM pass naming
    """The pass: input-independent tensors of ``main`` become constants."""

    @tvm.transform.module_pass(opt_level=0, name="mcuformer.FoldInputIndependent")
    def fold(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        values = _evaluate(mod)
        if not values:
            return mod
        main = mod["main"]
        blocks, pos = [], 0
        for block in main.body.blocks:
            new = []
            for b in block.bindings:
                value = values.get(pos)
                new.append(b if value is None else relax.VarBinding(b.var, relax.const(value)))
                pos += 1
            kind = (
                relax.DataflowBlock
                if isinstance(block, relax.DataflowBlock)
                else relax.BindingBlock
            )
            blocks.append(kind(new))
        out = tvm.IRModule(dict(mod.functions.items()))
        out["main"] = relax.Function(
            main.params, relax.SeqExpr(blocks, main.body.body), main.ret_ty, attrs=main.attrs
        )
        seq = [relax.transform.CanonicalizeBindings(), relax.transform.DeadCodeElimination()]
        return tvm.transform.Sequential(seq)(out)

    return fold
