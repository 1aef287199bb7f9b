"""Static memory of a firmware image, read from its ELF (32-bit little-endian, as Arm builds).

:func:`measure` classifies allocated sections by their ELF flags, which works for the
bare-metal images and Zephyr's alike:

- flash: every allocated section with contents (``.text``, ``.rodata``, the ``.data`` load
  image, tables) = what must be programmed;
- static RAM: every allocated writable section (``.data``, ``.bss``, ...) except the
  bare-metal ``.stack`` reservation, which :attr:`MemoryUsage.stack_reserved_bytes` reports.

Symbol sizes (e.g. ``mcuformer_arena``) come from the symbol table, as ``nm -S`` shows them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from tvm_mcuformer.micro import MicroError

SHT_NOBITS = 8
SHT_SYMTAB = 2
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
STACK_SECTION = ".stack"

_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
_SHDR = struct.Struct("<IIIIIIIIII")
_SYM = struct.Struct("<IIIBBH")


@dataclass(frozen=True)
class Section:
    """An ELF section header, reduced to what memory accounting needs."""

    name: str
    type: int
    flags: int
    addr: int
    size: int


@dataclass(frozen=True)
class MemoryUsage:
    """Static memory of one image, in bytes."""

    flash_bytes: int
    static_ram_bytes: int
    stack_reserved_bytes: int
    sections: dict[str, int]  # allocated section name -> size


def _cstr(table: bytes, offset: int) -> str:
    return table[offset : table.index(b"\0", offset)].decode(errors="replace")


def _read(path: Path) -> tuple[bytes, list[tuple[Section, int, int]]]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise MicroError(f"cannot read ELF {path}: {e.strerror}; build the project first") from None
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF":
        raise MicroError(f"{path} is not an ELF file")
    if data[4] != 1 or data[5] != 1:
        raise MicroError(f"{path} is not a 32-bit little-endian ELF (not a Cortex-M image?)")
    fields = _EHDR.unpack_from(data)
    shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
    raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names = data[raw[shstrndx][4] : raw[shstrndx][4] + raw[shstrndx][5]]
    sections = [(Section(_cstr(names, h[0]), h[1], h[2], h[3], h[5]), h[4], h[6]) for h in raw]
    return data, sections


def sections(path: str | Path) -> list[Section]:
    """All section headers of the ELF at ``path``."""
    return [s for s, _, _ in _read(Path(path))[1]]


def symbol_sizes(path: str | Path) -> dict[str, int]:
    """Map of symbol name to size for every named symbol of the ELF at ``path``."""
    data, secs = _read(Path(path))
    sizes: dict[str, int] = {}
    for sec, offset, link in secs:
        if sec.type != SHT_SYMTAB:
            continue
        strtab_sec, strtab_off, _ = secs[link]
        strtab = data[strtab_off : strtab_off + strtab_sec.size]
        for i in range(sec.size // _SYM.size):
            name_off, _value, size, _info, _other, _shndx = _SYM.unpack_from(
                data, offset + i * _SYM.size
            )
            if name_off:
                sizes[_cstr(strtab, name_off)] = size
    return sizes


def measure(path: str | Path) -> MemoryUsage:
    """Flash, static RAM and reserved stack of the image at ``path``."""
    flash = ram = stack = 0
    alloc = {}
    for sec in sections(path):
        if not sec.flags & SHF_ALLOC or sec.size == 0:
            continue
        alloc[sec.name] = sec.size
        if sec.name == STACK_SECTION:
            stack += sec.size
            continue
        if sec.type != SHT_NOBITS:
            flash += sec.size
        if sec.flags & SHF_WRITE:
            ram += sec.size
    return MemoryUsage(flash, ram, stack, alloc)
