"""micro create (bare metal and Zephyr), input encoding, and the host runner's link handling.

Nothing here cross-compiles; the QEMU tests are in test_micro_qemu.py.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tvm_mcuformer.boards import DEFAULT_STACK_RESERVE

sys.path.insert(0, str(Path(__file__).parent))
from micro_fixture import make_artifact, write_tar  # noqa: E402

from tvm_mcuformer.cli import main  # noqa: E402
from tvm_mcuformer.micro import MicroError, build_project, create_project  # noqa: E402
from tvm_mcuformer.micro import protocol as proto  # noqa: E402
from tvm_mcuformer.micro.evaluate import decode_outputs, encode_inputs  # noqa: E402
from tvm_mcuformer.micro.project import TensorSpec, load_project  # noqa: E402
from tvm_mcuformer.micro.transport import open_serial  # noqa: E402


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return make_artifact(tmp_path_factory.mktemp("artifact") / "toy.tar")


@pytest.fixture(scope="module")
def host_project(tmp_path_factory, artifact) -> Path:
    """A bare-metal project with only its host runner built."""
    root = tmp_path_factory.mktemp("host") / "proj"
    create_project(root, artifact, "baremetal")
    subprocess.run(["make", "-C", str(root), "host"], check=True, capture_output=True)
    return root


def test_create_baremetal(tmp_path, artifact):
    project = create_project(tmp_path / "p", artifact, "baremetal")
    root = project.root
    assert (project.platform, project.board, project.float_abi) == (
        "baremetal",
        "mps2-an500",
        "hard",
    )
    assert (project.input_bytes, project.output_bytes, project.arena_bytes) == (64, 40, 1024)
    for rel in [
        "project.json",
        "metadata.json",
        "Makefile",
        "linker.ld",
        "model/include/mcuformer_model.h",
        "model/src/model.c",
        "core/main.c",
        "core/platform.h",
        "core/mcuformer_protocol.h",
        "platform/host/platform_host.c",
        "platform/baremetal/startup.c",
        "platform/baremetal/platform_qemu.c",
    ]:
        assert (root / rel).is_file(), rel
    linker = (root / "linker.ld").read_text()
    assert "ORIGIN = 0x20000000" in linker
    assert "__sram_used <= 327680" in linker and "__flash_used <= 1048576" in linker
    assert f". += {DEFAULT_STACK_RESERVE};" in linker
    makefile = (root / "Makefile").read_text()
    assert "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16" in makefile
    assert "-O2 -ffp-contract=off -fno-strict-aliasing -std=c11" in makefile
    assert not list(tmp_path.glob(".p.*")), "staging directory left behind"


def test_create_board_float_abi_and_stack(tmp_path, artifact):
    project = create_project(
        tmp_path / "p",
        artifact,
        "baremetal",
        board="mps2-an386",
        float_abi="soft",
        stack_bytes=8192,
    )
    assert project.board == "mps2-an386" and project.stack_bytes == 8192
    makefile = (project.root / "Makefile").read_text()
    assert "-mcpu=cortex-m4 -mthumb -mfloat-abi=soft\n" in makefile
    linker = (project.root / "linker.ld").read_text()
    assert "__sram_used <= 262144" in linker and ". += 8192;" in linker


def test_board_defaults(tmp_path):
    no_board = make_artifact(tmp_path / "nb.tar", board=None)
    assert create_project(tmp_path / "a", no_board, "baremetal").board == "mps2-an500"
    an386 = make_artifact(tmp_path / "m4.tar", board="mps2-an386")
    assert create_project(tmp_path / "b", an386, "baremetal").board == "mps2-an386"
    assert create_project(tmp_path / "c", an386, "zephyr").board == "nucleo_f746zg"


def test_stack_defaults_to_the_compilers_reserve(tmp_path, artifact):
    with tarfile.open(artifact) as tar:
        metadata = json.load(tar.extractfile("metadata.json"))
    metadata["memory"]["stack_reserve_bytes"] = 12288
    patched = _broken(tmp_path, artifact, **{"metadata.json": json.dumps(metadata)})
    assert create_project(tmp_path / "p", patched, "baremetal").stack_bytes == 12288
    default = create_project(tmp_path / "q", artifact, "baremetal").stack_bytes
    assert default == DEFAULT_STACK_RESERVE


def test_create_refuses_existing_and_force_replaces(tmp_path, artifact):
    root = tmp_path / "p"
    root.mkdir()
    (root / "keep.txt").write_text("user data")
    with pytest.raises(MicroError, match="not empty.*--force"):
        create_project(root, artifact, "baremetal")
    assert (root / "keep.txt").exists()
    create_project(root, artifact, "baremetal", force=True)
    assert not (root / "keep.txt").exists() and (root / "project.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def _broken(tmp_path: Path, artifact: Path, drop: str = "", **replace: str) -> Path:
    files = {}
    with tarfile.open(artifact) as tar:
        for m in tar.getmembers():
            files[m.name] = tar.extractfile(m).read().decode()
    files.pop(drop, None)
    for name, text in replace.items():
        files[name.replace("__", "/")] = text
    path = tmp_path / "broken.tar"
    write_tar(path, files)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"drop": "metadata.json"}, "no metadata.json"),
        ({"drop": "codegen/host/src/model.c"}, "no model C sources"),
        ({"drop": "codegen/host/include/mcuformer_model.h"}, "no codegen/host/include"),
        ({"metadata.json": "{not json"}, "not valid JSON"),
        ({"metadata.json": json.dumps({"inputs": [], "outputs": []})}, "non-empty list"),
        (
            {
                "metadata.json": json.dumps(
                    {
                        "inputs": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
                        "outputs": [{"name": "y", "shape": [1, 10], "dtype": "float32"}],
                    }
                )
            },
            "no 'memory' report",
        ),
        (
            {
                "metadata.json": json.dumps(
                    {
                        "inputs": [{"name": "x", "shape": [1, 16], "dtype": "float16"}],
                        "outputs": [{"name": "y", "shape": [1, 10], "dtype": "float32"}],
                    }
                )
            },
            "dtype 'float16' unsupported",
        ),
        (
            {
                "metadata.json": json.dumps(
                    {
                        "inputs": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
                        "outputs": [{"name": "y", "shape": [1, 10], "dtype": "float32"}],
                        "memory": {"planned_arena_bytes": "7 KiB"},
                    }
                )
            },
            "'memory.planned_arena_bytes' must be a number of bytes",
        ),
    ],
)
def test_bad_artifact_leaves_nothing(tmp_path, artifact, change, message):
    broken = _broken(tmp_path, artifact, **change)
    with pytest.raises(MicroError, match=message):
        create_project(tmp_path / "p", broken, "baremetal")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.tar"]


def test_sizes_come_from_metadata_not_from_c_text(tmp_path, artifact):
    odd = _broken(
        tmp_path, artifact, **{"codegen__host__include__mcuformer_model.h": "/* no defines */"}
    )
    project = create_project(tmp_path / "p", odd, "baremetal")
    meta = json.loads((tmp_path / "p" / "metadata.json").read_text())
    assert project.arena_bytes == meta["memory"]["planned_arena_bytes"] > 0
    assert project.input_bytes == 4 * 16 and project.output_bytes > 0


def test_bad_arguments(tmp_path, artifact):
    not_tar = tmp_path / "x.tar"
    not_tar.write_text("hello")
    with pytest.raises(MicroError, match="not a readable tar"):
        create_project(tmp_path / "p", not_tar, "baremetal")
    with pytest.raises(MicroError, match="not found"):
        create_project(tmp_path / "p", tmp_path / "missing.tar", "baremetal")
    with pytest.raises(MicroError, match="unknown board"):
        create_project(tmp_path / "p", artifact, "baremetal", board="esp32")
    with pytest.raises(MicroError, match="not a Cortex-M board"):
        create_project(tmp_path / "p", artifact, "baremetal", board="host")
    with pytest.raises(MicroError, match="no Zephyr overlay"):
        create_project(tmp_path / "p", artifact, "zephyr", board="mps2-an500")
    with pytest.raises(MicroError, match="stack size"):
        create_project(tmp_path / "p", artifact, "baremetal", stack_bytes=1000)
    assert not (tmp_path / "p").exists()


def test_cli_create_errors(tmp_path, artifact, capsys):
    root = tmp_path / "p"
    assert main(["micro", "create", str(root), str(artifact), "baremetal"]) == 0
    assert "created baremetal project" in capsys.readouterr().out
    assert main(["micro", "create", str(root), str(artifact), "baremetal"]) != 0
    assert "--force" in capsys.readouterr().err
    args = ["micro", "create", str(root), str(artifact), "baremetal", "--force"]
    assert main([*args, "--board", "mps2-an386", "--stack-size", "8KiB"]) == 0
    assert load_project(root).stack_bytes == 8192


def test_zephyr_project_structure(tmp_path, artifact):
    project = create_project(
        tmp_path / "z", artifact, "zephyr", board="nucleo_h743zi", stack_bytes=12288
    )
    root = project.root
    assert project.platform == "zephyr" and project.board == "nucleo_h743zi"
    cmake = (root / "CMakeLists.txt").read_text()
    assert "find_package(Zephyr REQUIRED HINTS $ENV{ZEPHYR_BASE})" in cmake
    assert "model/src/*.c" in cmake and "core/*.c" in cmake and "-ffp-contract=off" in cmake
    conf = (root / "prj.conf").read_text()
    assert "CONFIG_MAIN_STACK_SIZE=12288" in conf and "CONFIG_FPU=y" in conf
    assert "CONFIG_UART_CONSOLE=n" in conf
    for board in ("nucleo_f746zg", "nucleo_h743zi"):
        overlay = (root / "boards" / f"{board}.overlay").read_text()
        assert "mcuformer,uart = &usart3;" in overlay
    platform = (root / "src" / "platform_zephyr.c").read_text()
    assert "DT_CHOSEN(mcuformer_uart)" in platform and "uart_poll_in" in platform
    for rel in ["core/main.c", "core/platform.h", "model/src/model.c", "Makefile"]:
        assert (root / rel).is_file(), rel
    assert not (root / "linker.ld").exists() and not (root / "platform" / "baremetal").exists()


def test_zephyr_build_needs_zephyr_base(tmp_path, artifact, monkeypatch):
    root = create_project(tmp_path / "z", artifact, "zephyr").root
    monkeypatch.delenv("ZEPHYR_BASE", raising=False)
    with pytest.raises(MicroError, match="ZEPHYR_BASE is not set"):
        build_project(root)
    assert not (root / "build").exists()


@pytest.mark.skipif(
    not os.environ.get("ZEPHYR_BASE") or shutil.which("west") is None,
    reason="ZEPHYR_BASE is not set / west missing: no Zephyr tree on this machine "
    "(Zephyr cannot be fetched here), so the west build is not run",
)
def test_zephyr_west_build(tmp_path, artifact):
    root = create_project(tmp_path / "z", artifact, "zephyr").root
    result = build_project(root)
    assert result.firmware.is_file() and result.host_runner.is_file()


def test_encode_inputs_shapes_and_quantization():
    spec = TensorSpec("x", (1, 2, 2), "float32")
    x = np.arange(12, dtype=np.float64).reshape(3, 2, 2)
    frames = encode_inputs((spec,), x, None)
    assert frames == [x[i].astype(np.float32).tobytes() for i in range(3)]
    assert encode_inputs((spec,), {"x": x.reshape(3, 1, 2, 2)}, 2) == frames[:2]
    with pytest.raises(MicroError, match=r"expected \(N, 2, 2\)"):
        encode_inputs((spec,), x.reshape(3, 4), None)
    q = TensorSpec("q", (1, 4), "int8", scale=0.5, zero_point=-3)
    got = encode_inputs((q,), np.array([[0.0, 1.0, 100.0, -100.0]]), None)
    assert np.frombuffer(got[0], np.int8).tolist() == [-3, -1, 127, -128]
    with pytest.raises(MicroError, match="without quant"):
        encode_inputs((TensorSpec("q", (4,), "int8"),), np.zeros((1, 4)), None)
    with pytest.raises(MicroError, match="missing model input"):
        encode_inputs((spec,), {"y": x}, None)
    two = (spec, TensorSpec("i", (1,), "int32"))
    frames = encode_inputs(two, {"x": x, "i": np.array([[1], [2], [3]])}, None)
    assert frames[1] == x[1].astype(np.float32).tobytes() + struct.pack("<i", 2)
    with pytest.raises(MicroError, match="pass them by name"):
        encode_inputs(two, x, None)


def test_decode_outputs():
    specs = (TensorSpec("a", (1, 2), "float32"), TensorSpec("b", (3,), "int8"))
    frames = [np.float32([i, -i]).tobytes() + bytes([i, 255, 0]) for i in range(4)]
    out = decode_outputs(specs, frames)
    assert out["a"].shape == (4, 2) and out["a"][3].tolist() == [3.0, -3.0]
    assert out["b"].shape == (4, 3) and out["b"][2].tolist() == [2, -1, 0]


def _frames(data: bytes) -> list[proto.Frame]:
    frames = []
    while data:
        _, _, length = proto.decode_header(data[: proto.HEADER_BYTES])
        end = proto.HEADER_BYTES + length + proto.CRC_BYTES
        frames.append(proto.decode_frame(data[:end]))
        data = data[end:]
    return frames


def test_host_runner_rejects_corrupted_frames_and_resyncs(host_project):
    corrupted = bytearray(proto.encode_frame(proto.REQ_INFO, 1))
    corrupted[9] ^= 0x01  # sequence number, covered by the CRC
    stream = (
        b"line noise"
        + bytes(corrupted)
        + proto.encode_frame(proto.REQ_INFO, 2)
        + proto.encode_frame(proto.REQ_INFER, 3, b"short")
        + proto.encode_frame(0x55, 4)
        + proto.encode_frame(proto.REQ_EXIT, 5)
    )
    result = subprocess.run(
        [str(host_project / "build" / "host_runner")], input=stream, capture_output=True, timeout=10
    )
    assert result.returncode == proto.EXIT_OK
    frames = _frames(result.stdout)
    assert [(f.type, f.seq) for f in frames] == [
        (proto.ERROR, 1 ^ 0x100),
        (proto.REQ_INFO | proto.REPLY_FLAG, 2),
        (proto.ERROR, 3),
        (proto.ERROR, 4),
        (proto.REQ_EXIT | proto.REPLY_FLAG, 5),
    ]
    codes = [struct.unpack("<I", frames[i].payload)[0] for i in (0, 2, 3)]
    assert codes == [proto.ERR_CRC, proto.ERR_LENGTH, proto.ERR_TYPE]
    assert proto.parse_info(frames[1].payload).input_bytes == 64


def test_host_runner_link_closed(host_project):
    result = subprocess.run(
        [str(host_project / "build" / "host_runner")], input=b"", capture_output=True, timeout=10
    )
    assert result.returncode == proto.EXIT_LINK_CLOSED


def test_serial_transport_over_a_pty(host_project):
    """The UART transport (Zephyr boards) against the host runner behind a pseudo-terminal."""
    master, slave = os.openpty()
    runner = subprocess.Popen(
        [str(host_project / "build" / "host_runner")], stdin=master, stdout=master
    )
    try:
        with open_serial(os.ttyname(slave), 115200, timeout=10) as session:
            assert session.info.input_bytes == 64 and session.info.counter is None
            x = np.linspace(-1, 1, 16, dtype=np.float32)
            result = session.infer(x.tobytes())
            assert result.status == 0 and len(result.output) == 40
        assert runner.wait(timeout=10) == proto.EXIT_OK
    finally:
        runner.kill()
        os.close(master)
        os.close(slave)


def test_budget_defaults_to_the_artifacts_and_flags_override(tmp_path):
    """A model compiled with a larger budget links against that budget; --sram/--flash win."""
    path = make_artifact(tmp_path / "big.tar")
    with tarfile.open(path) as tar:
        metadata = json.load(tar.extractfile("metadata.json"))
    metadata["memory"]["budget"] = {"sram_bytes": 2 * 1024 * 1024, "flash_bytes": 3 * 1024 * 1024}
    big = _broken(tmp_path, path, **{"metadata.json": json.dumps(metadata)})
    project = create_project(tmp_path / "a", big, "baremetal")
    assert project.budget == {"sram_bytes": 2 * 1024 * 1024, "flash_bytes": 3 * 1024 * 1024}
    linker = (project.root / "linker.ld").read_text()
    assert "__sram_used <= 2097152" in linker and "__flash_used <= 3145728" in linker
    assert main(["micro", "create", str(tmp_path / "b"), str(big), "baremetal",
                 "--sram", "200KiB", "--flash", "512KiB"]) == 0  # fmt: skip
    assert load_project(tmp_path / "b").budget == {"sram_bytes": 204800, "flash_bytes": 524288}
    # another board than the artifact's: that board's own budget
    assert create_project(tmp_path / "c", big, "baremetal", board="stm32h743").budget == {
        "sram_bytes": 512 * 1024,
        "flash_bytes": 2 * 1024 * 1024,
    }
    with pytest.raises(MicroError, match="exceeds the 4 MiB QEMU maps.*--sram"):
        create_project(tmp_path / "d", big, "baremetal", sram_bytes=5 * 1024 * 1024)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "board, machine, cpu, sram, flash",
    [
        ("stm32f427", "mps2-an386", "cortex-m4", 256, 1024),
        ("stm32f746", "mps2-an500", "cortex-m7", 320, 1024),
        ("stm32h743", "mps2-an500", "cortex-m7", 512, 2048),
    ],
)
def test_paper_board_presets(tmp_path, board, machine, cpu, sram, flash):
    """Each paper chip runs on the QEMU machine with its core, held to its real budget."""
    artifact = make_artifact(tmp_path / "m.tar", board=board)
    with tarfile.open(artifact) as tar:
        metadata = json.load(tar.extractfile("metadata.json"))
    metadata["memory"].pop("budget")
    artifact = _broken(tmp_path, artifact, **{"metadata.json": json.dumps(metadata)})
    project = create_project(tmp_path / "p", artifact, "baremetal")
    assert project.qemu_board.qemu_machine == machine and project.board == board
    linker = (project.root / "linker.ld").read_text()
    assert f"__sram_used <= {sram * 1024}" in linker
    assert f"__flash_used <= {flash * 1024}" in linker
    assert f"-mcpu={cpu} " in (project.root / "Makefile").read_text()


def test_zephyr_board_names_map_to_presets(tmp_path, artifact):
    from tvm_mcuformer.boards import ZEPHYR_BOARDS, get_board

    for zephyr, preset in ZEPHYR_BOARDS.items():
        assert get_board(zephyr) is get_board(preset)
        project = create_project(tmp_path / zephyr, artifact, "zephyr", board=zephyr)
        assert project.budget["sram_bytes"] == get_board(preset).sram_bytes
        assert (project.root / "boards" / f"{zephyr}.overlay").is_file()
