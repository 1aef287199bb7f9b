"""Models small enough for microcontrollers: :class:`TinyViT` and its configs."""

from tvm_mcuformer.models.checks import GELU_KINDS
from tvm_mcuformer.models.vit import (
    DEMO_CONFIG,
    QuickGELU,
    TinyViT,
    ViTConfig,
    build_vit,
)

__all__ = [
    "DEMO_CONFIG",
    "GELU_KINDS",
    "QuickGELU",
    "TinyViT",
    "ViTConfig",
    "build_vit",
]
