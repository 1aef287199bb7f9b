"""Patch-embedding decomposition: the TIR kernel, its plain C, the Relax pass, a whole ViT.

The decomposed kernel must equal ``conv2d_int_ref`` (stride = kernel = P, no
padding) bit for bit: random int8 and the extremes (all −128; 127 against −128),
P = 4, 7, 8, 10 with sub-fields of 4 (and of 2 and of P), C = 1 and 3, O = 8–32.
Its only allocation, the O int32 partial sums, becomes one workspace of O·4
bytes. Relax's own int8 conv2d legalization (what the integerizer now emits) is
checked bit-exact too. Whole file: about 25 s on 2 cores.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_mcuformer.codegen.tir_to_c import emit_c
from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.lowering import get_pipeline
from tvm_mcuformer.lowering.kernels import STACK_ALLOC_LIMIT, lower_kernels
from tvm_mcuformer.ops import conv2d_int_ref
from tvm_mcuformer.quantize import quantize_model
from tvm_mcuformer.relax_passes.patch_embed import DecomposePatchEmbedding
from tvm_mcuformer.schedules.patch_embed import (
    field_major_weight,
    patch_embed_dot_kernel,
    patch_embed_kernel,
)

from .conftest import load_c_kernels

TARGET = tvm.target.Target({"kind": "llvm"})


def _vm(mod: tvm.IRModule, decompose: bool) -> relax.VirtualMachine:
    """``mod`` on the Relax VM: the registered ``mcuformer`` pipeline, or it without the pass."""
    pipeline = tvm.relax.pipeline.get_pipeline("mcuformer", decompose_patch=decompose)
    return relax.VirtualMachine(tvm.compile(mod, TARGET, relax_pipeline=pipeline), tvm.cpu())


def _cases(x_shape, w_shape, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random int8 (x, w), then all −128, all 127, and x = 127 against w = −128."""
    rng = np.random.default_rng(seed)
    random = [rng.integers(-128, 128, shape, dtype=np.int8) for shape in (x_shape, w_shape)]
    extremes = [(-128, -128), (127, 127), (127, -128)]
    full = [(np.full(x_shape, a, np.int8), np.full(w_shape, b, np.int8)) for a, b in extremes]
    return [tuple(random), *full]


@pytest.mark.parametrize(
    ("patch", "field", "chans", "outs"),
    [
        (4, 4, 3, 8),
        (7, 4, 3, 16),
        (8, 4, 1, 32),
        (10, 4, 3, 24),
        (7, 2, 1, 8),
        (8, 2, 3, 16),
        (10, 2, 3, 8),
        (7, 7, 3, 8),
        (10, 10, 1, 32),
    ],
)
def test_kernel_equals_conv_reference(patch, field, chans, outs):
    x_shape, w_shape = (2, chans, 2 * patch, 3 * patch), (outs, chans, patch, patch)
    func = patch_embed_kernel(x_shape, w_shape, patch, field)
    lib = tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), TARGET)
    for x, w in _cases(x_shape, w_shape, seed=patch * 100 + field):
        y = tvm.runtime.tensor(np.zeros((2, outs, 2, 3), np.int32))
        lib["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w), y)
        ref = conv2d_int_ref(x, w, (patch, patch), (0, 0))
        np.testing.assert_array_equal(y.numpy(), ref)


@pytest.mark.parametrize(
    ("patch", "field", "outs"), [(4, 4, 8), (7, 4, 16), (10, 4, 24), (8, 2, 32)]
)
def test_partial_sums_are_one_workspace_of_o_int32(patch, field, outs):
    func = patch_embed_kernel((1, 3, 2 * patch, 2 * patch), (outs, 3, patch, patch), patch, field)
    workspaces = lower_kernels({"pe": func})["pe"].workspaces
    if outs * 4 <= STACK_ALLOC_LIMIT:  # small enough to stay a C local on the stack
        assert workspaces == ()
    else:
        (ws,) = workspaces
        assert ws.dtype == "int32" and ws.nbytes == outs * 4


def test_plain_c_kernel_equals_conv_reference(tmp_path):
    """lower_kernels + emit_c + host cc, with the workspace passed as a pointer."""
    patch, outs = 7, 16
    x_shape, w_shape = (1, 3, 14, 21), (outs, 3, patch, patch)
    kernels = lower_kernels({"pe": patch_embed_kernel(x_shape, w_shape, patch, 4)})
    source = emit_c(kernels)
    assert "float" not in source and "double" not in source
    kernel = getattr(load_c_kernels(source, tmp_path, "pe"), kernels["pe"].symbol)
    for x, w in _cases(x_shape, w_shape, seed=7):
        y = np.zeros((1, outs, 2, 3), np.int32)
        partial = np.full(outs, 0x5A5A5A5A, np.int32)  # garbage: the kernel must zero it
        kernel(*[a.ctypes.data_as(ctypes.c_void_p) for a in (x, w, y, partial)])
        np.testing.assert_array_equal(y, conv2d_int_ref(x, w, (patch, patch), (0, 0)))


@pytest.mark.parametrize(
    ("patch", "field", "chans", "outs"),
    [(7, 4, 1, 16), (8, 4, 3, 24), (6, 3, 1, 8), (4, 4, 3, 9), (10, 4, 3, 16)],
)
def test_micro_kernel_form_equals_conv_reference(tmp_path, patch, field, chans, outs):
    """The micro-kernel form (gathered sub-field rows, field-major weight; edge sub-fields,
    row padding, odd O) as host C equals the conv: the portable micro-kernel path."""
    x_shape, w_shape = (1, chans, 2 * patch, 3 * patch), (outs, chans, patch, patch)
    kernels = lower_kernels({"pe": patch_embed_dot_kernel(x_shape, w_shape, patch, field)})
    source = emit_c(kernels)
    assert "mcuformer_dot_1x" in source
    kernel = getattr(load_c_kernels(source, tmp_path, "pe"), kernels["pe"].symbol)
    for x, w in _cases(x_shape, w_shape, seed=patch + field):
        y = np.zeros((1, outs, 2, 3), np.int32)
        wf = field_major_weight(w, field)
        work = [np.full(ws.elements, 0x5A, ws.dtype) for ws in kernels["pe"].workspaces]
        kernel(*[a.ctypes.data_as(ctypes.c_void_p) for a in (x, wf, y, *work)])
        np.testing.assert_array_equal(y, conv2d_int_ref(x, w, (patch, patch), (0, 0)))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "patch"),
    [
        ((1, 3, 15, 16), (8, 3, 4, 4), 4),  # H not a multiple of P
        ((1, 3, 16, 18), (8, 3, 4, 4), 4),  # W not a multiple of P
        ((1, 3, 16, 16), (8, 1, 4, 4), 4),  # channels differ
        ((1, 3, 16, 16), (8, 3, 4, 4), 8),  # weight is not P×P
    ],
)
def test_kernel_rejects_shapes_that_are_not_whole_patches(x_shape, w_shape, patch):
    with pytest.raises(ValueError):
        patch_embed_kernel(x_shape, w_shape, patch)


