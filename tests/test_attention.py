"""Fused attention (q, k, v read in place from the qkv output) and the model I/O in the arena."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch
from tvm import relax, tirx

from tvm_mcuformer.codegen.tir_to_c import emit_c
from tvm_mcuformer.compiler import CompileOptions, compile_model, plan_model
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.lowering import TensorKind, get_pipeline
from tvm_mcuformer.lowering.kernels import STACK_ALLOC_LIMIT, lower_kernels
from tvm_mcuformer.models import PlainViT
from tvm_mcuformer.ops import quantize_multiplier
from tvm_mcuformer.ops.attention import (
    AttentionGeometry,
    attention_int,
    attention_int_ref,
)
from tvm_mcuformer.planner.verify import verify_plan
from tvm_mcuformer.training import export_pt2

from .conftest import host_run, load_c_kernels

# Strides that are not the plain [T, 3, H, dh] layout: heads interleaved with q/k/v.
GEOMETRY = AttentionGeometry(
    tokens=9, heads=3, head_dim=4, row_stride=40, head_stride=12, q_offset=0, k_offset=4,
    v_offset=8,
)  # fmt: skip
# The plain [T, 3, H, dh] layout with a class token (odd T); a head dimension of 30 (two
# value columns a step, two bytes of each score scalar); an odd one (no micro-kernels).
PLAIN_17 = AttentionGeometry(17, 2, 16, 96, 16, 0, 32, 64)
DIM_30 = AttentionGeometry(13, 4, 30, 360, 30, 0, 120, 240)
ODD_DIM = AttentionGeometry(8, 2, 5, 30, 5, 0, 10, 20)
# No tail (T a multiple of 4); fewer tokens than one step of 4 keys (no micro-kernels).
WHOLE_12 = AttentionGeometry(12, 2, 8, 48, 8, 0, 16, 32)
TINY_3 = AttentionGeometry(3, 2, 8, 48, 8, 0, 16, 32)
SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=10)


@pytest.mark.parametrize(
    "geometry",
    [GEOMETRY, PLAIN_17, DIM_30, ODD_DIM, WHOLE_12, TINY_3],
    ids=["T9", "T17", "dh30", "dh5", "T12", "T3"],
)
@pytest.mark.parametrize("mode", ["scheduled", "rowwise", "all_heads"])
def test_fused_attention_c_kernel_is_bit_exact(tmp_path, geometry, mode):
    """The generated C kernel (row-wise with micro-kernels, row-wise plain loops, every
    head's scores) equals the numpy twin."""
    rng = np.random.default_rng(3)
    qkv = rng.integers(-128, 128, geometry.tokens * geometry.row_stride).astype(np.int8)
    sm, ss = quantize_multiplier(0.004)
    om, os_ = quantize_multiplier(0.02)
    args = (geometry, sm, ss, 0.06, om, os_)
    bb = relax.BlockBuilder()
    x = relax.Var("qkv", relax.TensorType(qkv.shape, "int8"))
    with bb.function("main", [x]):
        out = bb.emit_te(lambda t: attention_int(t, *args), x, primfunc_name_hint="attention_int")
        bb.emit_func_output(out)
    pipeline = get_pipeline(
        build_vm=False,
        attention="all_heads" if mode == "all_heads" else "rowwise",
        schedule_kernels=mode == "scheduled",
    )
    funcs = {
        gv.name_hint: f for gv, f in pipeline(bb.get()).functions.items()
        if isinstance(f, tirx.PrimFunc)
    }  # fmt: skip
    (kernel,) = lower_kernels(funcs).values()
    T, H = geometry.tokens, geometry.heads
    rows = sum(ws.nbytes for ws in kernel.workspaces)
    # Row-wise: rows of T scores (int32, int8), exponents (uint16) and probabilities (int8);
    # otherwise every head's T×T scores and probabilities in workspaces.
    if mode == "all_heads":  # (matrices of at most STACK_ALLOC_LIMIT bytes stay C locals)
        assert rows >= sum(n for n in (4 * T * H * T, T * H * T) if n > STACK_ALLOC_LIMIT)
    else:
        assert rows <= (4 + 1 + 2 + 1) * T
    source = emit_c({kernel.name: kernel})
    micro_kernels = mode == "scheduled" and geometry.head_dim % 2 == 0 and T >= 4
    assert ("mcuformer_pv_4x" in source) == micro_kernels
    assert ("mcuformer_qk_row(" in source) == micro_kernels
    lib = load_c_kernels(source, tmp_path, "attn")
    ref = attention_int_ref(qkv, *args)
    out = np.zeros_like(ref)
    work = [np.zeros(ws.elements, ws.dtype) for ws in kernel.workspaces]
    arrays = [qkv, out, *work]
    getattr(lib, kernel.symbol)(*[a.ctypes.data_as(ctypes.c_void_p) for a in arrays])
    np.testing.assert_array_equal(out, ref)
    assert len(np.unique(ref)) > min(10, ref.size // 4)  # not a degenerate (saturated) case


@pytest.fixture(scope="module")
def plain_vit(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("plain") / "vit.pt2"
    return import_model(export_pt2(PlainViT(**SMALL).eval(), torch.zeros(1, 3, 32, 32), path))


def test_unbind_attention_fused_equals_unfused_bit_for_bit(plain_vit, tmp_path):
    """``unbind`` heads: one fused kernel, no head copies, less arena, same int8 outputs."""
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((8, 1, 3, 32, 32)).astype(np.float32)
    frames = rng.integers(-128, 128, (4, 1, 3, 32, 32)).astype(np.int8)
    outputs, arenas = {}, {}
    for mode in ("unfused", "all_heads", "rowwise"):
        artifact = compile_model(plain_vit, CompileOptions(calibration=calib, attention=mode))
        ops = [op["kernel"] for op in artifact.metadata["ops"]]
        fused = [k for k in ops if "attention_int" in k]
        assert len(fused) == (0 if mode == "unfused" else 1), ops
        if mode != "unfused":
            assert not any("transpose" in k or "strided_slice" in k for k in ops[3:]), ops
        arenas[mode] = artifact.metadata["memory"]["planned_arena_bytes"]
        path = artifact.write(tmp_path / f"{mode}.tar")
        outputs[mode] = host_run(path, tmp_path / mode, frames, np.int8)
    assert len(np.unique(outputs["unfused"])) > 5
    for mode in ("all_heads", "rowwise"):
        np.testing.assert_array_equal(outputs[mode], outputs["unfused"], err_msg=mode)
    assert arenas["rowwise"] < arenas["unfused"] and arenas["rowwise"] < arenas["all_heads"]


def test_input_in_arena_is_reused_and_verified(plain_vit):
    """The input is an arena tensor dead after the patch embedding; the verifier passes."""
    inside = plan_model(plain_vit, CompileOptions(quantize="int8-layout"))
    outside = plan_model(plain_vit, CompileOptions(quantize="int8-layout", io_in_arena=False))
    image = inside.program.inputs[0]
    assert image.root in inside.plan.offsets and image.root not in outside.plan.offsets
    first, last = inside.plan.model.lifetimes[image.root]
    assert first == 0 and last < len(inside.program.calls) - 1
    saved = outside.memory["required_sram_bytes"] - inside.memory["required_sram_bytes"]
    assert saved > image.nbytes // 2  # most of the image's bytes are reused by later tensors
    plan = inside.plan
    verify_plan(plan.model, plan.offsets, plan.arena_bytes, plan.alignment)
    kinds = {t["kind"] for t in inside.memory["tensors"]}
    assert {TensorKind.INPUT.value, TensorKind.OUTPUT.value} <= kinds
    live = plan.model.live_bytes_per_call()
    assert max(live) == plan.lower_bound_bytes <= plan.arena_bytes
