"""Arena ablation: patch-embedding decomposition × token overwrite, at 16 and 49 tokens.

For the demo ViT (dim 64, depth 2, 4 heads, MLP ratio 2, QuickGELU) with patch 7
(16 tokens) and patch 4 (49 tokens), int8 as deployed, compiles the model four
ways and records the planned arena, the liveness lower bound, TVM's own
StaticPlanBlockMemory total on the same lowered module, the every-tensor-its-
own-buffer total and the paper's M. Memory does not depend on the trained
weights, so the models are untrained (calibrated on 64 MNIST-5k images).
Writes ``bench/results/memory_ablation.json`` and prints a Markdown table.

    .venv/bin/python bench/memory_ablation.py
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import torch
from provenance import write_results
from tables import render

from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.models import DEMO_CONFIG, build_vit
from tvm_mcuformer.training import export_pt2

RESULTS = Path(__file__).parent / "results" / "memory_ablation.json"
KEYS = (
    "planned_arena_bytes",
    "lower_bound_bytes",
    "tvm_static_plan_bytes",
    "naive_bytes",
    "paper_m_bytes",
)


def main() -> None:
    torch.manual_seed(0)
    x, _ = load_split("mnist5k", "train")
    rows = []
    for patch in (7, 4):
        cfg = dataclasses.replace(DEMO_CONFIG, patch_size=patch)
        with tempfile.TemporaryDirectory() as tmp:
            pt2 = export_pt2(build_vit(cfg), torch.zeros(1, 1, 28, 28), Path(tmp) / "m.pt2")
            model = import_model(pt2)
        for decompose in (False, True):
            for overwrite in (False, True):
                opts = CompileOptions(
                    calibration=x[:64, None], decompose_patch=decompose, token_overwrite=overwrite
                )
                memory = compile_model(model, opts).metadata["memory"]
                row = {
                    "tokens": cfg.num_tokens,
                    "decomposition": decompose,
                    "token_overwrite": overwrite,
                    **{k: memory[k] for k in KEYS},
                }
                rows.append(row)
                print(row, file=sys.stderr)
    write_results(RESULTS, {"model": DEMO_CONFIG.__dict__, "rows": rows})
    print(render("memory_ablation"))


if __name__ == "__main__":
    main()
