"""Offset assignment: place every live interval in one static arena.

Each algorithm takes the intervals in some order and puts each at the lowest
aligned offset where it overlaps no already-placed interval that is live at
the same time (first fit). ``best`` runs every order and keeps the smallest
arena, as TVM's removed USMP compared its greedy algorithms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor
from .liveness import Interval, live_intervals, liveness_lower_bound


@dataclass
class ArenaPlan:
    """Offsets of arena tensors, the arena size and the lower bound it is measured against."""

    offsets: dict[Tensor, int]
    arena_bytes: int
    lower_bound_bytes: int
    intervals: list[Interval]
    algorithm: str
    alignment: int


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _first_fit(order: list[Interval], alignment: int) -> dict[Interval, int]:
    placed: list[tuple[Interval, int]] = []
    result = {}
    for iv in order:
        busy = sorted((off, off + p.nbytes) for p, off in placed if p.overlaps(iv))
        offset = 0
        for lo, hi in busy:
            if offset + iv.nbytes <= lo:
                break
            offset = max(offset, _align(hi, alignment))
        placed.append((iv, offset))
        result[iv] = offset
    return result


def _by_size(ivs: list[Interval]) -> list[Interval]:
    return sorted(ivs, key=lambda iv: (-iv.nbytes, iv.start))


def _by_conflicts(ivs: list[Interval]) -> list[Interval]:
    def pressure(iv: Interval) -> int:
        return sum(o.nbytes for o in ivs if o is not iv and o.overlaps(iv))

    return sorted(ivs, key=lambda iv: (-(pressure(iv) + iv.nbytes), iv.start))


def _by_start(ivs: list[Interval]) -> list[Interval]:
    return sorted(ivs, key=lambda iv: (iv.start, -iv.nbytes))


ORDERS: dict[str, Callable[[list[Interval]], list[Interval]]] = {
    "greedy_by_size": _by_size,
    "greedy_by_conflicts": _by_conflicts,
    "greedy_by_start": _by_start,
}
ALGORITHMS = (*ORDERS, "best")


def plan_arena(program: KernelProgram, algorithm: str = "best", alignment: int = 16) -> ArenaPlan:
    """Plan the arena of ``program`` with ``algorithm`` (one of :data:`ALGORITHMS`)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown planner {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    ivs = live_intervals(program)
    names = list(ORDERS) if algorithm == "best" else [algorithm]
    best = None
    for name in names:
        offsets = _first_fit(ORDERS[name](ivs), alignment)
        size = max((off + iv.nbytes for iv, off in offsets.items()), default=0)
        size = max(_align(size, alignment), alignment)
        if best is None or size < best[0]:
            best = (size, name, offsets)
    size, name, offsets = best
    return ArenaPlan(
        offsets={iv.tensor: off for iv, off in offsets.items()},
        arena_bytes=size,
        lower_bound_bytes=liveness_lower_bound(ivs, len(program.calls)),
        intervals=ivs,
        algorithm=name,
        alignment=alignment,
    )
