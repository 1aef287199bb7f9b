"""Lowering: a Relax module to the kernel call list the planner and emitter consume."""

from .lower import lower
from .pipeline import PIPELINE_NAME, get_pipeline, lowering_passes, register
from .program import KernelCall, KernelProgram, Tensor, TensorKind

__all__ = [
    "PIPELINE_NAME",
    "KernelCall",
    "KernelProgram",
    "Tensor",
    "TensorKind",
    "get_pipeline",
    "lower",
    "lowering_passes",
    "register",
]
