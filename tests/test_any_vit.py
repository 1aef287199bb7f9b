"""ViTs the project did not define compile int8, agree with float, and run on QEMU.

Every model of :mod:`tests.vit_corpus` (plain-torch idioms, a DeiT-style
distillation token, Hugging Face ``ViTForImageClassification``) is trained for
a few epochs on sklearn digits upsampled to 16×16 (random weights give flat
logits, where top-1 agreement means nothing), exported with ``torch.export``,
quantized with 128 calibration images and compiled to C. The host build of that
C runs the 400 digits test images; its int8 top-1 is compared with the float
model's top-1 on the same images (agreement) and the logits' cosine similarity
is reported. The class-token/``qkv[0]``/tanh-GELU model, the DeiT and the
Hugging Face model also run on QEMU ``mps2-an500``, whose outputs must equal
the host build's bit for bit. About 90 s on an idle 2-core machine.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.micro import build_project, create_project, evaluate
from tvm_mcuformer.tensor_spec import TensorSpec
from tvm_mcuformer.training import export_pt2

from . import vit_corpus
from .conftest import host_run

CALIBRATION = 128
ON_QEMU = {"cls_index_tanh", "hf_vit", "deit"}
# Top-1 agreement of int8 with float over the 400 test images, per model.
MIN_AGREEMENT = 0.95


@pytest.mark.parametrize("name", list(vit_corpus.CORPUS))
def test_corpus_vit_int8_agrees_with_float(name, tmp_path, record_property):
    x, y = vit_corpus.digits_at(vit_corpus.SIDE, "train")
    xt, yt = vit_corpus.digits_at(vit_corpus.SIDE, "test")
    torch.set_num_threads(1)
    model = vit_corpus.trained(name)
    with torch.no_grad():
        ref = model(torch.from_numpy(xt)).numpy()

    pt2 = export_pt2(model, torch.from_numpy(xt[:1]), tmp_path / f"{name}.pt2")
    opts = CompileOptions(calibration=x[:CALIBRATION])
    art = compile_model(pt2, opts)
    tar = art.write(tmp_path / f"{name}.tar")
    assert art.metadata["quantization"]["integer_only"] is True
    kernels = art.files["codegen/host/src/mcuformer_kernels.c"]
    assert "float" not in kernels, "the int8 model must hold no float kernel"

    (inp,), (out,) = art.metadata["inputs"], art.metadata["outputs"]
    xq = TensorSpec(inp["name"], tuple(inp["shape"]), "int8", inp["quant"]["scale"]).quantize(xt)
    host = host_run(tar, tmp_path, xq, np.int8)
    summary = vit_corpus.compare(host.astype(np.float32) * out["quant"]["scale"], ref, yt)
    record_property("int8_vs_float", json.dumps(summary))
    print(name, summary)
    assert summary["float_top1"] > 0.6, f"{name} did not train: {summary}"
    assert summary["top1_agreement"] >= MIN_AGREEMENT, summary
    assert summary["logits_cosine"] > 0.95, summary

    if name not in ON_QEMU:
        return
    project = create_project(tmp_path / "proj", tar, "baremetal", board="mps2-an500").root
    build_project(project)
    report = evaluate(project, xq[:64], yt[:64], progress=False)
    acc = report["accuracy"]
    assert acc["device_equals_host"] is True and acc["mismatched_samples"] == 0
    device = report["outputs"][out["name"]].reshape(64, -1)
    np.testing.assert_array_equal(device, host[:64])


def test_op_without_integer_form_names_op_and_module(tmp_path, capsys):
    torch.manual_seed(0)
    model = vit_corpus.CorpusViT("index", torch.nn.Tanh).eval()
    x, _ = vit_corpus.digits_at(vit_corpus.SIDE, "train")
    pt2 = export_pt2(model, torch.from_numpy(x[:1]), tmp_path / "tanh.pt2")
    np.savez(tmp_path / "calib.npz", x=x[:8])
    out = tmp_path / "tanh.tar"
    code = cli_main(["compile", str(pt2), "-o", str(out), "--calib", str(tmp_path / "calib.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    # The op, the module path torch.export kept, and what to do.
    assert "relax.tanh" in err and "blocks.0.mlp.1 (aten.tanh)" in err
    assert "--quantize none" in err
