"""The demo end to end, shortened: 1 epoch, 20 test images (the full run is the README's)."""

from __future__ import annotations

import json

from tvm_mcuformer.demo import run_demo


def test_demo_writes_a_complete_report(tmp_path):
    report = run_demo(tmp_path, epochs=1, limit=20, search=False)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    for name in ("model.pt2", "model.tar", "memory_timeline.png", "project/build/firmware.elf"):
        assert (tmp_path / name).is_file(), name
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    assert acc["n"] == 20 and acc["device_equals_host"] is True
    assert 0.0 <= acc["float_top1"] <= 1.0 and acc["device_top1"] == acc["host_top1"]
    assert report["quantization"]["integer_only"] is True
    assert mem["measured"]["peak_sram_bytes"] <= mem["budget"]["sram_bytes"]
    assert mem["measured"]["arena_symbol_bytes"] == mem["planned_arena_bytes"]
    assert lat["instructions_per_inference"] > lat["macs"] > 0
    assert report["model"]["searched"] is False and report["model"]["config"]["embed_dim"] == 64


def test_demo_with_search_deploys_the_found_architecture(tmp_path):
    report = run_demo(tmp_path, epochs=1, limit=10)  # the search is the default
    found = json.loads((tmp_path / "search" / "search.json").read_text())
    assert report["model"]["searched"] is True
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["model"]["config"] == found["best"]["architecture"]
    assert report["accuracy"]["device_equals_host"] is True
    assert (tmp_path / "search" / "pareto.png").is_file()
