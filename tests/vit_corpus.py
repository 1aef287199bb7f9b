"""ViTs written the way users write them, not the way this project does (test-only).

Each builder returns a small ``nn.Module`` taking ``(B, 1, SIDE, SIDE)`` images
(digits upsampled to ``SIDE``) and returning ``(B, 10)`` logits, patch 8, 2
layers, 4 heads. They differ in the idioms the int8 path must recognise:

* ``cls_index_tanh``: class token concatenated with ``expand``, q/k/v by
  indexing the reshaped qkv tensor (``qkv[0]``, older timm), scale after
  QKᵀ, ``nn.GELU(approximate="tanh")``, class-token pooling;
* ``unbind_sdpa``: ``qkv.unbind(0)`` and ``F.scaled_dot_product_attention``,
  exact GELU, class-token pooling, position embedding interpolated from a
  larger grid in ``forward`` (timm's ``resample_abs_pos_embed``);
* ``quick_gelu``: QuickGELU ``x * sigmoid(1.702 x)`` (CLIP), q scaled before
  QKᵀ, mean pooling;
* ``relu_stem``: a hybrid conv stem (3×3 conv + ReLU + ReLU6) before the patch
  conv, Hardswish in the MLP;
* ``ln_no_affine``: LayerNorm without γ/β, SiLU in the MLP, ``split`` for
  q/k/v;
* ``deit``: DeiT-style class *and* distillation tokens, eval head averaging
  the two token heads;
* ``hf_vit``: Hugging Face ``transformers.ViTForImageClassification`` with a
  small random config.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

SIDE = 16
PATCH = 8
DIM = 32
HEADS = 4
DEPTH = 2
CLASSES = 10
EPOCHS = 12


def digits_at(side: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits (N, 1, 8, 8) upsampled by pixel repetition to ``side``."""
    from tvm_mcuformer.data import load_split

    x, y = load_split("digits", split)
    k = side // x.shape[-1]
    return np.ascontiguousarray(x.repeat(k, axis=2).repeat(k, axis=3)), y


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention; ``style`` picks how q/k/v are formed and scaled."""

    def __init__(self, dim: int, heads: int, style: str) -> None:
        super().__init__()
        self.heads, self.head_dim, self.style = heads, dim // heads, style
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        if self.style == "split":
            q, k, v = self.qkv(x).split(c, dim=-1)
            q, k, v = (
                t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v)
            )
        else:
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            if self.style == "unbind_sdpa":
                q, k, v = qkv.unbind(0)
                out = F.scaled_dot_product_attention(q, k, v)
                return self.proj(out.transpose(1, 2).reshape(b, n, c))
            q, k, v = qkv[0], qkv[1], qkv[2]
        if self.style == "scale_before":
            attn = (q * self.scale) @ k.transpose(-2, -1)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, style: str, act: nn.Module, affine: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn = Attention(dim, heads, style)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), act, nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CorpusViT(nn.Module):
    """A plain-torch ViT; the keyword arguments select the idioms (see the module doc)."""

    def __init__(
        self,
        style: str = "index",
        act: type[nn.Module] = nn.GELU,
        act_kwargs: dict | None = None,
        tokens: int = 1,
        pool: str = "cls",
        affine: bool = True,
        stem: bool = False,
        pos_grid: int | None = None,
    ) -> None:
        super().__init__()
        self.stem = (
            nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU6())
            if stem
            else nn.Identity()
        )
        self.patch = nn.Conv2d(4 if stem else 1, DIM, PATCH, stride=PATCH)
        grid = SIDE // PATCH
        self.tokens, self.pool = torch.nn.Parameter(torch.randn(1, tokens, DIM) * 0.02), pool
        self.pos_grid = pos_grid or grid
        self.pos_tokens = nn.Parameter(torch.randn(1, tokens, DIM) * 0.02)
        self.pos_patches = nn.Parameter(torch.randn(1, self.pos_grid**2, DIM) * 0.02)
        self.blocks = nn.Sequential(
            *(Block(DIM, HEADS, style, act(**(act_kwargs or {})), affine) for _ in range(DEPTH))
        )
        self.norm = nn.LayerNorm(DIM, elementwise_affine=affine)
        self.heads = nn.ModuleList(nn.Linear(DIM, CLASSES) for _ in range(tokens))

    def _pos(self, grid: int):
        pos = self.pos_patches
        if self.pos_grid != grid:
            pos = pos.reshape(1, self.pos_grid, self.pos_grid, DIM).permute(0, 3, 1, 2)
            pos = F.interpolate(pos, size=(grid, grid), mode="bilinear", align_corners=False)
            pos = pos.permute(0, 2, 3, 1).reshape(1, grid * grid, DIM)
        return torch.cat([self.pos_tokens, pos], dim=1)

    def forward(self, x):
        x = self.patch(self.stem(x))
        grid = x.shape[-1]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.tokens.expand(x.shape[0], -1, -1), x], dim=1) + self._pos(grid)
        x = self.norm(self.blocks(x))
        if self.pool == "mean":
            return self.heads[0](x[:, self.tokens.shape[1] :].mean(1))
        logits = [head(x[:, i]) for i, head in enumerate(self.heads)]
        return sum(logits) / len(logits)


def cls_index_tanh() -> nn.Module:
    return CorpusViT("index", nn.GELU, {"approximate": "tanh"})


def unbind_sdpa() -> nn.Module:
    return CorpusViT("unbind_sdpa", nn.GELU, pos_grid=3)


def quick_gelu() -> nn.Module:
    return CorpusViT("scale_before", QuickGELU, pool="mean")


def relu_stem() -> nn.Module:
    return CorpusViT("index", nn.Hardswish, stem=True)


def ln_no_affine() -> nn.Module:
    return CorpusViT("split", nn.SiLU, affine=False)


def deit() -> nn.Module:
    return CorpusViT("index", nn.GELU, tokens=2)


class HFViT(nn.Module):
    """``transformers.ViTForImageClassification`` returning plain logits."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        config = ViTConfig(
            image_size=SIDE,
            patch_size=PATCH,
            num_channels=1,
            hidden_size=DIM,
            num_hidden_layers=DEPTH,
            num_attention_heads=HEADS,
            intermediate_size=2 * DIM,
            num_labels=CLASSES,
            attn_implementation="eager",
        )
        self.vit = ViTForImageClassification(config)

    def forward(self, x):
        return self.vit(pixel_values=x).logits


