"""Liveness of the storage that lives in the arena.

Program points are call indices. A tensor is live from the call that writes
it to the last call that reads it or any view of it, inclusive; a kernel
workspace is live during its own call only. Constants are in flash. With
``io_in_arena`` the model input (written by the caller before the first call,
live to its last reader) and output (live from its writer to the end) are
arena tensors too, like TFLite Micro's and TVM USMP's ``use_workspace_io``;
otherwise they are the caller's buffers.

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
IO_KINDS = (TensorKind.INPUT, TensorKind.OUTPUT)


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


def root_lifetimes(
    program: KernelProgram, io_in_arena: bool = False
) -> dict[Tensor, tuple[int, int]]:
    """``(first, last)`` call of every arena storage root, in order of definition."""
    kinds = ARENA_KINDS + (IO_KINDS if io_in_arena else ())
    start: dict[Tensor, int] = {}
    end: dict[Tensor, int] = {}
    if io_in_arena:
        for t in program.inputs:
            start[t.root] = 0  # the caller writes it before the first call
    for i, call in enumerate(program.calls):
        for t in call.args + call.workspaces:
            root = t.root
            if root.kind not in kinds:
                continue
            if root not in start and root.kind in (TensorKind.ACTIVATION, TensorKind.OUTPUT):
                if not any(o.root is root for o in call.outputs):
                    raise ValueError(f"tensor {root.name} is read before it is written")
            start.setdefault(root, i)
            end[root] = i
    if io_in_arena:
        for t in program.outputs:
            end[t.root] = len(program.calls) - 1  # the caller reads it after the last call
    return {t: (start[t], end.get(t, start[t])) for t in start}


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
