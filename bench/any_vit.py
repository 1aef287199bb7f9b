"""ViTs the project did not define, int8 on QEMU: agreement with float, device == host.

Every model of ``tests/vit_corpus.py`` (plain-torch idioms, a DeiT-style
distillation token, Hugging Face ``ViTForImageClassification`` with a small
random config) is trained 12 epochs on sklearn digits upsampled to 16×16,
exported with ``torch.export``, compiled int8 (128 calibration images) for
``mps2-an500``, built into firmware and run on QEMU over the 400 digits test
images beside the host build. Reports float and int8 top-1, int8 vs float
top-1 agreement and logits cosine (device outputs, dequantized), device ==
host, arena and instructions per inference. Writes ``bench/results/any_vit.json``
and prints a Markdown table.

    .venv/bin/python bench/any_vit.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from provenance import write_results
from tables import render

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import vit_corpus  # noqa: E402
from tvm_mcuformer.compiler import CompileOptions, compile_model  # noqa: E402
from tvm_mcuformer.micro import build_project, create_project, evaluate  # noqa: E402
from tvm_mcuformer.training import export_pt2  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "any_vit.json"
CALIBRATION = 128
IDIOMS = {
    "cls_index_tanh": "class token (expand + cat), qkv[0], scale after QKᵀ, tanh GELU, cls pool",
    "unbind_sdpa": "unbind + F.scaled_dot_product_attention, interpolated pos-embed, cls pool",
    "quick_gelu": "QuickGELU, scale before QKᵀ, mean pool",
    "relu_stem": "conv stem with ReLU and ReLU6, Hardswish MLP",
    "ln_no_affine": "LayerNorm without γ/β, SiLU MLP, split q/k/v",
    "deit": "DeiT: class + distillation tokens, averaged heads",
    "hf_vit": "transformers ViTForImageClassification (random init, small config)",
}


def run(name: str, work: Path) -> dict:
    start = time.time()
    x, _ = vit_corpus.digits_at(vit_corpus.SIDE, "train")
    xt, yt = vit_corpus.digits_at(vit_corpus.SIDE, "test")
    model = vit_corpus.trained(name)
    with torch.no_grad():
        ref = model(torch.from_numpy(xt)).numpy()
    pt2 = export_pt2(model, torch.from_numpy(xt[:1]), work / f"{name}.pt2")
    art = compile_model(pt2, CompileOptions(calibration=x[:CALIBRATION], board="mps2-an500"))
    tar = art.write(work / f"{name}.tar")
    project = create_project(work / name, tar, "baremetal", board="mps2-an500").root
    build_project(project)
    report = evaluate(project, xt, yt, progress=False)
    (out,) = art.metadata["outputs"]
    device = report["outputs"][out["name"]].reshape(len(xt), -1)
    logits = device.astype(np.float32) * out["quant"]["scale"]
    row = {
        "model": name,
        "idioms": IDIOMS[name],
        "parameters": sum(p.numel() for p in model.parameters()),
        **vit_corpus.compare(logits, ref, yt),
        "n": report["accuracy"]["n"],
        "device_equals_host": report["accuracy"]["device_equals_host"],
        "planned_arena_bytes": report["memory"]["planned_arena_bytes"],
        "instructions_per_inference": report["latency"]["instructions_per_inference"],
        "seconds": time.time() - start,
    }
    print(row, file=sys.stderr, flush=True)
    return row


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="any-vit-") as tmp:
        rows = [run(name, Path(tmp)) for name in vit_corpus.CORPUS]
    write_results(
        RESULTS,
        {
            "dataset": "sklearn digits upsampled to 16x16, 1397 train / 400 test",
            "training": f"{vit_corpus.EPOCHS} epochs, seed 0",
            "calibration": f"{CALIBRATION} training images, minmax",
            "board": "mps2-an500 (QEMU)",
            "rows": rows,
        },
    )
    print(render("any_vit"))


if __name__ == "__main__":
    main()
