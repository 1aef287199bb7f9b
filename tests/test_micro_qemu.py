"""Bare-metal firmware on QEMU for real: build, handshake, device == host, measurements.

Runs the toy model of micro_fixture.py on mps2-an500 (Cortex-M7) and mps2-an386
(Cortex-M4), hard and soft float, and checks the linker enforces the board's budget.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from micro_fixture import N_OUT, make_artifact  # noqa: E402

from tvm_mcuformer.boards import DEFAULT_STACK_RESERVE as STACK  # noqa: E402
from tvm_mcuformer.cli import main  # noqa: E402
from tvm_mcuformer.micro import (  # noqa: E402
    MicroError,
    build_project,
    create_project,
    elf,  # noqa: E402
    evaluate,
    flash_project,
)
from tvm_mcuformer.micro.transport import DeviceError, start_qemu  # noqa: E402

TIMEOUT = 30.0
N_IN = 16  # the toy model's default 1x1x4x4 input


def _built(tmp_path_factory, name: str, **options) -> Path:
    work = tmp_path_factory.mktemp(name)
    model_keys = ("side", "arena_bytes", "stack_hog_bytes", "flash_ballast_bytes")
    artifact_options = {k: options.pop(k) for k in model_keys if k in options}
    artifact = make_artifact(work / "model.tar", **artifact_options)
    root = create_project(work / "proj", artifact, "baremetal", **options).root
    build_project(root)
    return root


@pytest.fixture(scope="module")
def an500(tmp_path_factory) -> Path:
    return _built(tmp_path_factory, "an500")


def _inputs(n: int, spins: list[int] | None = None) -> np.ndarray:
    x = np.random.default_rng(42).normal(size=(n, 1, 4, 4)).astype(np.float32)
    x[:, 0, 0, 0] = spins if spins is not None else 0
    return x


def test_flash_handshake(an500):
    info = flash_project(an500, timeout=TIMEOUT)
    assert (info.input_bytes, info.output_bytes, info.arena_bytes) == (N_IN * 4, N_OUT * 4, 1024)
    assert info.stack_bytes == STACK and info.counter == "instructions"


def test_device_equals_host_and_report(an500):
    x = _inputs(12, spins=[0, 10, 1000] * 4)
    labels = np.arange(12) % N_OUT
    report = evaluate(an500, x, labels, timeout=TIMEOUT)
    acc, mem, lat = report["accuracy"], report["memory"], report["latency"]
    assert acc["n"] == 12 and acc["device_equals_host"] and acc["mismatched_samples"] == 0
    assert acc["device_top1"] == acc["host_top1"] is not None
    logits = report["outputs"]["logits"]
    assert logits.shape == (12, N_OUT) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits))
    assert acc["device_top1"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert report["board"] == "mps2-an500"
    assert 0 < mem["measured"]["stack_bytes"] < STACK
    assert mem["measured"]["arena_symbol_bytes"] == 1024 == mem["planned_arena_bytes"]
    assert mem["measured"]["static_ram_bytes"] >= 1024 + N_IN * 4 + N_OUT * 4
    assert mem["measured"]["peak_sram_bytes"] == (
        mem["measured"]["static_ram_bytes"] + mem["measured"]["stack_bytes"]
    )
    assert mem["budget"] == {"sram_bytes": 327680, "flash_bytes": 1048576}
    assert mem["flash_bytes"] > N_IN * N_OUT * 4 and mem["fits_budget"]
    assert lat["counter"] == "instructions" and lat["macs"] == N_IN * N_OUT
    assert 0 < lat["instructions_min"] < lat["instructions_max"]
    assert lat["instructions_min"] <= lat["instructions_per_inference"] <= lat["instructions_max"]


def test_no_labels_still_compares(an500):
    report = evaluate(an500, {"x": _inputs(3)}, None, timeout=TIMEOUT)
    assert report["accuracy"]["device_top1"] is None and report["accuracy"]["host_top1"] is None
    assert report["accuracy"]["device_equals_host"]


def test_instruction_count_calibration(an500):
    """x[0] spins a `subs; bne` loop: exactly 2 instructions per iteration (checked in the
    disassembly), so counts must grow by 2 per iteration: instructions = ticks * 40."""
    disassembly = subprocess.run(
        ["arm-none-eabi-objdump", "-d", str(an500 / "build" / "firmware.elf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = disassembly.split("<mcuformer_run>:")[1].split("\n\n")[0]
    loop = re.search(r"\n\s*([0-9a-f]+):[^\n]*\tsubs\t(r\d+), #1\n[^\n]*\tbne\.n\t\1 ", body)
    assert loop, "calibration loop is not `subs rN, #1; bne` in mcuformer_run"

    spins = [0, 1000, 100_000, 1_000_000, 0]
    with start_qemu(an500 / "build" / "firmware.elf", "mps2-an500", TIMEOUT) as qemu:
        counts = [qemu.infer(_inputs(1, [s]).tobytes()).count for s in spins]
    # One timer tick is 40 instructions: a count is off by less than 40, a difference by < 80.
    assert all(c > 0 and c % 40 == 0 for c in counts)
    assert abs(counts[0] - counts[-1]) <= 40, "same input, same count up to one tick"
    for spin, count in zip(spins[1:4], counts[1:4], strict=True):
        assert abs((count - counts[0]) - 2 * spin) < 80, (spin, count, counts[0])


def test_cli_run_writes_report_and_outputs(an500, tmp_path, capsys):
    x = _inputs(5)
    np.savez(tmp_path / "in.npz", anything=x, labels=np.arange(5))
    args = ["run", str(an500), "--inputs", str(tmp_path / "in.npz"), "--limit", "4"]
    out = tmp_path / "out.npz"
    report_path = tmp_path / "report.json"
    assert main([*args, "--outputs", str(out), "--report", str(report_path)]) == 0
    assert "device == host: True" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["accuracy"]["n"] == 4 and report["accuracy"]["device_equals_host"]
    assert report["accuracy"]["device_top1"] is not None
    for key in ("static_ram_bytes", "stack_bytes", "peak_sram_bytes", "arena_symbol_bytes"):
        assert report["memory"]["measured"][key] > 0
    assert report["latency"]["instructions_per_inference"] > 0
    with np.load(out) as saved:
        expected = evaluate(an500, x[:4], None, progress=False, timeout=TIMEOUT)["outputs"]
        assert np.array_equal(saved["logits"], expected["logits"])


def test_elf_measurement_matches_binutils(an500):
    firmware = an500 / "build" / "firmware.elf"
    size = subprocess.run(
        ["arm-none-eabi-size", "-A", str(firmware)], capture_output=True, text=True, check=True
    ).stdout
    sizes = {m[0]: int(m[1]) for m in re.findall(r"^(\.\S+)\s+(\d+)\s+\d+", size, re.MULTILINE)}
    usage = elf.measure(firmware)
    assert usage.static_ram_bytes == sizes[".data"] + sizes[".bss"]
    assert usage.stack_reserved_bytes == sizes[".stack"] == STACK
    flash = sum(v for k, v in sizes.items() if k not in (".bss", ".stack") and k in usage.sections)
    assert usage.flash_bytes == flash
    nm = subprocess.run(
        ["arm-none-eabi-nm", "-S", str(firmware)], capture_output=True, text=True, check=True
    ).stdout
    arena = re.search(r"^[0-9a-f]+ ([0-9a-f]+) [bB] mcuformer_arena$", nm, re.MULTILINE)
    assert int(arena.group(1), 16) == elf.symbol_sizes(firmware)["mcuformer_arena"] == 1024


@pytest.mark.parametrize("board, float_abi", [("mps2-an386", "hard"), ("mps2-an500", "soft")])
def test_other_boards_and_soft_float(tmp_path_factory, board, float_abi):
    root = _built(tmp_path_factory, f"{board}-{float_abi}", board=board, float_abi=float_abi)
    attributes = subprocess.run(
        ["arm-none-eabi-readelf", "-A", str(root / "build" / "firmware.elf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ("Tag_ABI_VFP_args: VFP registers" in attributes) == (float_abi == "hard")
    report = evaluate(root, _inputs(6, [0, 500] * 3), None, timeout=TIMEOUT)
    assert report["accuracy"]["device_equals_host"]
    assert report["latency"]["instructions_max"] > report["latency"]["instructions_min"] > 0
    assert 0 < report["memory"]["measured"]["stack_bytes"] < STACK


def test_over_budget_image_fails_to_link(tmp_path):
    artifact = make_artifact(tmp_path / "big.tar", arena_bytes=320 * 1024)
    root = create_project(tmp_path / "proj", artifact, "baremetal").root
    with pytest.raises(MicroError, match="budget") as error:
        build_project(root)
    assert "SRAM budget exceeded" in str(error.value) and "327680" in str(error.value)
    assert not (root / "build" / "firmware.elf").exists()


def test_flash_over_budget_fails_to_link(tmp_path):
    artifact = make_artifact(tmp_path / "big.tar", flash_ballast_bytes=1100 * 1024)
    root = create_project(tmp_path / "proj", artifact, "baremetal", board="mps2-an386").root
    with pytest.raises(MicroError, match="flash budget exceeded.*1048576 B flash budget"):
        build_project(root)


def test_stack_overflow_faults_cleanly(tmp_path_factory):
    root = _built(tmp_path_factory, "hog", stack_hog_bytes=32 * 1024)
    with pytest.raises(DeviceError, match=r"(?s)status 3 \(CPU fault.*stack overflow.*CFSR"):
        evaluate(root, _inputs(1), None, timeout=TIMEOUT)


def test_stack_high_water_tracks_use(tmp_path_factory):
    root = _built(tmp_path_factory, "deep", stack_hog_bytes=4096)
    report = evaluate(root, _inputs(2), None, timeout=TIMEOUT)
    assert 4096 < report["memory"]["measured"]["stack_bytes"] < STACK
    assert report["accuracy"]["device_equals_host"]


def test_qemu_errors_are_clear(tmp_path):
    with pytest.raises(MicroError, match="micro build"):
        start_qemu(tmp_path / "missing.elf", "mps2-an500", TIMEOUT)
    bogus = tmp_path / "bogus.elf"
    bogus.write_bytes(b"not an elf")
    with pytest.raises(DeviceError, match="QEMU mps2-an500"):
        start_qemu(bogus, "mps2-an500", 5.0)


def test_hung_firmware_times_out(an500):
    with start_qemu(an500 / "build" / "firmware.elf", "mps2-an500", TIMEOUT) as qemu:
        qemu.timeout = 1.0
        start = time.monotonic()
        with pytest.raises(DeviceError, match="no reply within 1 s"):
            qemu.infer(_inputs(1, [3_000_000_000]).tobytes())  # ~6e9 instructions
        assert time.monotonic() - start < 10
        process = qemu._process
    assert process.poll() is not None, "QEMU must be killed after a failed session"


def test_progress_lines(an500, capsys):
    report = evaluate(an500, _inputs(200), None, progress=True, timeout=TIMEOUT)
    assert report["accuracy"]["device_equals_host"]
    err = capsys.readouterr().err
    assert "run: 100/200 samples" in err and "run: 200/200 samples" in err


def test_cli_build_flash_and_dataset_run(tmp_path, capsys):
    pytest.importorskip("tvm_mcuformer.data", reason="the datasets module is not in this tree")
    artifact = make_artifact(tmp_path / "digits.tar", side=8)
    root = tmp_path / "proj"
    assert main(["micro", "create", str(root), str(artifact), "baremetal"]) == 0
    assert main(["micro", "build", str(root)]) == 0
    assert main(["micro", "flash", str(root)]) == 0
    assert f"input 256 B, output 40 B, arena 1024 B, stack {STACK} B" in capsys.readouterr().out
    report_path = tmp_path / "report.json"
    args = ["run", str(root), "--dataset", "digits", "--limit", "30", "--quiet"]
    assert main([*args, "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["accuracy"]["n"] == 30 and report["accuracy"]["device_equals_host"]
    assert 0 <= report["accuracy"]["device_top1"] <= 1
