"""Kernel speed on QEMU: emulated instructions per MAC of int8 matmuls and whole ViTs.

Every case is a small torch model compiled through the product (``compile`` →
``micro create`` baremetal → ``micro build`` → ``run`` on QEMU with
``-icount shift=0``), so the figure is what the firmware's instruction counter
reports for one inference, divided by the model's MACs. A single-linear model
is the int8 linear of the issue table (input requantization aside it is one
kernel: matmul + bias + requantize); the attention case is ``q @ kᵀ`` over 4
heads of 16×16. Device outputs must equal the host build's bit for bit.

Writes ``bench/results/kernels.json`` (date, git commit, command, one row per
case and board) and prints a Markdown table::

    .venv/bin/python bench/kernel_speed.py                 # every case, mps2-an500 and mps2-an386
    .venv/bin/python bench/kernel_speed.py --cases linear_16x64x192 --boards mps2-an500
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from provenance import write_results
from tables import render
from torch import nn

from tvm_mcuformer.boards import BOARDS, MiB
from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.micro.build import build_project
from tvm_mcuformer.micro.evaluate import evaluate
from tvm_mcuformer.micro.project import create_project
from tvm_mcuformer.models import DEMO_CONFIG, ViTConfig, build_vit
from tvm_mcuformer.training import export_pt2

RESULTS = Path(__file__).parent / "results" / "kernels.json"
QEMU_BOARDS = ("mps2-an500", "mps2-an386")
SAMPLES = 3  # inferences per case (the count is identical run to run)
BIG_VIT = ViTConfig(
    img_size=96,
    patch_size=8,
    in_chans=3,
    num_classes=1000,
    embed_dim=96,
    depth=4,
    num_heads=3,
    mlp_ratio=4.0,
    gelu="quick",
)


class Linear(nn.Module):
    """``x [M, K] @ W [K, N] + b``: one int8 linear after quantization."""

    def __init__(self, k: int, n: int) -> None:
        super().__init__()
        self.fc = nn.Linear(k, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Scores(nn.Module):
    """Attention scores ``q @ kᵀ`` of ``heads`` heads, q and k halves of one input."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = x[..., : self.d], x[..., self.d :]
        return q @ k.transpose(-2, -1)


class Attention(nn.Module):
    """Softmax attention of ``heads`` heads whose q, k, v are thirds of one input row
    (the fused int8 attention kernel: QKᵀ, integer softmax, row × V)."""

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        qkv = x.reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(dim=-1)
        return (attn @ v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)


def _cases() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    cases: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}
    for m, k, n in ((16, 64, 192), (16, 128, 64), (49, 96, 288), (197, 192, 768)):
        cases[f"linear_{m}x{k}x{n}"] = (Linear(k, n), (1, m, k))
    cases["attention_qk_4x16x16x16"] = (Scores(16), (1, 4, 16, 32))
    cases["attention_4x16x16"] = (Attention(4, 16), (1, 16, 3 * 4 * 16))
    cases["vit_demo"] = (build_vit(DEMO_CONFIG), (1, 1, 28, 28))
    cases["vit_96px"] = (build_vit(BIG_VIT), (1, 3, 96, 96))
    return cases


def bench_board(board: str) -> str:
    """``board`` with QEMU's 4 MiB of RAM and flash as its budget (the largest shapes'
    I/O frames exceed the real chip's SRAM; instruction counts do not depend on it)."""
    name = f"{board}-bench"
    BOARDS[name] = dataclasses.replace(
        BOARDS[board], name=name, sram_bytes=3 * MiB, flash_bytes=3 * MiB
    )
    return name


def measure(
    name: str,
    model: nn.Module,
    shape: tuple[int, ...],
    board: str,
    tmp: Path,
    scheduled: bool = True,
) -> dict:
    """Compile ``model`` for ``board`` (dense schedules on or off), run it on QEMU: its row."""
    target = bench_board(board)
    tmp.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    example = torch.from_numpy(rng.standard_normal(shape))
    pt2 = export_pt2(model, example.float(), tmp / f"{name}.pt2")
    calib = rng.standard_normal((16, *shape)).astype(np.float32)
    start = time.time()
    opts = CompileOptions(board=target, calibration=calib, schedule_kernels=scheduled)
    artifact = compile_model(import_model(pt2), opts)
    stem = f"{name}-{board}-{'scheduled' if scheduled else 'unscheduled'}"
    tar = tmp / f"{stem}.tar"
    artifact.write(tar)
    compile_s = time.time() - start
    project = tmp / stem
    create_project(project, tar, "baremetal", board=target)
    build_project(project)
    report = evaluate(project, calib[:SAMPLES], None, progress=False)
    lat = report["latency"]
    return {
        "case": name,
        "board": board,
        "schedule": "scheduled" if scheduled else "unscheduled",
        "shape": list(shape),
        "macs": lat["macs"],
        "instructions_per_inference": lat["instructions_per_inference"],
        "instructions_per_mac": lat["instructions_per_mac"],
        "device_equals_host": report["accuracy"]["device_equals_host"],
        "per_op": lat["per_op"],
        "compile_seconds": round(compile_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = _cases()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(cases), default=sorted(cases))
    parser.add_argument("--boards", nargs="+", choices=QEMU_BOARDS, default=list(QEMU_BOARDS))
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuformer-bench-") as tmp:
        for name in args.cases:
            model, shape = cases[name]
            for board, scheduled in itertools.product(args.boards, (True, False)):
                row = measure(name, model, shape, board, Path(tmp), scheduled)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    payload = {
        "label": args.label,
        "counter": "QEMU -icount shift=0 retired instructions, one inference",
        "rows": rows,
    }
    write_results(args.output, payload)
    if args.output == RESULTS:
        print(render("kernels"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
