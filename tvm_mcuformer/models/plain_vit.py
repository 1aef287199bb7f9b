"""A ViT written the way plain PyTorch code usually writes it (the memory benchmarks' model).

Unlike :class:`~tvm_mcuformer.models.TinyViT` (slices of the qkv output) it
splits heads as ``qkv.reshape(B, N, 3, H, dh).permute(2, 0, 3, 1, 4).unbind(0)``
and scales the scores after ``q @ kᵀ``: Conv2d patch embedding, learned position
embedding, pre-LN blocks with ``nn.LayerNorm`` and exact ``nn.GELU``, mean
pooling, a linear head. ``mlp_rank`` factorises both MLP linears
``in → out`` into ``Linear(in, r, bias=False)`` then ``Linear(r, out)`` (the
search's low-rank MLP, :mod:`tvm_mcuformer.search.supernet`).
"""

from __future__ import annotations

import torch
from torch import nn


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


def _linear(n_in: int, n_out: int, rank: int | None) -> nn.Module:
    if rank is None:
        return nn.Linear(n_in, n_out)
    return nn.Sequential(nn.Linear(n_in, rank, bias=False), nn.Linear(rank, n_out))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, rank: int | None) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.mlp = nn.Sequential(_linear(dim, hidden, rank), nn.GELU(), _linear(hidden, dim, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PlainViT(nn.Module):
    """``(1, in_chans, img_size, img_size)`` → logits ``(1, num_classes)``; see the module doc."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 192,
        depth: int = 6,
        num_heads: int = 3,
        mlp_ratio: float = 2.0,
        mlp_rank: int | None = None,
    ) -> None:
        super().__init__()
        if img_size % patch_size or embed_dim % num_heads:
            raise ValueError("img_size must be a multiple of patch_size, embed_dim of num_heads")
        tokens = (img_size // patch_size) ** 2
        hidden = int(embed_dim * mlp_ratio)
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, embed_dim) * 0.02)
        self.blocks = nn.Sequential(
            *(_Block(embed_dim, num_heads, hidden, mlp_rank) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        return self.head(self.norm(self.blocks(x)).mean(1))
