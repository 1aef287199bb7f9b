"""The buffer model: everything the planner places, built once per plan.

From a :class:`~tvm_mcuformer.lowering.KernelProgram` (or, for tests, from
synthetic buffers) it holds each arena storage root's lifetime (first and last
call, inclusive), the token-overwrite pairs, and the *regions* the solvers
place (an in-place pair's roots share one region). Live bytes per call, the
liveness lower bound and the naive size are derived here and nowhere else:
the memory report, the per-op report and the timeline all read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor, TensorKind
from .inplace import InplacePair, inplace_pairs
from .liveness import Interval, regions, root_lifetimes


@dataclass(eq=False)
class BufferModel:
    """Arena roots with lifetimes, in-place pairs and the regions built from them."""

    lifetimes: dict[Tensor, tuple[int, int]]
    pairs: list[InplacePair]
    intervals: list[Interval]
    num_calls: int

    @classmethod
    def from_program(cls, program: KernelProgram, token_overwrite: bool = True) -> BufferModel:
        """The model of ``program``'s arena; in-place pairs only with ``token_overwrite``."""
        lifetimes = root_lifetimes(program)
        pairs = inplace_pairs(program, lifetimes) if token_overwrite else []
        return cls.from_buffers(lifetimes, pairs, len(program.calls))

    @classmethod
    def from_buffers(
        cls,
        lifetimes: dict[Tensor, tuple[int, int]],
        pairs: list[InplacePair] = (),
        num_calls: int | None = None,
    ) -> BufferModel:
        """A model of given buffers (synthetic planner tests, other front ends)."""
        if num_calls is None:
            num_calls = max((e for _, e in lifetimes.values()), default=-1) + 1
        return cls(dict(lifetimes), list(pairs), regions(lifetimes, pairs), num_calls)

    def live_bytes_per_call(self, kinds: tuple[TensorKind, ...] | None = None) -> list[int]:
        """Bytes of the roots live at each call (of ``kinds``, default all).

        An in-place pair counts ``max(input, output)`` at the call that
        overwrites, as the two share their bytes there.
        """
        live = [0] * self.num_calls
        for t, (s, e) in self.lifetimes.items():
            if kinds is None or t.kind in kinds:
                for i in range(s, e + 1):
                    live[i] += t.nbytes
        for pair in self.pairs:
            if kinds is None or pair.input.kind in kinds:
                live[pair.call] -= min(pair.input.nbytes, pair.output.nbytes)
        return live

    @property
    def lower_bound_bytes(self) -> int:
        """No arena can be smaller than the most bytes live at one call."""
        return max(self.live_bytes_per_call(), default=0)

    @property
    def naive_bytes(self) -> int:
        """Every root in its own buffer (no reuse)."""
        return sum(t.nbytes for t in self.lifetimes)