def hf_vit() -> nn.Module:
    return HFViT()


CORPUS = {
    "cls_index_tanh": cls_index_tanh,
    "unbind_sdpa": unbind_sdpa,
    "quick_gelu": quick_gelu,
    "relu_stem": relu_stem,
    "ln_no_affine": ln_no_affine,
    "deit": deit,
    "hf_vit": hf_vit,
}


def build(name: str, seed: int = 0) -> nn.Module:
    """The corpus model ``name`` with weights from ``seed``, in eval mode."""
    torch.manual_seed(seed)
    return CORPUS[name]().eval()


def trained(name: str, epochs: int = EPOCHS) -> nn.Module:
    """``build(name)`` trained ``epochs`` on the 16×16 digits train split (1 thread, seed 0).

    Random weights give flat logits, where int8 vs float top-1 agreement means
    nothing; a short training makes it meaningful.
    """
    from tvm_mcuformer.training import train

    x, y = digits_at(SIDE, "train")
    return train(build(name), x, y, epochs=epochs, seed=0, progress=False)


def compare(logits: np.ndarray, ref: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """int8 ``logits`` (dequantized) vs float ``ref`` on the same inputs, row by row."""
    norms = np.linalg.norm(logits, axis=1) * np.linalg.norm(ref, axis=1)
    return {
        "float_top1": float((ref.argmax(1) == labels).mean()),
        "int8_top1": float((logits.argmax(1) == labels).mean()),
        "top1_agreement": float((logits.argmax(1) == ref.argmax(1)).mean()),
        "logits_cosine": float(np.mean((logits * ref).sum(1) / norms)),
    }


__all__ = ["CORPUS", "EPOCHS", "SIDE", "build", "compare", "digits_at", "trained"]
