"""A small Vision Transformer built from ops that ``torch.export`` and TVM Relax import.

Layout (pre-LN, no class token)::

    image (B, C, H, W)
      -> Conv2d(kernel = stride = patch)       patch embedding, (B, D, H/p, W/p)
      -> flatten + transpose                   tokens, (B, N, D), N = (H/p)(W/p)
      -> + learned position embedding          (1, N, D)
      -> depth x Block:
           x = x + Attention(LayerNorm(x))
           x = x + MLP(LayerNorm(x))           Linear(D, hidden) -> GELU -> Linear(hidden, D)
      -> LayerNorm -> mean over tokens -> Linear(D, num_classes)

Attention uses one ``Linear(D, 3D)`` for q, k and v, slices it on the last
axis and works on 4-D tensors ``(B, heads, N, head_dim)`` only: some
microcontroller runtimes (TFLite Micro's STRIDED_SLICE) reject 5-D tensors.
``gelu="quick"`` uses ``x * sigmoid(1.702 x)``, which runtimes without a GELU
kernel (TFLite Micro) can execute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import checks


@dataclass(frozen=True)
class ViTConfig:
    """Hyperparameters of :class:`TinyViT`; validated on construction."""

    img_size: int
    patch_size: int
    in_chans: int
    num_classes: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    gelu: str = "gelu"

    def __post_init__(self) -> None:
        owner = "ViTConfig"
        ints = ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth")
        for field in (*ints, "num_heads"):
            checks.positive_int(owner, field, getattr(self, field))
        checks.patch_divides(owner, self.patch_size, self.img_size)
        checks.heads_divide(owner, self.num_heads, self.embed_dim)
        checks.mlp_not_empty(owner, self.mlp_ratio, self.embed_dim)
        checks.gelu_kind(owner, self.gelu)

    @property
    def num_tokens(self) -> int:
        """Patches per image, ``(img_size / patch_size) ** 2``."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        """Width of the MLP hidden layer, ``int(embed_dim * mlp_ratio)``."""
        return int(self.embed_dim * self.mlp_ratio)


DEMO_CONFIG = ViTConfig(
    img_size=28,
    patch_size=7,
    in_chans=1,
    num_classes=10,
    embed_dim=64,
    depth=2,
    num_heads=4,
    mlp_ratio=2.0,
    gelu="quick",
)
"""MNIST 28x28 demo: 16 tokens, ~72k parameters; QuickGELU so TFLite Micro can run it too."""


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: a GELU approximation made of LOGISTIC and MUL."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _activation(kind: str) -> nn.Module:
    return nn.GELU() if kind == "gelu" else QuickGELU()


class Attention(nn.Module):
    """Multi-head self-attention with an explicit qkv ``Linear`` and 4-D tensors only."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x)
        q = self._heads(qkv[:, :, : self.dim])
        k = self._heads(qkv[:, :, self.dim : 2 * self.dim])
        v = self._heads(qkv[:, :, 2 * self.dim :])
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).permute(0, 2, 1, 3).reshape(b, n, d)
        return self.proj(out)


class Block(nn.Module):
    """Pre-LN transformer block: attention and MLP, each with a residual."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.embed_dim, cfg.mlp_hidden),
            _activation(cfg.gelu),
            nn.Linear(cfg.mlp_hidden, cfg.embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Small ViT classifier: ``(B, in_chans, img_size, img_size)`` -> logits ``(B, num_classes)``.

    Arguments are those of :class:`ViTConfig` (validated there; a patch size
    that does not divide the image raises ``ValueError``). The validated
    config is kept as ``self.config``.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_chans: int,
        num_classes: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        gelu: str = "gelu",
    ) -> None:
        super().__init__()
        cfg = ViTConfig(
            img_size,
            patch_size,
            in_chans,
            num_classes,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            gelu,
        )
        self.config = cfg
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, embed_dim))
        self.blocks = nn.Sequential(*(Block(cfg) for _ in range(depth)))
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x).mean(dim=1))


def build_vit(cfg: ViTConfig) -> TinyViT:
    """Build a freshly initialised :class:`TinyViT` from ``cfg`` (seed torch first to fix it)."""
    return TinyViT(**asdict(cfg))
