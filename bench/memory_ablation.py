"""Memory ablation at the paper's scale: each technique on and off, 224-px ViTs and the demo.

Models (random weights: memory does not depend on them), int8 integer layout
(``quantize="int8-layout"``: the kernels and plan of a calibrated int8 model):

* ``vit224-e192``: :class:`~tvm_mcuformer.models.PlainViT`, 224 px, patch 16
  (196 tokens), embed 192, depth 6, 3 heads, MLP ratio 2, 1,000 classes
  (``unbind`` heads, exact GELU, mean pooling);
* ``vit224-e128``: the same with embed 128, depth 8, 4 heads, MLP ratio 4;
* ``vit224-e192-lowrank``: ``vit224-e192`` with ρ = 0.5 MLP linears (rank 96);
* ``demo-16tok`` / ``demo-49tok``: the demo's TinyViT (28 px MNIST, dim 64,
  depth 2, 4 heads) with patch 7 and patch 4.

Techniques: token overwrite, attention (``unfused``: head split/merge copies;
``all_heads``: one fused kernel reading q, k, v in place, every head's scores;
``rowwise``: the same, one query row of one head at a time), the model input
and output in the arena, the patch-embedding decomposition. ``today`` is the
engine before these (token overwrite and decomposition on, unfused attention,
I/O outside the arena); ``all on`` is the default now; the other rows turn one
technique off. ``required_sram_bytes`` = arena + I/O outside it + frame
overhead + 8 KiB stack reserve. Writes ``bench/results/memory_ablation.json``
and prints the README table.

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

from tvm_mcuformer.compiler import CompileOptions, plan_model
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.models import DEMO_CONFIG, PlainViT, build_vit
from tvm_mcuformer.search.space import low_rank
from tvm_mcuformer.training import export_pt2

RESULTS = Path(__file__).parent / "results" / "memory_ablation.json"
KEYS = (
    "planned_arena_bytes",
    "lower_bound_bytes",
    "io_bytes",
    "required_sram_bytes",
    "tvm_static_plan_bytes",
    "naive_bytes",
    "paper_m_bytes",
)
ALL_ON = {
    "token_overwrite": True,
    "attention": "rowwise",
    "io_in_arena": True,
    "decompose_patch": True,
}
TODAY = {**ALL_ON, "attention": "unfused", "io_in_arena": False}
ONE_OFF = {
    "token overwrite off": {"token_overwrite": False},
    "attention unfused (head copies)": {"attention": "unfused"},
    "attention fused, all heads' scores": {"attention": "all_heads"},
    "I/O outside the arena": {"io_in_arena": False},
    "patch decomposition off": {"decompose_patch": False},
}
VIT224 = {"img_size": 224, "patch_size": 16, "in_chans": 3, "num_classes": 1000}


def _models() -> dict[str, tuple[torch.nn.Module, tuple[int, ...], dict, list[str]]]:
    """name → (module, input shape, architecture, variants to plan)."""
    e192 = {**VIT224, "embed_dim": 192, "depth": 6, "num_heads": 3, "mlp_ratio": 2.0}
    e128 = {**VIT224, "embed_dim": 128, "depth": 8, "num_heads": 4, "mlp_ratio": 4.0}
    lowrank = {**e192, "mlp_rank": low_rank(0.5, 192)}
    every = ["today", *ONE_OFF, "all on"]
    models = {
        "vit224-e192": (PlainViT(**e192), (1, 3, 224, 224), e192, every),
        "vit224-e128": (PlainViT(**e128), (1, 3, 224, 224), e128, ["today", "all on"]),
        "vit224-e192-lowrank": (
            PlainViT(**lowrank),
            (1, 3, 224, 224),
            lowrank,
            ["today", "I/O outside the arena", "all on"],
        ),
    }
    for patch in (7, 4):
        cfg = dataclasses.replace(DEMO_CONFIG, patch_size=patch)
        name = f"demo-{cfg.num_tokens}tok"
        models[name] = (build_vit(cfg), (1, 1, 28, 28), cfg.__dict__, ["today", "all on"])
    return models


def _options(variant: str) -> dict:
    if variant == "today":
        return TODAY
    return {**ALL_ON, **ONE_OFF.get(variant, {})}


def main() -> None:
    torch.manual_seed(0)
    rows = []
    for name, (module, shape, arch, variants) in _models().items():
        with tempfile.TemporaryDirectory() as tmp:
            model = import_model(export_pt2(module.eval(), torch.zeros(shape), Path(tmp) / "m.pt2"))
        for variant in variants:
            flags = _options(variant)
            opts = CompileOptions(quantize="int8-layout", **flags)
            memory = plan_model(model, opts).memory
            row = {"model": name, "architecture": arch, "variant": variant, **flags}
            row["tokens"] = (arch["img_size"] // arch["patch_size"]) ** 2
            row |= {k: memory[k] for k in KEYS}
            rows.append(row)
            print(name, variant, {k: memory[k] for k in KEYS}, file=sys.stderr, flush=True)
    write_results(RESULTS, {"rows": rows})
    print(render("memory_ablation"))


if __name__ == "__main__":
    main()