def _conv_module(x_shape, convs) -> tvm.IRModule:
    """``main(x)`` returning a tuple of convs; each is ``(weight, conv2d kwargs)``."""
    x = relax.Var("x", relax.TensorType(x_shape, "int8"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            ys = [bb.emit(relax.op.nn.conv2d(x, relax.const(w), **kw)) for w, kw in convs]
            out = bb.emit_output(relax.Tuple(ys))
        bb.emit_func_output(out)
    return bb.finalize()


def _calls(mod: tvm.IRModule) -> list[str]:
    names = []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            if isinstance(b.value, relax.Call) and isinstance(b.value.op, tvm.ir.Op):
                op = b.value.op.name
                names.append(b.value.args[0].name_hint if op == "relax.call_tir" else op)
    return names


def test_pass_rewrites_exactly_the_patch_convs():
    rng = np.random.default_rng(3)
    w4 = rng.integers(-128, 128, (8, 3, 4, 4), dtype=np.int8)
    w3 = rng.integers(-128, 128, (8, 3, 3, 3), dtype=np.int8)
    i32 = {"out_dtype": "int32"}
    convs = [
        (w4, {"strides": 4, **i32}),  # patch embedding: rewritten
        (w4, {"strides": 4, **i32}),  # same geometry: the same kernel
        (w3, {"strides": 3, **i32}),  # P = 3: rewritten with its own kernel
        (w4, {"strides": 2, **i32}),  # stride ≠ kernel
        (w4, {"strides": 4, "padding": 1, **i32}),  # padded
        (w3, {"strides": 1, "padding": 1, **i32}),  # ordinary 3×3 conv
        (w4, {"strides": 4}),  # int8 out_dtype
    ]
    mod = _conv_module((1, 3, 24, 24), convs)
    out = DecomposePatchEmbedding(4)(mod)
    calls = _calls(out)
    assert calls[:3] == ["patch_embed", "patch_embed", "patch_embed1"]
    assert calls[3:] == ["relax.nn.conv2d"] * 4
    # The VM gives the same tensors with and without the rewrite (and equals numpy).
    x = rng.integers(-128, 128, (1, 3, 24, 24), dtype=np.int8)
    results = []
    for decompose in (False, True):
        results.append([t.numpy() for t in _vm(mod, decompose)["main"](tvm.runtime.tensor(x))])
    for (w, kw), plain, decomposed in zip(convs, *results, strict=True):
        np.testing.assert_array_equal(plain, decomposed)
        if kw.get("out_dtype") == "int32":
            stride = (kw["strides"],) * 2
            ref = conv2d_int_ref(x, w, stride, (kw.get("padding", 0),) * 2)
            np.testing.assert_array_equal(plain, ref)


def test_int8_vit_is_identical_with_and_without_decomposition(digits_vit):
    x, _ = load_split("digits", "train")
    xt, _ = load_split("digits", "test")
    q = quantize_model(import_model(digits_vit.pt2), x[:64, None], progress=False)
    assert "R.nn.conv2d" in q.mod.script()
    xq = q.inputs[0].quantize(xt[:64, None])
    outputs = []
    for decompose in (False, True):
        lowered = get_pipeline(decompose_patch=decompose, build_vm=False)(q.mod)
        assert ("patch_embed" in lowered.script()) == decompose
        vm = _vm(q.mod, decompose)
        outputs.append(np.stack([vm["main"](tvm.runtime.tensor(v)).numpy().ravel() for v in xq]))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert len(np.unique(outputs[0].argmax(1))) > 5
