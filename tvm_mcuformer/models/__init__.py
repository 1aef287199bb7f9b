"""Models small enough for microcontrollers: :class:`TinyViT` and its configs; :class:`PlainViT`."""

from tvm_mcuformer.models.checks import GELU_KINDS
from tvm_mcuformer.models.plain_vit import PlainViT
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
    "PlainViT",
    "QuickGELU",
    "TinyViT",
    "ViTConfig",
    "build_vit",
]
