"""Post-training int8 quantization: pattern recognition, integer rewrite, accuracy, flash."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch
import tvm
from torch import nn

from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.frontend.model import ImportedModel
from tvm_mcuformer.models import ViTConfig, build_vit
from tvm_mcuformer.quantize import QuantConfig, quantize_model
from tvm_mcuformer.relax_passes.recognize import GELU, LAYER_NORM, SOFTMAX, recognize_all

from .conftest import host_run

SMALL = ViTConfig(
    img_size=8,
    patch_size=4,
    in_chans=1,
    num_classes=10,
    embed_dim=16,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
)


def _composites(mod) -> list[str]:
    """The composite kind of every call site in ``main``."""
    kinds = []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            op = getattr(b.value, "op", None)
            if isinstance(op, tvm.ir.GlobalVar):
                attrs = mod[op].attrs
                if attrs is not None and "Composite" in attrs:
                    kinds.append(str(attrs["Composite"]))
    return sorted(kinds)


def _relax_of(module: nn.Module, shape=(1, 1, 8, 8)) -> ImportedModel:
    from tvm.relax.frontend.torch import from_exported_program

    ep = torch.export.export(module.eval(), (torch.zeros(shape),))
    return ImportedModel.from_module(from_exported_program(ep, keep_params_as_input=False))


@pytest.mark.parametrize("gelu", ["gelu", "quick"])
def test_recognizes_gelu_layernorm_softmax_from_torch(gelu):
    cfg = ViTConfig(**{**SMALL.__dict__, "gelu": gelu})
    kinds = _composites(recognize_all(_relax_of(build_vit(cfg)).mod))
    # Per block: 2 LayerNorms, 1 GeLU, 1 softmax; plus the final LayerNorm.
    assert kinds.count(LAYER_NORM) == 5 and kinds.count(GELU) == 2 and kinds.count(SOFTMAX) == 2


def test_recognizes_the_erf_gelu_form_from_onnx(tmp_path):
    path = tmp_path / "vit.onnx"
    torch.onnx.export(
        build_vit(SMALL).eval(),
        (torch.zeros(1, 1, 8, 8),),
        str(path),
        dynamo=False,
        opset_version=17,
    )
    mod = import_model(path).mod
    assert "R.erf" in mod.script()
    kinds = _composites(recognize_all(mod))
    assert kinds.count(GELU) == 2 and kinds.count(LAYER_NORM) == 5


class DecomposedLayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, dim))
        self.bias = nn.Parameter(torch.linspace(-0.2, 0.2, dim))

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        d = x - mu
        var = (d * d).mean(-1, keepdim=True)
        return d * torch.rsqrt(var + 1e-5) * self.weight + self.bias


def test_decomposed_layernorm_becomes_one_integer_kernel():
    model = _relax_of(DecomposedLayerNorm(16), shape=(1, 4, 16))
    assert _composites(recognize_all(model.mod)) == [LAYER_NORM]
    samples = np.random.RandomState(0).randn(32, 1, 4, 16).astype("float32")
    q = quantize_model(model, samples, progress=False)
    script = q.mod.script()
    assert "layernorm_int" in script and "float32" not in script
    # The integer LayerNorm follows the float one within a few output steps.
    exe = tvm.compile(q.mod, tvm.target.Target({"kind": "llvm"}), relax_pipeline="mcuformer")
    vm = tvm.relax.VirtualMachine(exe, tvm.cpu())
    x = samples[0]
    xq = q.inputs[0].quantize(x)
    got = vm["main"](tvm.runtime.tensor(xq)).numpy().astype(np.float32) * q.outputs[0].scale
    ref = DecomposedLayerNorm(16)(torch.from_numpy(xq * q.inputs[0].scale)).detach().numpy()
    assert np.abs(got - ref).max() < 4 * q.outputs[0].scale


def _vm_top1(model: ImportedModel, x: np.ndarray, y: np.ndarray) -> float:
    exe = tvm.compile(model.mod, tvm.target.Target({"kind": "llvm"}), relax_pipeline="mcuformer")
    vm = tvm.relax.VirtualMachine(exe, tvm.cpu())
    spec = model.inputs[0]
    hits = 0
    for xi, yi in zip(x, y, strict=True):
        xi = xi[None]
        if spec.dtype == "int8":
            xi = spec.quantize(xi)
        hits += int(vm["main"](tvm.runtime.tensor(xi)).numpy().argmax() == yi)
    return hits / len(y)


def test_integer_only_model_keeps_float_accuracy(digits_vit):
    x, _ = load_split("digits", "train")
    xt, yt = load_split("digits", "test")
    imported = import_model(digits_vit.pt2)
    q = quantize_model(imported, x[:256, None], progress=False)
    script = q.mod.script()
    assert "float32" not in script, "the integer module must hold no float tensor"
    for kernel in ("gelu_int", "layernorm_int", "attention_int", "dense_int", "R.nn.conv2d"):
        assert kernel in script
    int8_top1 = _vm_top1(q, xt, yt)
    assert int8_top1 >= digits_vit.float_top1 - 0.02, (int8_top1, digits_vit.float_top1)


def test_generated_integer_c_equals_relax_vm_bit_for_bit(digits_vit, tmp_path):
    x, _ = load_split("digits", "train")
    xt, _ = load_split("digits", "test")
    q = quantize_model(import_model(digits_vit.pt2), x[:128, None], progress=False)
    tar = compile_model(q, CompileOptions(quantize="none")).write(tmp_path / "q.tar")
    xq = q.inputs[0].quantize(xt[:100, None])
    host = host_run(tar, tmp_path, xq, np.int8)
    exe = tvm.compile(q.mod, tvm.target.Target({"kind": "llvm"}), relax_pipeline="mcuformer")
    vm = tvm.relax.VirtualMachine(exe, tvm.cpu())
    ref = np.stack([vm["main"](tvm.runtime.tensor(v)).numpy().ravel() for v in xq])
    np.testing.assert_array_equal(host, ref)
    assert len(np.unique(ref.argmax(1))) > 5


def test_int8_weights_take_one_byte_per_parameter(digits_vit, tmp_path):
    x, _ = load_split("digits", "train")
    art = compile_model(
        digits_vit.pt2, CompileOptions(calibration=x[:64, None], quant=QuantConfig())
    )
    params = sum(p.numel() for p in digits_vit.model.parameters())
    weights = art.metadata["memory"]["weight_bytes"]
    # int8 weights + int32 biases and per-channel requantization constants, never 4x.
    assert params <= weights < 1.6 * params, (weights, params)
    assert art.metadata["inputs"][0]["dtype"] == "int8"
    assert art.metadata["inputs"][0]["quant"]["scale"] > 0
    assert art.metadata["quantization"]["integer_only"] is True
    kernels = art.files["codegen/host/src/mcuformer_kernels.c"]
    assert "float" not in kernels and "expf" not in kernels and "sqrtf" not in kernels


def test_int8_without_calibration_is_a_clear_error(digits_vit, tmp_path, capsys):
    out = tmp_path / "m.tar"
    assert cli_main(["compile", str(digits_vit.pt2), "-o", str(out)]) == 2
    assert "--calib" in capsys.readouterr().err
    assert not out.exists()
    assert cli_main(["compile", str(digits_vit.pt2), "-o", str(out), "--calib", "mnist5k"]) == 2
    assert "calibrate with the data the model was trained on" in capsys.readouterr().err
    assert not out.exists()


def test_compile_cli_int8_writes_quant_metadata(digits_vit, tmp_path):
    out = tmp_path / "m.tar"
    code = cli_main(
        [
            "compile",
            str(digits_vit.pt2),
            "-o",
            str(out),
            "--calib",
            "digits",
            "--calib-samples",
            "64",
            "--ln-iterations",
            "2",
        ]
    )
    assert code == 0
    with tarfile.open(out) as tar:
        meta = json.loads(tar.extractfile("metadata.json").read())
        assert "src/relax_int8.txt" in tar.getnames()
    assert meta["quantization"]["calibration_samples"] == 64
    assert meta["quantization"]["layernorm_iterations"] == 2
