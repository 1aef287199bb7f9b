"""The searched subnet against three hand-set ViTs under one tight SRAM budget.

Budget: 14 KiB of SRAM (arena + I/O frames + 8 KiB stack reserve) and 1 MiB of
flash on ``mps2-an500``; the default demo ViT (dim 64) needs 16,410 B and does
not fit. Runs the search (``run_search``, as ``tvm-mcuformer search --dataset
mnist5k --sram 14KiB`` does, over the space ``SPACE`` below), then trains the
found architecture from scratch with the demo recipe (the baselines get the
same recipe), and deploys all four int8 on QEMU, evaluating the 1,000
MNIST-5k test images host-driven.
Writes ``bench/results/search_vs_baselines.json`` and prints a Markdown table.

    .venv/bin/python bench/search_vs_baselines.py [--full-search] [--smoke]

By default the search is the quick one (``--quick``: 3 rounds of 3 epochs on
1,500 images, a small evolutionary search); every model, searched or hand-set,
is then trained with the full demo recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from tvm_mcuformer.compiler import CompileOptions
from tvm_mcuformer.data import load_split
from tvm_mcuformer.demo import deploy
from tvm_mcuformer.models import DEMO_CONFIG, build_vit
from tvm_mcuformer.search.run import describe_subnet, run_search
from tvm_mcuformer.search.space import SearchSpace, SubnetConfig
from tvm_mcuformer.search.supernet import Supernet
from tvm_mcuformer.training import DEMO_RECIPE, evaluate_top1, export_pt2, train

RESULTS = Path(__file__).parent / "results" / "search_vs_baselines.json"
SRAM, FLASH, BOARD = 14 * 1024, 1024 * 1024, "mps2-an500"
# The search space: the embedding widths of the baselines and more, deeper and wider MLPs
# (rank ratio and patch size are evolved by the outer loop).
SPACE = SearchSpace(
    embed_dims=(24, 32, 40, 48),
    num_heads=(2, 4),
    mlp_ratios=(1.5, 2.0, 3.0),
    depths=(1, 2, 3, 4),
    rank_ratio=0.5,
    patch_size=7,
    img_size=28,
    in_chans=1,
    num_classes=10,
)
BASELINES = {
    "dim 32, depth 2, 4 heads, MLP 2": dict(embed_dim=32, depth=2, num_heads=4, mlp_ratio=2.0),
    "dim 32, depth 3, 4 heads, MLP 2": dict(embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0),
    "dim 40, depth 2, 2 heads, MLP 2": dict(embed_dim=40, depth=2, num_heads=2, mlp_ratio=2.0),
}


def _train_and_deploy(name: str, model: torch.nn.Module, work: Path, data, recipe) -> dict:
    (x, y), (xt, yt) = data
    print(f"[bench] {name}: training", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    model = train(model, x, y, seed=0, progress=False, **recipe)
    work.mkdir(parents=True, exist_ok=True)
    pt2 = export_pt2(model, torch.from_numpy(xt[:1]), work / "model.pt2")
    options = CompileOptions(sram_bytes=SRAM, flash_bytes=FLASH, calibration=x[:256, None])
    report = deploy(pt2, work, BOARD, options, xt, yt)
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "float_top1": evaluate_top1(model, xt, yt),
        "device_top1": report["accuracy"]["device_top1"],
        "device_equals_host": report["accuracy"]["device_equals_host"],
        "peak_sram_bytes": report["memory"]["measured"]["peak_sram_bytes"],
        "planned_arena_bytes": report["memory"]["planned_arena_bytes"],
        "flash_bytes": report["memory"]["flash_bytes"],
        "instructions_per_inference": report["latency"]["instructions_per_inference"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full-search", action="store_true", help="the full search, not the quick one (~1 h+)"
    )
    parser.add_argument("--smoke", action="store_true", help="2 training epochs, to check it runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = (load_split("mnist5k", "train"), load_split("mnist5k", "test"))
    recipe = {**DEMO_RECIPE, "epochs": 2 if args.smoke else DEMO_RECIPE["epochs"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuformer-bench-") as tmp:
        work = Path(tmp)
        found = run_search(
            "mnist5k",
            SRAM,
            FLASH,
            work / "search",
            quick=not args.full_search,
            board=BOARD,
            space=SPACE,
        )
        best = found["best"]
        saved = torch.load(best["paths"]["pt"], map_location="cpu", weights_only=True)
        cfg = SubnetConfig(**saved["config"])
        fresh = Supernet(SearchSpace(**saved["space"])).extract(cfg)  # newly initialised
        name = "searched: " + describe_subnet(best["architecture"])
        row = _train_and_deploy(name, fresh, work / "s", data, recipe)
        row["supernet_inherited_test_top1"] = best["test_top1"]
        row["search_seconds"] = sum(found["timings_s"].values())
        rows.append(row)
        for i, (name, kw) in enumerate(BASELINES.items()):
            model = build_vit(dataclasses.replace(DEMO_CONFIG, **kw))
            rows.append(_train_and_deploy(name, model, work / f"b{i}", data, recipe))
    settings = {"search": "full" if args.full_search else "quick", "epochs": recipe["epochs"]}
    RESULTS.write_text(
        json.dumps(
            {
                "budget": {"sram_bytes": SRAM, "flash_bytes": FLASH},
                "board": BOARD,
                "settings": settings,
                "rows": rows,
            },
            indent=2,
        )
    )
    print("| model | params | device top-1 | peak SRAM | arena | flash | instr./inf. |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['parameters']:,} | {r['device_top1']:.4f} | "
            f"{r['peak_sram_bytes']:,} | {r['planned_arena_bytes']:,} | {r['flash_bytes']:,} | "
            f"{r['instructions_per_inference'] / 1e6:.1f} M |"
        )


if __name__ == "__main__":
    main()
