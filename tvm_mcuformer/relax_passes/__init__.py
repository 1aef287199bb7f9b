"""Relax passes of tvm-mcuformer and the ``mcuformer`` Relax pipeline."""

from .pipeline import PIPELINE_NAME, lowering_passes, register

__all__ = ["PIPELINE_NAME", "lowering_passes", "register"]
