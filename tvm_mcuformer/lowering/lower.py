"""Run the ``mcuformer`` Relax pipeline and read ``main`` as a :class:`KernelProgram`.

Tensor names are unique and stable, made of the call index and the op kind
rather than Relax variable names: ``c3.matmul_int`` is the output of call 3
(a kernel named after its first fused op), ``c3.matmul_int.view1`` a reshape of
it, ``c3.matmul_int.ws.<buffer>`` one of call 3's workspaces, ``const<N>`` a
constant and the model's parameter names its inputs.
"""

from __future__ import annotations

import re

import tvm
from tvm import relax, tirx

from ..frontend.model import ImportedModel
from .kernels import lower_kernels
from .pipeline import get_pipeline
from .program import KernelCall, KernelProgram, Tensor, TensorKind


def _key(obj) -> int:
    return obj.__chandle__()


def op_kind(kernel: str) -> str:
    """``fused_matmul_int_add3`` → ``matmul_int_add``: the fused ops, no prefix or suffix."""
    return re.sub(r"\d+$", "", kernel.removeprefix("fused_")) or kernel


def _shape_dtype(ty) -> tuple[tuple[int, ...], str]:
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise ValueError(f"only static-shape tensors can be deployed, got {ty}")
    return tuple(int(d) for d in ty.shape.values), str(ty.dtype)


class _Reader:
    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.by_expr: dict[int, Tensor] = {}
        self.calls: list[tuple[str, list[Tensor], int]] = []
        self.views: dict[Tensor, int] = {}

    def new(self, name, ty, kind, view_of=None, value=None) -> Tensor:
        shape, dtype = _shape_dtype(ty)
        t = Tensor(len(self.tensors), name, shape, dtype, kind, view_of, value)
        self.tensors.append(t)
        return t

    def tensor_of(self, expr) -> Tensor:
        key = _key(expr)
        if key in self.by_expr:
            return self.by_expr[key]
        if isinstance(expr, tvm.ir.expr.GenericConst):
            t = self.new(
                f"const{len(self.tensors)}", expr.ty, TensorKind.CONSTANT, value=expr.value.numpy()
            )
            self.by_expr[key] = t
            return t
        raise ValueError(f"unsupported argument in lowered main: {type(expr).__name__} {expr}")

    def binding(self, var, value) -> None:
        if isinstance(value, relax.Call) and value.op.name == "relax.call_tir":
            gvar, args = value.args[0], value.args[1]
            ins = [self.tensor_of(a) for a in args.fields]
            out_tys = list(value.ty_args)
            if len(out_tys) != 1 or isinstance(out_tys[0], relax.TupleType):
                raise ValueError(
                    f"{gvar.name_hint}: kernels with several outputs are not supported"
                )
            name = f"c{len(self.calls)}.{op_kind(gvar.name_hint)}"
            out = self.new(name, out_tys[0], TensorKind.ACTIVATION)
            self.by_expr[_key(var)] = out
            self.calls.append((gvar.name_hint, [*ins, out], 1))
        elif isinstance(value, relax.Call) and value.op.name == "relax.reshape":
            src = self.tensor_of(value.args[0])
            root = src.root
            self.views[root] = self.views.get(root, 0) + 1
            name = f"{root.name}.view{self.views[root]}"
            self.by_expr[_key(var)] = self.new(name, var.ty, src.kind, view_of=src)
        elif isinstance(value, relax.Var | relax.DataflowVar):
            self.by_expr[_key(var)] = self.tensor_of(value)
        elif isinstance(value, relax.Tuple):
            self.by_expr[_key(var)] = [self.tensor_of(f) for f in value.fields]
        else:
            raise ValueError(
                f"operator not lowered to a kernel: {var.name} = {value}; "
                "it has no TIR legalization in TVM 0.27"
            )


def lower(
    model: ImportedModel, pipeline: tvm.transform.Pass | None = None
) -> tuple[tvm.IRModule, KernelProgram]:
    """Lower ``model`` to fused TIR kernels and read the call list.

    ``pipeline`` defaults to :func:`~tvm_mcuformer.lowering.pipeline.get_pipeline`
    without quantization or VM build. Returns the lowered Relax module (kept as
    text in the artifact) and the program.
    """
    pipeline = pipeline or get_pipeline(build_vm=False)
    lowered = pipeline(model.mod)
    main = lowered["main"]
    reader = _Reader()
    inputs = []
    for param in main.params:
        t = reader.new(param.name, param.ty, TensorKind.INPUT)
        reader.by_expr[_key(param)] = t
        inputs.append(t)
    for block in main.body.blocks:
        for b in block.bindings:
            reader.binding(b.var, b.value)
    result = main.body.body
    outs = reader.by_expr.get(_key(result)) if isinstance(result, relax.Var) else None
    if outs is None and isinstance(result, relax.Tuple):
        outs = [reader.tensor_of(f) for f in result.fields]
    outputs = outs if isinstance(outs, list) else [outs]
    for out in outputs:
        root = out.root
        if root.kind != TensorKind.ACTIVATION:
            raise ValueError(f"model output {out.name} is a {root.kind.value}, not computed")
        root.kind = TensorKind.OUTPUT
    _mark_views(reader.tensors)

    prim_funcs = {
        gv.name_hint: f for gv, f in lowered.functions.items() if isinstance(f, tirx.PrimFunc)
    }
    used = {name for name, _, _ in reader.calls}
    kernels = lower_kernels({n: f for n, f in prim_funcs.items() if n in used})
    calls = []
    for name, args, n_out in reader.calls:
        kernel = kernels[name]
        ws = [_workspace(reader, args[-1].name, w) for w in kernel.workspaces]
        calls.append(KernelCall(kernel, args, n_out, ws, kernel.token_overwrite))
    program = KernelProgram(reader.tensors, calls, inputs, outputs, kernels)
    return lowered, program


def _workspace(reader: _Reader, output: str, ws) -> Tensor:
    t = Tensor(
        len(reader.tensors),
        f"{output}.ws.{ws.name}",
        (ws.elements,),
        ws.dtype,
        TensorKind.WORKSPACE,
    )
    reader.tensors.append(t)
    return t


def _mark_views(tensors: list[Tensor]) -> None:
    """A view takes the kind of its storage root (e.g. a reshape of the output)."""
    for t in tensors:
        if t.view_of is not None:
            t.kind = t.root.kind
