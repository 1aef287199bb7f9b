"""A real ViT through the whole product: train → export → compile → firmware → QEMU."""

from __future__ import annotations

import json

import pytest
import torch

from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.data import load_split
from tvm_mcuformer.models import ViTConfig, build_vit
from tvm_mcuformer.training import evaluate_top1, export_pt2, train

CFG = ViTConfig(
    img_size=8,
    patch_size=4,
    in_chans=1,
    num_classes=10,
    embed_dim=32,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    gelu="gelu",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    x, y = load_split("digits", "train")
    torch.manual_seed(0)
    model = train(build_vit(CFG), x, y, epochs=30, seed=0, progress=False)
    xt, yt = load_split("digits", "test")
    path = tmp_path_factory.mktemp("e2e") / "vit.pt2"
    export_pt2(model, torch.from_numpy(xt[:1]), path)
    return path, evaluate_top1(model, xt, yt)


@pytest.mark.parametrize(
    ("board", "float_abi", "sram"),
    [("mps2-an500", "hard", None), ("mps2-an386", "soft", "200KiB")],
)
def test_vit_runs_on_qemu_and_equals_host_build(trained, tmp_path, board, float_abi, sram):
    pt2, float_top1 = trained
    assert float_top1 > 0.85
    tar, project, report_path = tmp_path / "m.tar", tmp_path / "proj", tmp_path / "r.json"
    budget = ["--sram", sram] if sram else []
    assert cli_main(["compile", str(pt2), "-o", str(tar), "--board", board, *budget]) == 0
    assert (
        cli_main(
            [
                "micro",
                "create",
                str(project),
                str(tar),
                "baremetal",
                "--board",
                board,
                "--float-abi",
                float_abi,
            ]
        )
        == 0
    )
    assert cli_main(["micro", "build", str(project)]) == 0
    assert cli_main(["micro", "flash", str(project)]) == 0
    assert (
        cli_main(
            [
                "run",
                str(project),
                "--dataset",
                "digits",
                "--limit",
                "120",
                "--report",
                str(report_path),
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    assert report["board"] == board and acc["n"] == 120
    assert acc["device_equals_host"] is True
    assert acc["device_top1"] == acc["host_top1"] > 0.8
    assert mem["measured"]["arena_symbol_bytes"] == mem["planned_arena_bytes"]
    assert 0 < mem["measured"]["stack_bytes"]
    assert mem["measured"]["peak_sram_bytes"] <= mem["budget"]["sram_bytes"]
    assert mem["measured"]["peak_sram_bytes"] >= mem["planned_arena_bytes"]
    assert mem["flash_bytes"] <= mem["budget"]["flash_bytes"]
    # A compile budget tighter than the board's memory holds the firmware too.
    assert mem["budget"]["sram_bytes"] == (200 * 1024 if sram else 320 * 1024)
    assert f"{mem['budget']['sram_bytes']} B SRAM" in (project / "linker.ld").read_text()
    # 1 MAC costs at least one multiply instruction: the count is real, not a constant.
    assert lat["instructions_per_inference"] > lat["macs"] > 0
