"""Liveness of the tensors that live in the arena.

Program points are call indices. A tensor is live from the call that writes
it to the last call that reads it or any view of it, inclusive; a kernel
workspace is live during its own call only. Inputs, outputs and constants are
outside the arena (the caller's buffers and flash).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor, TensorKind

ARENA_KINDS = (TensorKind.ACTIVATION, TensorKind.WORKSPACE)


@dataclass(frozen=True, eq=False)
class Interval:
    """``tensor`` occupies ``nbytes`` of the arena during calls ``start..end`` (inclusive)."""

    tensor: Tensor
    start: int
    end: int
    nbytes: int

    def overlaps(self, other: Interval) -> bool:
        return self.start <= other.end and other.start <= self.end


def live_intervals(program: KernelProgram) -> list[Interval]:
    """One interval per arena storage root, in order of first definition."""
    start: dict[Tensor, int] = {}
    end: dict[Tensor, int] = {}
    for i, call in enumerate(program.calls):
        for t in call.args + call.workspaces:
            root = t.root
            if root.kind not in ARENA_KINDS:
                continue
            start.setdefault(root, i)
            end[root] = i
    for root, s in start.items():
        if root.kind == TensorKind.ACTIVATION and s != _writer(program, root):
            raise ValueError(f"tensor {root.name} is read before it is written")
    return [Interval(t, start[t], end[t], t.nbytes) for t in start]


def _writer(program: KernelProgram, root: Tensor) -> int:
    for i, call in enumerate(program.calls):
        if any(o.root is root for o in call.outputs):
            return i
    return -1


def live_bytes_per_call(intervals: list[Interval], num_calls: int) -> list[int]:
    """Sum of live arena bytes at each call."""
    live = [0] * num_calls
    for iv in intervals:
        for i in range(iv.start, iv.end + 1):
            live[i] += iv.nbytes
    return live


def liveness_lower_bound(intervals: list[Interval], num_calls: int) -> int:
    """No arena can be smaller than the most bytes live at one program point."""
    return max(live_bytes_per_call(intervals, num_calls), default=0)
