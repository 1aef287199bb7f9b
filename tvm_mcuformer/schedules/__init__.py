"""TIR schedules for microcontroller kernels."""

from .inline import AutoInline, inline_elementwise

__all__ = ["AutoInline", "inline_elementwise"]
