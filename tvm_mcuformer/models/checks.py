"""Validation rules of a ViT architecture, shared by :class:`ViTConfig` and the search space.

Each check raises ``ValueError`` with ``owner`` (the class being built) and
the field in the message, and says what to pick instead.
"""

from __future__ import annotations

GELU_KINDS = ("gelu", "quick")


def positive_int(owner: str, field: str, value: object) -> None:
    """``value`` is an ``int`` (not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{field}={value!r} must be a positive integer")


def patch_divides(owner: str, patch_size: int, img_size: int) -> None:
    """The patch tiles the image side."""
    if img_size % patch_size:
        raise ValueError(
            f"{owner}: patch_size={patch_size} does not divide img_size={img_size}; "
            "pick a patch size that divides the image side"
        )


def heads_divide(owner: str, num_heads: int, embed_dim: int, field: str = "num_heads") -> None:
    """Every head gets the same width."""
    if embed_dim % num_heads:
        raise ValueError(
            f"{owner}: {field}={num_heads} does not divide embed_dim={embed_dim}; "
            "pick heads that divide the embedding width"
        )


def mlp_not_empty(owner: str, mlp_ratio: float, embed_dim: int, field: str = "mlp_ratio") -> None:
    """``int(embed_dim · mlp_ratio) >= 1``."""
    if int(embed_dim * mlp_ratio) < 1:
        raise ValueError(
            f"{owner}.{field}={mlp_ratio!r} gives an empty MLP at embed_dim={embed_dim}"
        )


def gelu_kind(owner: str, gelu: str) -> None:
    if gelu not in GELU_KINDS:
        raise ValueError(
            f"{owner}.gelu={gelu!r} is unknown; choose one of: {', '.join(GELU_KINDS)}"
        )
