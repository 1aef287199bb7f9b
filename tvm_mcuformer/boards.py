"""Target boards: the memory budget and the CPU flags each one stands for.

A :class:`Board` is the single source of truth for a deployment target: its
SRAM/flash budget (what the compiler checks and the linker script enforces),
the QEMU machine that emulates it, and the GCC CPU/FPU flags.

The ``stm32*`` presets are the chips of the MCUFormer paper, each emulated by the
QEMU machine with its core and held to the chip's real SRAM and flash by the
generated linker script; the ``mps2-*`` boards are those QEMU machines under
their own names. :data:`ZEPHYR_BOARDS` maps Zephyr board names to the presets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    """One deployment target."""

    name: str
    sram_bytes: int
    flash_bytes: int
    cpu: str | None  # GCC -mcpu, None for the host
    fpu: str | None  # GCC -mfpu for the hard-float ABI
    qemu_machine: str | None  # qemu-system-arm -M, None if not emulated
    description: str
    arena_alignment: int = 16  # byte alignment of every arena buffer

    @property
    def is_host(self) -> bool:
        return self.cpu is None


KiB = 1024
MiB = 1024 * KiB

_M7 = dict(cpu="cortex-m7", fpu="fpv5-sp-d16", qemu_machine="mps2-an500", arena_alignment=32)
_M4 = dict(cpu="cortex-m4", fpu="fpv4-sp-d16", qemu_machine="mps2-an386", arena_alignment=8)
# M7: 32 B is its D-cache line; M4: no cache, 8 B keeps int64 and double accesses aligned.

BOARDS: dict[str, Board] = {
    "mps2-an500": Board(
        "mps2-an500",
        320 * KiB,
        1 * MiB,
        description="Cortex-M7 + FPU (QEMU), budget of an STM32F746",
        **_M7,
    ),
    "mps2-an386": Board(
        "mps2-an386",
        256 * KiB,
        1 * MiB,
        description="Cortex-M4 + FPU (QEMU), budget of an STM32F427",
        **_M4,
    ),
    "stm32f427": Board(
        "stm32f427",
        256 * KiB,
        1 * MiB,
        description="STM32F427 (Cortex-M4, 256 KiB SRAM, 1 MiB flash), emulated by mps2-an386",
        **_M4,
    ),
    "stm32f746": Board(
        "stm32f746",
        320 * KiB,
        1 * MiB,
        description="STM32F746 (Cortex-M7, 320 KiB SRAM, 1 MiB flash), emulated by mps2-an500",
        **_M7,
    ),
    "stm32h743": Board(
        "stm32h743",
        512 * KiB,
        2 * MiB,
        description="STM32H743 (Cortex-M7, 512 KiB SRAM, 2 MiB flash), emulated by mps2-an500",
        **_M7,
    ),
    "host": Board("host", 64 * MiB, 64 * MiB, None, None, None, "the build machine (debugging)"),
}

PAPER_BOARDS = ("stm32f427", "stm32f746", "stm32h743")
"""The boards of the MCUFormer paper, smallest first."""

ZEPHYR_BOARDS: dict[str, str] = {
    "nucleo_f429zi": "stm32f427",  # the F429 is the F427 with an LCD controller
    "nucleo_f746zg": "stm32f746",
    "nucleo_h743zi": "stm32h743",
}
"""Zephyr board name -> the preset holding its chip's budget."""

DEFAULT_BOARD = "mps2-an500"
# SRAM kept for the call stack beside the arena, counted in the budget by the
# compiler and reserved by the firmware linker script (one default for both).
DEFAULT_STACK_RESERVE = 8 * KiB


def get_board(name: str) -> Board:
    """Return the board called ``name`` (a preset or a :data:`ZEPHYR_BOARDS` name) or raise
    ``ValueError`` naming the choices."""
    try:
        return BOARDS[ZEPHYR_BOARDS.get(name, name)]
    except KeyError:
        raise ValueError(
            f"unknown board {name!r}; choose one of: {', '.join(BOARDS)} "
            f"(or a Zephyr board: {', '.join(ZEPHYR_BOARDS)})"
        ) from None


GiB = 1024 * MiB

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|KB|K|MiB|MB|M|GiB|GB|G)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    **dict.fromkeys(("kib", "kb", "k"), KiB),
    **dict.fromkeys(("mib", "mb", "m"), MiB),
    **dict.fromkeys(("gib", "gb", "g"), GiB),
}


def parse_size(text: str | int) -> int:
    """Parse ``320KiB``, ``1MiB``, ``1GiB``, ``4096`` (bytes) into a byte count.

    KB/K/MB/M/GB/G are read as binary units, as microcontroller datasheets use them.
    Raises ``ValueError`` (one line, saying how to write a size) for anything else.
    """
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"cannot read size {text!r}: write bytes (4096) or a unit (320KiB, 1MiB)")
    value = float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    if value != int(value) or value <= 0:
        raise ValueError(f"size {text!r} must be a positive whole number of bytes")
    return int(value)


def budget_warnings(board: Board, sram_bytes: int | None, flash_bytes: int | None) -> list[str]:
    """Warnings for budgets larger than ``board`` has (allowed, but the image will not fit)."""
    out = []
    for what, given, has in (
        ("SRAM", sram_bytes, board.sram_bytes),
        ("flash", flash_bytes, board.flash_bytes),
    ):
        if given is not None and given > has and not board.is_host:
            out.append(
                f"warning: {what} budget {given} B is above board {board.name}'s {has} B; "
                "the firmware will not fit that board"
            )
    return out
