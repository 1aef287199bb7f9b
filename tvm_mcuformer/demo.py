"""The demo: search a small ViT for MNIST-5k, train it, compile it, run it on an emulated Cortex-M.

Stages (each hands one object to the next)::

    load_split ─▶ arrays ─search (quick)─▶ SubnetConfig ─train─▶ nn.Module ─export─▶ model.pt2
      ─compile─▶ model.tar ─micro create/build─▶ firmware.elf
      ─evaluate (host-driven, QEMU)─▶ report.json

Everything is written under ``out`` (search/, model.pt2, model.tar, project/,
report.json, memory_timeline.png); progress goes to stderr. Without the
search the demo deploys the hand-set ``DEMO_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .boards import get_board
from .compiler import CompileOptions, compile_model
from .data import load_split
from .micro.build import build_project
from .micro.evaluate import evaluate
from .micro.project import create_project
from .models import DEMO_CONFIG, build_vit
from .search.run import run_search
from .search.space import SearchSpace, SubnetConfig
from .search.supernet import Supernet
from .training import DEMO_RECIPE, evaluate_top1, export_pt2, load_checkpoint, train

DATASET = "mnist5k"
CALIBRATION_SAMPLES = 256


def _step(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def deploy(
    pt2: Path,
    out: Path,
    board: str,
    options: CompileOptions,
    x_test: np.ndarray,
    y_test: np.ndarray,
    limit: int | None = None,
) -> dict:
    """Compile ``pt2`` into ``out/model.tar``, build ``out/project`` and run the test set on
    the board's emulator and the host build; return the device report."""
    _step(f"compiling {pt2.name} for {board} ({options.quantize})")
    artifact = compile_model(pt2, dataclasses.replace(options, board=board))
    artifact_path = artifact.write(out / "model.tar")
    artifact.extract("memory_timeline.png", out / "memory_timeline.png")

    _step("creating and building the bare-metal firmware")
    project = out / "project"
    create_project(project, artifact_path, "baremetal", board=board, force=True)
    build_project(project)

    _step(f"running the test set on QEMU {board} (host-driven) and on the host build")
    report = evaluate(project, x_test, y_test, limit=limit)
    report.pop("outputs", None)
    report["quantization"] = artifact.metadata["quantization"]
    return report


def _searched_model(out: Path, board: str, seed: int) -> tuple[torch.nn.Module, dict]:
    """A quick search within ``board``'s budget; its best architecture, newly initialised."""
    spec = get_board(board)
    _step(f"searching an architecture within {spec.sram_bytes} B SRAM / {spec.flash_bytes} B flash")
    found = run_search(
        DATASET, spec.sram_bytes, spec.flash_bytes, out, preset="quick", board=board, seed=seed
    )
    saved = load_checkpoint(found["best"]["paths"]["pt"])
    model = Supernet(SearchSpace(**saved["space"])).extract(SubnetConfig(**saved["config"]))
    return model, found["best"]["architecture"]


def run_demo(
    out: str | Path,
    board: str = "mps2-an500",
    epochs: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    quantize: str = "int8",
    search: bool = True,
) -> dict:
    """Run the whole demo into directory ``out`` and return the report.

    ``quantize="int8"`` (default) deploys the integer-only model calibrated on 256
    training images; ``"none"`` deploys float. ``search`` (default) first runs
    a quick architecture search within the board's budget (``out/search``) and
    deploys the architecture it finds, trained from scratch with the demo
    recipe; ``search=False`` deploys ``DEMO_CONFIG`` instead.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    x_train, y_train = load_split(DATASET, "train", seed=seed)
    x_test, y_test = load_split(DATASET, "test", seed=seed)
    torch.manual_seed(seed)
    if search:
        model, architecture = _searched_model(out / "search", board, seed)
    else:
        model, architecture = build_vit(DEMO_CONFIG), dict(DEMO_CONFIG.__dict__)
    _step(f"training the ViT on {len(x_train)} MNIST-5k images")
    recipe = {**DEMO_RECIPE, "epochs": epochs or DEMO_RECIPE["epochs"]}
    model = train(model, x_train, y_train, seed=seed, **recipe)
    float_top1 = evaluate_top1(model, x_test, y_test)
    _step(f"float top-1 on {len(x_test)} test images: {float_top1:.4f}")

    pt2 = export_pt2(model, torch.from_numpy(x_test[:1]), out / "model.pt2")
    calibration = x_train[:CALIBRATION_SAMPLES, None] if quantize == "int8" else None
    report = deploy(
        pt2,
        out,
        board,
        CompileOptions(quantize=quantize, calibration=calibration),
        x_test,
        y_test,
        limit=limit,
    )
    report["accuracy"]["float_top1"] = float_top1
    report["model"] = {
        "config": architecture,
        "searched": search,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    report["dataset"] = {"name": DATASET, "split": "stratified 4000/1000", "seed": seed}
    report["wall_seconds"] = round(time.time() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(format_summary(report))
    return report


def format_summary(report: dict) -> str:
    """A short human-readable table of the report."""
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    meas = mem["measured"]
    rows = [
        ("board", report["board"]),
        ("test images", acc["n"]),
        ("quantization", (report.get("quantization") or {}).get("scheme", "none (float32)")),
        ("float top-1 (PyTorch)", f"{acc['float_top1']:.4f}"),
        ("device top-1", f"{acc['device_top1']:.4f}"),
        ("host top-1", f"{acc['host_top1']:.4f}"),
        ("device == host", acc["device_equals_host"]),
        ("planned arena", f"{mem['planned_arena_bytes']} B"),
        ("liveness lower bound", f"{mem['lower_bound_bytes']} B"),
        ("TVM StaticPlanBlockMemory", f"{mem['tvm_static_plan_bytes']} B"),
        ("arena symbol in the ELF", f"{meas['arena_symbol_bytes']} B"),
        ("static RAM (.data+.bss)", f"{meas['static_ram_bytes']} B"),
        ("stack high-water", f"{meas['stack_bytes']} B"),
        ("peak SRAM / budget", f"{meas['peak_sram_bytes']} / {mem['budget']['sram_bytes']} B"),
        ("flash / budget", f"{mem['flash_bytes']} / {mem['budget']['flash_bytes']} B"),
        ("instructions / inference", f"{lat['instructions_per_inference']:.0f}"),
        ("MACs / inference", lat["macs"]),
        ("wall time", f"{report['wall_seconds']} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
