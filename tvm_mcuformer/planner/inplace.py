"""In-place aliases for token overwrite: which outputs may be placed over their inputs.

A call of a kernel scheduled by :mod:`tvm_mcuformer.schedules.token_overwrite`
may write its output over its first input when that input is an arena
activation read for the last time by this call. :func:`inplace_pairs` lists
those aliases with the byte offset of the input inside the output's region
(0 when the output rows are no larger, ``N·(M−K)`` bytes otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lowering.program import KernelProgram, Tensor, TensorKind


@dataclass(frozen=True, eq=False)
class InplacePair:
    """At call ``call``, ``output`` overlays ``input`` which starts ``offset`` bytes into it."""

    call: int
    input: Tensor
    output: Tensor
    offset: int


def inplace_pairs(
    program: KernelProgram, lifetimes: dict[Tensor, tuple[int, int]]
) -> list[InplacePair]:
    """The token-overwrite aliases the program allows, in call order.

    ``lifetimes``: first and last call of every arena root
    (:func:`~tvm_mcuformer.planner.liveness.root_lifetimes`); an input may be
    overwritten by the call that reads it last.
    """
    pairs = []
    for i, call in enumerate(program.calls):
        if not call.may_overwrite_input:
            continue
        src, dst = call.inputs[0].root, call.outputs[0].root
        if src.kind != TensorKind.ACTIVATION or dst.kind != TensorKind.ACTIVATION:
            continue  # the caller's buffers are not the planner's to overlay
        if lifetimes[src][1] != i or any(t.root is src for t in call.inputs[1:]):
            continue  # still read later, or read through another argument
        if call.inputs[0].nbytes != src.nbytes:
            continue
        pairs.append(InplacePair(i, src, dst, max(0, dst.nbytes - src.nbytes)))
    return pairs
