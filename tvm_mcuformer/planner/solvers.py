"""Offset-assignment solvers behind one interface, in a registry.

A solver takes a :class:`~tvm_mcuformer.planner.buffers.BufferModel` and an
alignment and returns the base offset of every region. The first-fit solvers
here take the regions in some order and put each at the lowest aligned offset
where none of its members overlaps a member of an already placed region live
at the same time. Conflicts are checked member by member, so the bytes of an
in-place region that only its larger member needs stay free for others while a
smaller member lives. Register another with :func:`register_solver`; every
plan, whichever solver made it, is checked by
:func:`~tvm_mcuformer.planner.verify.verify_plan`.
"""

from __future__ import annotations

from collections.abc import Callable

from .buffers import BufferModel
from .liveness import Interval

Solver = Callable[[BufferModel, int], dict[Interval, int]]
SOLVERS: dict[str, Solver] = {}


def register_solver(name: str) -> Callable[[Solver], Solver]:
    """Decorator: make ``solver`` available as ``plan_arena(..., algorithm=name)``."""

    def register(solver: Solver) -> Solver:
        if name in SOLVERS or name == "best":
            raise ValueError(f"planner {name!r} is already registered")
        SOLVERS[name] = solver
        return solver

    return register


def align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def first_fit(model: BufferModel, order: list[Interval], alignment: int) -> dict[Interval, int]:
    """Place regions in ``order``, each at the lowest aligned offset free of live conflicts."""
    placed: list[tuple[int, int, int, int]] = []  # first call, last call, low byte, high byte
    result = {}
    for iv in order:
        members = [(model.lifetimes[t], o, t.nbytes) for t, o in iv.members.items()]
        candidates = {0}
        for _, _, _, hi in placed:
            candidates.update(align(hi - o, alignment) for _, o, _ in members if hi >= o)
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


@register_solver("greedy_by_size")
def greedy_by_size(model: BufferModel, alignment: int) -> dict[Interval, int]:
    order = sorted(model.intervals, key=lambda iv: (-iv.nbytes, iv.start))
    return first_fit(model, order, alignment)


@register_solver("greedy_by_conflicts")
def greedy_by_conflicts(model: BufferModel, alignment: int) -> dict[Interval, int]:
    ivs = model.intervals

    def pressure(iv: Interval) -> int:
        return sum(o.nbytes for o in ivs if o is not iv and o.overlaps(iv))

    order = sorted(ivs, key=lambda iv: (-(pressure(iv) + iv.nbytes), iv.start))
    return first_fit(model, order, alignment)


@register_solver("greedy_by_start")
def greedy_by_start(model: BufferModel, alignment: int) -> dict[Interval, int]:
    order = sorted(model.intervals, key=lambda iv: (iv.start, -iv.nbytes))
    return first_fit(model, order, alignment)
