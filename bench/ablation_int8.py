"""Ablation of the integer approximations on the MNIST-5k demo model.

Trains the demo ViT (DEMO_CONFIG, DEMO_RECIPE, seed 0), then measures top-1 on
the 1,000 MNIST-5k test images for: the float model (PyTorch); int8 with the
float reference GeLU/LayerNorm/softmax; int8 with each integer approximation
alone; all integer; and the integer LayerNorm with 1..5 Newton iterations.
The int8 variants run the same Relax → TIR kernels as the firmware, on the
host (Relax VM). Writes ``bench/results/ablation_int8.json`` and prints a
Markdown table.

    .venv/bin/python bench/ablation_int8.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import tvm
from provenance import write_results
from tables import render

import tvm_mcuformer  # noqa: F401 - registers the mcuformer pipeline
from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.models import DEMO_CONFIG, build_vit
from tvm_mcuformer.quantize import QuantConfig, quantize_model
from tvm_mcuformer.training import DEMO_RECIPE, evaluate_top1, export_pt2, train

RESULTS = Path(__file__).parent / "results" / "ablation_int8.json"
F = "float"
VARIANTS = {
    "int8, float GeLU/LN/softmax": QuantConfig(gelu=F, layernorm=F, softmax=F),
    "int8, integer GeLU only": QuantConfig(layernorm=F, softmax=F),
    "int8, integer LayerNorm only": QuantConfig(gelu=F, softmax=F),
    "int8, integer softmax only": QuantConfig(gelu=F, layernorm=F),
    "int8, all integer (default)": QuantConfig(),
    **{
        f"int8, all integer, LN {k} iteration(s)": QuantConfig(ln_iterations=k) for k in range(1, 6)
    },
}


def vm_top1(model, x: np.ndarray, y: np.ndarray) -> float:
    exe = tvm.compile(model.mod, tvm.target.Target({"kind": "llvm"}), relax_pipeline="mcuformer")
    vm = tvm.relax.VirtualMachine(exe, tvm.cpu())
    spec = model.inputs[0]
    xq = spec.quantize(x)
    hits = sum(
        int(vm["main"](tvm.runtime.tensor(xi[None])).numpy().argmax() == yi)
        for xi, yi in zip(xq, y, strict=True)
    )
    return hits / len(y)


def main() -> None:
    torch.set_num_threads(1)
    x, y = load_split("mnist5k", "train")
    xt, yt = load_split("mnist5k", "test")
    torch.manual_seed(0)
    model = train(build_vit(DEMO_CONFIG), x, y, seed=0, progress=False, **DEMO_RECIPE)
    rows = {"float (PyTorch)": evaluate_top1(model, xt, yt)}
    pt2 = export_pt2(model, torch.from_numpy(xt[:1]), RESULTS.parent / "demo_model.pt2")
    imported = import_model(pt2)
    for name, config in VARIANTS.items():
        start = time.time()
        q = quantize_model(imported, x[:256, None], config, progress=False)
        rows[name] = vm_top1(q, xt, yt)
        print(f"{name}: {rows[name]:.4f} ({time.time() - start:.0f} s)", file=sys.stderr)
    pt2.unlink()
    write_results(
        RESULTS,
        {
            "dataset": "MNIST-5k subset, stratified 4000/1000, seed 0 (SE ±0.6 pp)",
            "model": DEMO_CONFIG.__dict__,
            "calibration": "256 training images, minmax",
            "top1": rows,
        },
    )
    print(render("ablation_int8"))


if __name__ == "__main__":
    main()
