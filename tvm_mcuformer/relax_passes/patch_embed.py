"""Relax pass: replace the int8 patch-embedding conv by the decomposed TIR kernel.

``DecomposePatchEmbedding(field)`` rewrites every ``R.nn.conv2d`` that is a
patch embedding —

* data and weight int8, ``out_dtype`` int32, layouts NCHW / OIHW / NCHW,
* kernel == stride == (P, P) with P ≥ 2, padding 0, dilation 1, groups 1,
* static shapes with H and W multiples of P —

into ``R.call_tir(patch_embed, (x, w), out_ty=int32 [N, O, H/P, W/P])``, the
PrimFunc of :func:`tvm_mcuformer.schedules.patch_embed.patch_embed_kernel`
added to the module (one per distinct geometry). With ``micro_kernels`` and a
constant weight, the kernel is
:func:`~tvm_mcuformer.schedules.patch_embed.patch_embed_dot_kernel` and the
weight constant is laid out for it at compile time (sub-field major, rows padded
to 4 bytes). Every other conv, and everything else, is left as it is. The result
is bit-identical to the conv.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.ir.expr import GenericConst

from ..schedules.patch_embed import (
    field_major_weight,
    patch_embed_dot_kernel,
    patch_embed_kernel,
)

CONV2D = tvm.ir.Op.get("relax.nn.conv2d")


def _static_shape(ty) -> tuple[int, ...] | None:
    values = getattr(ty.shape, "values", None) if isinstance(ty, relax.TensorType) else None
    if values is None:  # not a tensor, or a shape not known as an expression
        return None
    try:
        return tuple(int(d) for d in values)
    except TypeError:  # a symbolic dimension
        return None


def patch_size(call: relax.Call) -> int | None:
    """P when ``call`` is an int8 patch-embedding conv the kernel decomposes, else None."""
    if not isinstance(call, relax.Call) or not call.op.same_as(CONV2D):
        return None
    data, weight = call.args
    x_shape, w_shape = _static_shape(data.ty), _static_shape(weight.ty)
    attrs = call.attrs
    if x_shape is None or w_shape is None or len(x_shape) != 4 or len(w_shape) != 4:
        return None
    if (str(data.ty.dtype), str(weight.ty.dtype), str(attrs.out_dtype)) != (
        "int8",
        "int8",
        "int32",
    ):
        return None
    layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
    if layouts != ("NCHW", "OIHW", "NCHW") or int(attrs.groups) != 1:
        return None
    p = w_shape[2]
    strides = tuple(int(s) for s in attrs.strides)
    if p < 2 or w_shape[3] != p or strides != (p, p):
        return None
    if any(int(d) != 1 for d in attrs.dilation) or any(int(q) != 0 for q in attrs.padding):
        return None
    if x_shape[2] % p or x_shape[3] % p:
        return None
    return p


@relax.expr_functor.mutator
class _Decomposer(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, field: int, micro_kernels: bool) -> None:
        super().__init__(mod)
        self.field = field
        self.micro_kernels = micro_kernels
        self.kernels: dict[tuple, tvm.ir.GlobalVar] = {}

    def kernel(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...], p: int, dot: bool):
        key = (x_shape, w_shape, p, dot)
        if key not in self.kernels:
            build = patch_embed_dot_kernel if dot else patch_embed_kernel
            func = build(x_shape, w_shape, p, self.field)
            self.kernels[key] = self.builder_.add_func(func, "patch_embed")
        return self.kernels[key]

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = self.visit_expr_post_order(call)
        p = patch_size(call)
        if p is None:
            return call
        data, weight = call.args
        dot = self.micro_kernels and isinstance(weight, GenericConst)
        gvar = self.kernel(_static_shape(data.ty), _static_shape(weight.ty), p, dot)
        if dot:
            weight = relax.const(field_major_weight(weight.value.numpy(), self.field))
        return relax.call_tir(gvar, (data, weight), out_ty=call.ty)

    def run(self) -> tvm.IRModule:
        for gvar, func in list(self.builder_.get().functions.items()):
            if isinstance(func, relax.Function):
                self.builder_.update_func(gvar, self.visit_expr(func))
        return self.builder_.get()


@tvm.transform.module_pass(opt_level=0, name="mcuformer.DecomposePatchEmbedding")
class DecomposePatchEmbedding:
    """Rewrite int8 patch-embedding convs into the decomposed kernel (sub-fields ``field``²;
    on micro-kernels when ``micro_kernels`` and the weight is a constant)."""

    def __init__(self, field: int = 4, micro_kernels: bool = False) -> None:
        if field < 1:
            raise ValueError(f"field {field} must be positive")
        self.field = field
        self.micro_kernels = micro_kernels

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return _Decomposer(mod, self.field, self.micro_kernels).run()
