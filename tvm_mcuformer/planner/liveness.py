"""Liveness of the storage that lives in the arena.

Program points are call indices. A tensor is live from the call that writes
it to the last call that reads it or any view of it, inclusive; a kernel
workspace is live during its own call only. Inputs, outputs and constants are
outside the arena (the caller's buffers and flash).

With token overwrite, an output placed over its input (an
:class:`~tvm_mcuformer.planner.inplace.InplacePair`) shares one *region*
with it: an :class:`Interval` is a region, live over the union of its
members' lifetimes, as large as its largest member extent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lowering.program import KernelProgram, Tensor, TensorKind
from .inplace import InplacePair

ARENA_KINDS = (TensorKind.ACTIVATION, TensorKind.WORKSPACE)


@dataclass(eq=False)
class Interval:
    """A region of ``nbytes`` live during calls ``start..end`` (inclusive).

    ``members`` maps each storage root in the region to its byte offset in it;
    ``tensor`` is the first member.
    """

    tensor: Tensor
    start: int
    end: int
    nbytes: int
    members: dict[Tensor, int] = field(default_factory=dict)

    def overlaps(self, other: Interval) -> bool:
        return self.start <= other.end and other.start <= self.end


def root_lifetimes(program: KernelProgram) -> dict[Tensor, tuple[int, int]]:
    """``(first, last)`` call of every arena storage root, in order of definition."""
    start: dict[Tensor, int] = {}
    end: dict[Tensor, int] = {}
    for i, call in enumerate(program.calls):
        for t in call.args + call.workspaces:
            root = t.root
            if root.kind not in ARENA_KINDS:
                continue
            if root not in start and root.kind == TensorKind.ACTIVATION:
                if not any(o.root is root for o in call.outputs):
                    raise ValueError(f"tensor {root.name} is read before it is written")
            start.setdefault(root, i)
            end[root] = i
    return {t: (start[t], end[t]) for t in start}


def regions(
    lifetimes: dict[Tensor, tuple[int, int]], pairs: list[InplacePair] = ()
) -> list[Interval]:
    """One interval per region: every arena root alone, except in-place pairs merged."""
    region: dict[Tensor, Interval] = {}
    for t, (s, e) in lifetimes.items():
        region[t] = Interval(t, s, e, t.nbytes, {t: 0})
    for pair in pairs:
        group, single = region[pair.input], region[pair.output]
        offset = group.members[pair.input] - pair.offset
        if offset < 0:  # make room below: shift every member up
            group.members = {t: o - offset for t, o in group.members.items()}
            offset = 0
        group.members[pair.output] = offset
        group.nbytes = max(o + t.nbytes for t, o in group.members.items())
        group.start, group.end = min(group.start, single.start), max(group.end, single.end)
        for member in single.members:
            region[member] = group
    unique = {id(iv): iv for iv in region.values()}
    return sorted(unique.values(), key=lambda iv: (iv.start, iv.tensor.index))
