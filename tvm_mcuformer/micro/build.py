"""Build and flash micro projects.

:func:`build_project` compiles ``build/host_runner`` (host ``cc``) and the firmware
``build/firmware.elf``: with the project's Makefile and ``arm-none-eabi-gcc`` on bare metal
(the generated linker script refuses an image over the board's budget), with ``west build``
on Zephyr. :func:`flash_project` boots a bare-metal image in QEMU and checks it answers INFO
with the model's sizes, or runs ``west flash`` for a Zephyr board.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tvm_mcuformer.micro import MicroError, ToolError
from tvm_mcuformer.micro import protocol as proto
from tvm_mcuformer.micro.project import Project, load_project
from tvm_mcuformer.micro.transport import DEFAULT_TIMEOUT, check_info, open_serial, start_qemu

_LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_project` produced."""

    firmware: Path
    host_runner: Path


def _require_tool(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} not found on PATH: {hint}")
    return path


def _run(cmd: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-_LOG_TAIL_LINES:])
        raise ToolError(f"{what} failed (`{' '.join(cmd)}` in {cwd}):\n{tail}")
    return result.stdout


def _budget_message(project: Project, log: str) -> str:
    board = project.qemu_board
    memory = project.metadata.get("memory", {})
    lines = sorted(set(re.findall(r"(?:SRAM|flash) budget exceeded[^\n]*", log)))
    return (
        f"firmware for {project.root} does not fit board {board.name}'s budget "
        f"({board.sram_bytes} B SRAM, {board.flash_bytes} B flash):\n  "
        + "\n  ".join(lines)
        + f"\nmodel: arena {project.arena_bytes} B, weights "
        f"{memory.get('weight_bytes', 'unknown')} B; stack {project.stack_bytes} B. "
        "Compile a smaller model for this budget, lower --stack-size, or pick a larger board."
    )


def _make(project: Project, target: str, jobs: int) -> None:
    _require_tool("make", "install make (apt-get install make)")
    try:
        _run(["make", f"-j{jobs}", target], project.root, f"building {target}")
    except ToolError as e:
        if "budget exceeded" in str(e):
            raise MicroError(_budget_message(project, str(e))) from None
        raise


def _west_env() -> dict[str, str]:
    if not os.environ.get("ZEPHYR_BASE"):
        raise MicroError(
            "cannot build a Zephyr project: ZEPHYR_BASE is not set. Set up a Zephyr workspace "
            "(west init && west update), export ZEPHYR_BASE=<workspace>/zephyr, and retry"
        )
    _require_tool("west", "install it (pip install west) inside a Zephyr workspace")
    env = dict(os.environ)
    env.setdefault("ZEPHYR_TOOLCHAIN_VARIANT", "gnuarmemb")
    if env["ZEPHYR_TOOLCHAIN_VARIANT"] == "gnuarmemb":
        gcc = _require_tool("arm-none-eabi-gcc", "install gcc-arm-none-eabi")
        env.setdefault("GNUARMEMB_TOOLCHAIN_PATH", str(Path(gcc).resolve().parent.parent))
    return env


def build_project(project_dir: str | Path, jobs: int | None = None) -> BuildResult:
    """Build the host runner and the firmware of the project at ``project_dir``.

    Raises :class:`MicroError` with the compiler's or linker's messages on failure; an image
    over the board's SRAM or flash budget fails with a message containing "budget".
    """
    project = load_project(project_dir)
    if jobs is not None and jobs < 1:
        raise MicroError(f"--jobs {jobs}: give a positive number of parallel jobs")
    jobs = jobs or os.cpu_count() or 1
    _require_tool("cc", "install a host C compiler (apt-get install gcc)")
    # Relink from scratch: make keeps an old image when a source was removed, and a failed
    # build must not leave the previous firmware looking current.
    for output in (project.firmware, project.host_runner):
        output.unlink(missing_ok=True)
    if project.platform == "baremetal":
        _require_tool("arm-none-eabi-gcc", "install gcc-arm-none-eabi and libnewlib-arm-none-eabi")
        _make(project, "all", jobs)
    else:
        env = _west_env()
        _make(project, "host", jobs)
        zephyr_build = project.root / "build" / "zephyr"
        cmd = ["west", "build", "-b", project.board, "-d", str(zephyr_build), "-p", "auto"]
        _run([*cmd, str(project.root)], project.root, "west build", env)
        shutil.copy2(zephyr_build / "zephyr" / "zephyr.elf", project.firmware)
    return BuildResult(project.firmware, project.host_runner)


def flash_project(
    project_dir: str | Path, port: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> proto.Info | None:
    """Put the built firmware on its device and check it answers.

    Bare metal: boot the image in QEMU, request INFO, check the model sizes, exit cleanly.
    Zephyr: ``west flash``; then, if ``port`` is given, the same INFO check over the UART.
    Returns the firmware's INFO (None for Zephyr without ``port``).
    """
    project = load_project(project_dir)
    if project.platform == "zephyr":
        env = _west_env()
        zephyr_build = project.root / "build" / "zephyr"
        if not zephyr_build.is_dir():
            raise MicroError(f"{zephyr_build} not found: run `tvm-mcuformer micro build` first")
        _run(["west", "flash", "-d", str(zephyr_build)], project.root, "west flash", env)
        if port is None:
            return None
        session = open_serial(port, timeout=timeout)
    else:
        session = start_qemu(project.firmware, project.qemu_board.qemu_machine, timeout)
    with session:
        check_info(session.info, project, session.name)
    return session.info
