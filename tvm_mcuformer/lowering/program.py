"""The lowered program: tensors and the straight-line list of kernel calls.

This is the object lowering hands to the planner and the C emitter. Every
tensor has one *storage root*: a view (a Relax reshape) aliases the storage
of the tensor it reshapes, and only roots are placed in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from .kernels import CKernel


class TensorKind(StrEnum):
    INPUT = "input"  # the caller's input buffer
    OUTPUT = "output"  # the caller's output buffer
    CONSTANT = "constant"  # weights: const data in flash
    ACTIVATION = "activation"  # produced by one call, read by later ones: in the arena
    WORKSPACE = "workspace"  # a kernel's lifted temporary, live for that call only


@dataclass(eq=False)
class Tensor:
    """A tensor of the lowered program (compared by identity)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: TensorKind
    view_of: Tensor | None = None
    value: np.ndarray | None = None  # constants only

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def root(self) -> Tensor:
        t = self
        while t.view_of is not None:
            t = t.view_of
        return t


@dataclass(eq=False)
class KernelCall:
    """One call ``kernel(*args, *workspaces)``; ``outputs`` is the tail of ``args``."""

    kernel: CKernel
    args: list[Tensor]
    num_outputs: int
    workspaces: list[Tensor] = field(default_factory=list)
    # Row-wise (token-overwrite schedule): its output may be placed over its first input.
    may_overwrite_input: bool = False

    @property
    def inputs(self) -> list[Tensor]:
        return self.args[: len(self.args) - self.num_outputs]

    @property
    def outputs(self) -> list[Tensor]:
        return self.args[len(self.args) - self.num_outputs :]


@dataclass
class KernelProgram:
    """Tensors and calls of one model, in execution order."""

    tensors: list[Tensor]
    calls: list[KernelCall]
    inputs: list[Tensor]
    outputs: list[Tensor]
    kernels: dict[str, CKernel]

    def roots(self, kind: TensorKind) -> list[Tensor]:
        """Storage roots of the given kind."""
        return [t for t in self.tensors if t.view_of is None and t.kind == kind]

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.roots(TensorKind.CONSTANT))
