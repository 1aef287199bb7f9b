"""The plan verifier: run on every plan, whichever solver made it.

A plan is accepted only if every arena root has an offset, lies inside the
arena, regions start aligned, and no two roots live at the same call share a
byte — except an in-place pair at the call that overwrites, and then only at
the offset the pair prescribes (the input ``offset`` bytes into the output).
"""

from __future__ import annotations

from ..lowering.program import Tensor
from .buffers import BufferModel


class PlanError(RuntimeError):
    """An arena plan that would corrupt live data (a planner bug, never user input)."""


def verify_plan(
    model: BufferModel, offsets: dict[Tensor, int], arena_bytes: int, alignment: int
) -> None:
    """Raise :class:`PlanError` naming the first violation of the plan's invariants."""
    for t in model.lifetimes:
        if t not in offsets:
            raise PlanError(f"tensor {t.name} has no arena offset")
        if offsets[t] < 0 or offsets[t] + t.nbytes > arena_bytes:
            raise PlanError(
                f"tensor {t.name} [{offsets[t]}, {offsets[t] + t.nbytes}) is outside the "
                f"arena of {arena_bytes} bytes"
            )
    for iv in model.intervals:
        base = offsets[iv.tensor] - iv.members[iv.tensor]
        if base % alignment:
            raise PlanError(f"region of {iv.tensor.name} starts at {base}, not {alignment}-aligned")
    allowed = {(p.input, p.output): p.offset for p in model.pairs}
    roots = sorted(model.lifetimes, key=lambda t: model.lifetimes[t][0])
    for i, a in enumerate(roots):
        sa, ea = model.lifetimes[a]
        for b in roots[i + 1 :]:
            sb, eb = model.lifetimes[b]
            if sb > ea:
                break
            if not (sa <= eb and sb <= ea):
                continue
            lo_a, lo_b = offsets[a], offsets[b]
            if lo_a + a.nbytes <= lo_b or lo_b + b.nbytes <= lo_a:
                continue
            shift = allowed.get((a, b), allowed.get((b, a)))
            inp, out = (a, b) if (a, b) in allowed else (b, a)
            if shift is not None and offsets[inp] - offsets[out] == shift:
                continue
            raise PlanError(
                f"tensors {a.name} (calls {sa}..{ea}) and {b.name} (calls {sb}..{eb}) are live "
                f"together but overlap at bytes [{max(lo_a, lo_b)}, "
                f"{min(lo_a + a.nbytes, lo_b + b.nbytes)})"
            )
