"""The README's demo table: the demo run three ways, figures collected into one results file.

Runs ``tvm-mcuformer demo`` as a user would — default (quick search, int8),
``--no-search`` (the hand-set ViT, int8) and ``--no-search --quantize none``
(float) — each into a temporary folder, and writes
``bench/results/demo.json`` (with date, commit and command) from their
report.json files. About 5 minutes on the 2-core build machine.

    .venv/bin/python bench/demo.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from provenance import write_results
from tables import render

from tvm_mcuformer.demo import run_demo
from tvm_mcuformer.search.run import describe_subnet

RESULTS = Path(__file__).parent / "results" / "demo.json"
VARIANTS = (
    ("default: searched, int8", {"search": True, "quantize": "int8"}),
    ("hand-set, int8 (`--no-search`)", {"search": False, "quantize": "int8"}),
    ("hand-set, float32", {"search": False, "quantize": "none"}),
)


def _architecture(model: dict) -> str:
    cfg = model["config"]
    if model["searched"]:
        name = describe_subnet(cfg)
    else:
        name = (
            f"embed {cfg['embed_dim']}, depth {cfg['depth']}, {cfg['num_heads']} heads, "
            f"MLP {cfg['mlp_ratio']}, patch {cfg['patch_size']}"
        )
    return f"{name} ({model['parameters']:,} params)"


def _row(label: str, report: dict) -> dict:
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    return {
        "label": label,
        "architecture": _architecture(report["model"]),
        "float_top1": acc["float_top1"],
        "device_top1": acc["device_top1"],
        "device_equals_host": acc["device_equals_host"],
        "planned_arena_bytes": mem["planned_arena_bytes"],
        "lower_bound_bytes": mem["lower_bound_bytes"],
        "tvm_static_plan_bytes": mem["tvm_static_plan_bytes"],
        "peak_sram_bytes": mem["measured"]["peak_sram_bytes"],
        "flash_bytes": mem["flash_bytes"],
        "weight_bytes": mem["weight_bytes"],
        "instructions_per_inference": lat["instructions_per_inference"],
        "macs": lat["macs"],
        "wall_seconds": report["wall_seconds"],
    }


def main() -> None:
    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory(prefix="mcuformer-demo-bench-") as tmp:
        for i, (label, kwargs) in enumerate(VARIANTS):
            start = time.time()
            report = run_demo(Path(tmp) / str(i), **kwargs)
            runs.append(_row(label, report))
            print(f"{label}: {time.time() - start:.0f} s", file=sys.stderr)
    write_results(RESULTS, {"board": "mps2-an500", "dataset": "mnist5k", "runs": runs})
    print(render("demo"))


if __name__ == "__main__":
    main()
