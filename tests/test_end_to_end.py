"""A real ViT through the whole product: train → export → compile → firmware → QEMU."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tvm_mcuformer.cli import main as cli_main


@pytest.mark.parametrize(
    ("board", "float_abi", "sram", "quantize"),
    [("mps2-an500", "hard", None, "none"), ("mps2-an386", "soft", "200KiB", "int8")],
)
def test_vit_runs_on_qemu_and_equals_host_build(
    digits_vit, tmp_path, board, float_abi, sram, quantize
):
    pt2 = digits_vit.pt2
    assert digits_vit.float_top1 > 0.85
    tar, project, report_path = tmp_path / "m.tar", tmp_path / "proj", tmp_path / "r.json"
    budget = ["--sram", sram] if sram else []
    quant = ["--quantize", "none"] if quantize == "none" else ["--calib", "digits"]
    assert cli_main(["compile", str(pt2), "-o", str(tar), "--board", board, *budget, *quant]) == 0
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
                "--profile",
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    assert report["latency"]["per_op"]  # one row per kernel call, plotted by run --profile:
    assert report_path.with_suffix(".profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    assert report["board"] == board and acc["n"] == 120
    assert acc["device_equals_host"] is True
    assert acc["device_top1"] == acc["host_top1"] > digits_vit.float_top1 - 0.05
    assert mem["measured"]["arena_symbol_bytes"] == mem["planned_arena_bytes"]
    assert mem["planned_arena_bytes"] <= 1.05 * mem["lower_bound_bytes"]
    assert mem["planned_arena_bytes"] < mem["tvm_static_plan_bytes"] < mem["naive_bytes"]
    if quantize == "int8":  # both memory techniques on, and the device still equals the host
        assert mem["token_overwrite_layers"] and mem["patch_decomposition_field"] == 4
    assert 0 < mem["measured"]["stack_bytes"]
    assert mem["measured"]["peak_sram_bytes"] <= mem["budget"]["sram_bytes"]
    assert mem["measured"]["peak_sram_bytes"] >= mem["planned_arena_bytes"]
    assert mem["flash_bytes"] <= mem["budget"]["flash_bytes"]
    # A compile budget tighter than the board's memory holds the firmware too.
    assert mem["budget"]["sram_bytes"] == (200 * 1024 if sram else 320 * 1024)
    assert f"{mem['budget']['sram_bytes']} B SRAM" in (project / "linker.ld").read_text()
    # 1 MAC costs at least one multiply instruction: the count is real, not a constant.
    assert lat["instructions_per_inference"] > lat["macs"] > 0
    if quantize == "int8":
        # Integer-only: the soft-float image links no float helper and no libm call.
        symbols = subprocess.run(
            ["arm-none-eabi-nm", str(project / "build" / "firmware.elf")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        floaty = re.findall(r"\b(__aeabi_[fd]\w*|expf|sqrtf|erff|tanhf|logf)\b", symbols)
        assert floaty == [], floaty
        assert "mcuformer_invoke" in symbols
