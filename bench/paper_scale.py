"""Paper scale: a 224-px, 1,000-class ViT per MCUFormer board, searched, compiled and run.

For each of ``stm32f427`` (256 KiB / 1 MiB), ``stm32f746`` (320 KiB / 1 MiB)
and ``stm32h743`` (512 KiB / 2 MiB), through the command line only:

1. ``tvm-mcuformer search --space paper --no-train --board B`` (data-free: the
   subnet with the most MACs that fits the board per the compiler's planner);
2. ``tvm-mcuformer compile best_subnet.pt2 --board B --calib calib.npz`` (int8,
   calibrated on seeded random images: ImageNet is not here and accuracy is
   not the question; memory, flash and instructions do not depend on it);
3. ``micro create`` (bare metal, the board's QEMU stand-in and its real budget
   in the linker script), ``micro build``, and ``run`` on one image.

Also times the refusal of an over-budget 224-px compile (the F746 model with
half the SRAM). Writes ``bench/results/paper_scale.json`` (date, git commit,
command, per board: architecture, params, MACs, planned arena, lower bound,
measured peak SRAM, flash, instructions per inference, search and compile
time) and prints a Markdown table.

    .venv/bin/python bench/paper_scale.py [--boards stm32f746] [--work DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from provenance import write_results

from tvm_mcuformer.boards import PAPER_BOARDS, get_board
from tvm_mcuformer.cli import main as cli

RESULTS = Path(__file__).parent / "results" / "paper_scale.json"
IMAGE = 224
CALIB_SAMPLES = 64


def _cli(*args: str) -> tuple[float, str]:
    """Run ``tvm-mcuformer ARGS`` in this process; return (seconds, stderr). Raise on failure."""
    err = io.StringIO()
    clock = time.perf_counter()
    with contextlib.redirect_stderr(err):
        status = cli([str(a) for a in args])
    seconds = time.perf_counter() - clock
    if status != 0:
        raise RuntimeError(
            f"tvm-mcuformer {' '.join(map(str, args))} exited {status}: {err.getvalue()}"
        )
    return seconds, err.getvalue()


def run_board(board: str, work: Path, calib: Path, image: Path) -> dict:
    out = work / board
    search_s, _ = _cli("search", "--space", "paper", "--no-train", "--board", board,
                       "--image-size", IMAGE, "-o", out / "search")  # fmt: skip
    found = json.loads((out / "search" / "search.json").read_text())["best"]
    tar = out / "model.tar"
    compile_s, _ = _cli("compile", found["paths"]["pt2"], "-o", tar, "--board", board,
                        "--calib", calib, "--calib-samples", CALIB_SAMPLES)  # fmt: skip
    _cli("micro", "create", out / "project", tar, "baremetal", "--force")
    _cli("micro", "build", out / "project")
    report_path = out / "report.json"
    _cli("run", out / "project", "--inputs", image, "--report", report_path, "--quiet")
    report = json.loads(report_path.read_text())
    memory, latency = report["memory"], report["latency"]
    spec = get_board(board)
    return {
        "board": board,
        "qemu_machine": spec.qemu_machine,
        "budget": memory["budget"],
        "architecture": found["architecture"],
        "image_size": found["space"]["img_size"],
        "num_classes": found["space"]["num_classes"],
        "params": found["params"],
        "macs": found["macs"],
        "search_planned_peak_sram_bytes": found["peak_sram_bytes"],
        "planned_arena_bytes": memory["planned_arena_bytes"],
        "lower_bound_bytes": memory["lower_bound_bytes"],
        "weight_bytes": memory["weight_bytes"],
        "measured_peak_sram_bytes": memory["measured"]["peak_sram_bytes"],
        "reserved_sram_bytes": memory["measured"]["reserved_sram_bytes"],
        "flash_bytes": memory["flash_bytes"],
        "fits_budget": memory["fits_budget"],
        "peak_sram_within_board": memory["measured"]["peak_sram_bytes"] <= spec.sram_bytes,
        "flash_within_board": memory["flash_bytes"] <= spec.flash_bytes,
        "counter": latency["counter"],
        "instructions_per_inference": latency[f"{latency['counter']}_per_inference"],
        "device_equals_host": report["accuracy"]["device_equals_host"],
        "search_s": round(search_s, 1),
        "compile_s": round(compile_s, 1),
    }


def over_budget(work: Path, calib: Path) -> dict:
    """Time the refusal of the F746 model compiled with half the F746's SRAM."""
    pt2 = work / "stm32f746" / "search" / "best_subnet.pt2"
    sram = get_board("stm32f746").sram_bytes // 2
    err = io.StringIO()
    clock = time.perf_counter()
    with contextlib.redirect_stderr(err):
        status = cli(["compile", str(pt2), "-o", str(work / "over.tar"), "--board", "stm32f746",
                      "--sram", str(sram), "--calib", str(calib)])  # fmt: skip
    return {
        "command": f"compile {pt2.name} --board stm32f746 --sram {sram} --calib calib.npz",
        "exit_status": status,
        "seconds": round(time.perf_counter() - clock, 1),
        "message": "\n".join(
            line for line in err.getvalue().splitlines() if line.startswith("tvm-mcuformer")
        ),
        "artifact_written": (work / "over.tar").exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default=",".join(PAPER_BOARDS))
    parser.add_argument("--work", type=Path, default=Path("out/paper_scale"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    calib, image = args.work / "calib.npz", args.work / "image.npz"
    np.savez(calib, x=rng.uniform(-1, 1, (CALIB_SAMPLES, 3, IMAGE, IMAGE)).astype(np.float32))
    np.savez(image, x=rng.uniform(-1, 1, (1, 1, 3, IMAGE, IMAGE)).astype(np.float32))
    rows = []
    for board in args.boards.split(","):
        rows.append(run_board(board, args.work, calib, image))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    refusal = over_budget(args.work, calib) if "stm32f746" in args.boards else None
    result = {
        "load_average_at_end": os.getloadavg(),  # timings are wall clock on a shared machine
        "calibration": f"{CALIB_SAMPLES} seeded uniform random images (no ImageNet here)",
        "objective": "MACs (search --no-train default)",
        "boards": rows,
        "over_budget_refusal": refusal,
    }
    write_results(RESULTS, result)
    print(
        "| board (QEMU) | architecture | params | MACs | arena / lower bound | peak SRAM measured "
        "/ budget | flash / budget | instr./inf. | compile |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        a = r["architecture"]
        arch = (
            f"embed {a['embed_dim']}, depth {a['depth']}, heads {a['num_heads'][0]}, "
            f"MLP {'/'.join(f'{x:g}' for x in sorted(set(a['mlp_ratios'])))}, "
            f"ρ {a['rank_ratio']}, patch {a['patch_size']}"
        )
        print(
            f"| {r['board']} ({r['qemu_machine']}) | {arch} | {r['params']:,} | "
            f"{r['macs'] / 1e6:.1f} M | {r['planned_arena_bytes']:,} / {r['lower_bound_bytes']:,}"
            f" | {r['measured_peak_sram_bytes']:,} / {r['budget']['sram_bytes']:,} | "
            f"{r['flash_bytes']:,} / {r['budget']['flash_bytes']:,} | "
            f"{r['instructions_per_inference'] / 1e6:.0f} M | {r['compile_s']:.0f} s |"
        )
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
