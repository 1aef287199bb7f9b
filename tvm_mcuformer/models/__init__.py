"""Models small enough for microcontrollers: :class:`TinyViT` and its configs."""

from tvm_mcuformer.models.vit import (
    DEMO_CONFIG,
    GELU_KINDS,
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
