"""Offset assignment: place every live region in one static arena.

Each algorithm takes the regions in some order and puts each at the lowest
aligned offset where none of its members overlaps a member of an already
placed region that is live at the same time (first fit). Conflicts are
checked member by member, so the bytes of an in-place region that only its
larger member needs stay free for others while a smaller member lives.
``best`` runs every order and keeps the smallest arena, as TVM's removed USMP
compared its greedy algorithms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor
from .inplace import InplacePair, inplace_pairs
from .liveness import Interval, live_intervals, liveness_lower_bound, root_lifetimes


@dataclass
class ArenaPlan:
    """Offsets of arena tensors, the arena size and the lower bound it is measured against.

    ``offsets`` holds every arena storage root; roots of one in-place region
    (``inplace``) overlap by design at the call that overwrites.
    """

    offsets: dict[Tensor, int]
    arena_bytes: int
    lower_bound_bytes: int
    intervals: list[Interval]
    algorithm: str
    alignment: int
    inplace: list[InplacePair]


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


Placed = tuple[int, int, int, int]  # first call, last call, low byte, high byte


def _first_fit(
    order: list[Interval], alignment: int, lifetimes: dict[Tensor, tuple[int, int]]
) -> dict[Interval, int]:
    placed: list[Placed] = []
    result = {}
    for iv in order:
        members = [(lifetimes[t], o, t.nbytes) for t, o in iv.members.items()]
        candidates = {0}
        for _, _, _, hi in placed:
            candidates.update(_align(hi - o, alignment) for _, o, _ in members if hi >= o)
        for base in sorted(candidates):
            if not any(
                s <= pe and ps <= e and base + o < phi and plo < base + o + n
                for (s, e), o, n in members
                for ps, pe, plo, phi in placed
            ):
                break
        placed.extend((s, e, base + o, base + o + n) for (s, e), o, n in members)
        result[iv] = base
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


def plan_arena(
    program: KernelProgram,
    algorithm: str = "best",
    alignment: int = 16,
    token_overwrite: bool = True,
) -> ArenaPlan:
    """Plan the arena of ``program`` with ``algorithm`` (one of :data:`ALGORITHMS`).

    With ``token_overwrite``, outputs of row-wise kernels overlay their dead inputs.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown planner {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    pairs = inplace_pairs(program) if token_overwrite else []
    ivs = live_intervals(program, pairs)
    lifetimes = root_lifetimes(program)
    names = list(ORDERS) if algorithm == "best" else [algorithm]
    best = None
    for name in names:
        offsets = _first_fit(ORDERS[name](ivs), alignment, lifetimes)
        size = max((off + iv.nbytes for iv, off in offsets.items()), default=0)
        size = max(_align(size, alignment), alignment)
        if best is None or size < best[0]:
            best = (size, name, offsets)
    size, name, offsets = best
    return ArenaPlan(
        offsets={t: off + o for iv, off in offsets.items() for t, o in iv.members.items()},
        arena_bytes=size,
        lower_bound_bytes=liveness_lower_bound(program, pairs),
        intervals=ivs,
        algorithm=name,
        alignment=alignment,
        inplace=pairs,
    )
