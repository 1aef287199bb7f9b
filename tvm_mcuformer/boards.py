"""Target boards: the memory budget and the CPU flags each one stands for.

A :class:`Board` is the single source of truth for a deployment target: its
SRAM/flash budget (what the compiler checks and the linker script enforces),
the QEMU machine that emulates it, and the GCC CPU/FPU flags.
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

BOARDS: dict[str, Board] = {
    "mps2-an500": Board(
        "mps2-an500",
        320 * KiB,
        1 * MiB,
        "cortex-m7",
        "fpv5-sp-d16",
        "mps2-an500",
        "Cortex-M7 + FPU (QEMU), budget of an STM32F746",
        arena_alignment=32,  # the M7's D-cache line
    ),
    "mps2-an386": Board(
        "mps2-an386",
        256 * KiB,
        1 * MiB,
        "cortex-m4",
        "fpv4-sp-d16",
        "mps2-an386",
        "Cortex-M4 + FPU (QEMU), budget of an STM32F427",
        arena_alignment=8,  # no cache; 8 keeps int64 and double accesses aligned
    ),
    "host": Board("host", 64 * MiB, 64 * MiB, None, None, None, "the build machine (debugging)"),
}

DEFAULT_BOARD = "mps2-an500"
# SRAM kept for the call stack beside the arena, counted in the budget by the
# compiler and reserved by the firmware linker script (one default for both).
DEFAULT_STACK_RESERVE = 8 * KiB


def get_board(name: str) -> Board:
    """Return the board called ``name`` or raise ``ValueError`` naming the choices."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of: {', '.join(BOARDS)}") from None


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
