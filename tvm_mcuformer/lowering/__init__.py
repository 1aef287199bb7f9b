"""Lowering: a Relax module to the kernel call list the planner and emitter consume."""

from .lower import lower
from .program import KernelCall, KernelProgram, Tensor, TensorKind

__all__ = ["KernelCall", "KernelProgram", "Tensor", "TensorKind", "lower"]
