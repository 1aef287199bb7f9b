"""Relax graph passes of tvm-mcuformer: pattern recognition, patch-embedding decomposition.

The ``mcuformer`` pipeline that strings them together with quantization,
schedules and lowering is :mod:`tvm_mcuformer.lowering.pipeline`.
"""

from .patch_embed import DecomposePatchEmbedding
from .recognize import recognize_all

__all__ = ["DecomposePatchEmbedding", "recognize_all"]
