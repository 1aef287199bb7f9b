"""Arena planning: buffer model → solver (from the registry) → verifier (always).

``best`` runs every registered solver and keeps the smallest arena, as TVM's
removed USMP compared its greedy algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor
from .buffers import BufferModel
from .inplace import InplacePair
from .liveness import Interval
from .solvers import SOLVERS, align
from .verify import verify_plan


@dataclass
class ArenaPlan:
    """Offsets of arena roots, the arena size and the model it was planned from.

    ``offsets`` holds every arena storage root; roots of one in-place region
    overlap by design at the call that overwrites.
    """

    offsets: dict[Tensor, int]
    arena_bytes: int
    model: BufferModel
    algorithm: str
    alignment: int

    @property
    def lower_bound_bytes(self) -> int:
        return self.model.lower_bound_bytes

    @property
    def intervals(self) -> list[Interval]:
        return self.model.intervals

    @property
    def inplace(self) -> list[InplacePair]:
        return self.model.pairs


def algorithms() -> tuple[str, ...]:
    """Names ``plan_arena`` accepts: every registered solver, then ``best``."""
    return (*SOLVERS, "best")


def plan_buffers(model: BufferModel, algorithm: str = "best", alignment: int = 16) -> ArenaPlan:
    """Plan ``model`` with ``algorithm`` and verify the result (:class:`PlanError` if wrong)."""
    if algorithm not in algorithms():
        raise ValueError(f"unknown planner {algorithm!r}; choose one of {', '.join(algorithms())}")
    best = None
    for name in list(SOLVERS) if algorithm == "best" else [algorithm]:
        bases = SOLVERS[name](model, alignment)
        size = max((base + iv.nbytes for iv, base in bases.items()), default=0)
        size = max(align(size, alignment), alignment)
        if best is None or size < best[0]:
            best = (size, name, bases)
    size, name, bases = best
    offsets = {t: base + o for iv, base in bases.items() for t, o in iv.members.items()}
    verify_plan(model, offsets, size, alignment)
    return ArenaPlan(offsets, size, model, name, alignment)


def plan_arena(
    program: KernelProgram,
    algorithm: str = "best",
    alignment: int = 16,
    token_overwrite: bool = True,
) -> ArenaPlan:
    """Plan the arena of ``program`` (outputs of row-wise kernels over dead inputs with
    ``token_overwrite``); the plan is verified before it is returned."""
    return plan_buffers(BufferModel.from_program(program, token_overwrite), algorithm, alignment)
