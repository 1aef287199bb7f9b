"""AutoFormer-style weight-entangled ViT supernet with low-rank MLPs, and subnet extraction.

:class:`Supernet` holds the weights of the largest subnet of a
:class:`~tvm_mcuformer.search.space.SearchSpace`; every subnet uses the leading
slices of the same tensors (weight entanglement):

- patch embedding ``Conv2d`` weight/bias ``[:embed]``;
- position embedding ``(1, N, D_max)`` sliced to ``[:, :, :embed]``;
- LayerNorm weight/bias ``[:embed]``;
- qkv: the weight is three stacked ``(D_max, D_max)`` blocks (q, k, v); a
  subnet takes ``[:embed, :embed]`` of each block, so q, k and v each keep
  their leading rows; proj ``[:embed, :embed]``;
- MLP linear ``in -> out`` (with ``low_rank_scope="all"`` also qkv, proj and
  the classifier): with ρ = 1 a plain weight ``[:out, :in]``;
  with ρ < 1 the factors ``V (R_max, in_max)`` and ``U (out_max, R_max)``
  sliced to ``V[:r, :in]`` and ``U[:out, :r]``, ``r = low_rank(ρ, min(in, out))``,
  so the layer computes ``U_r (V_r x) + b[:out]`` (qkv's rows of U, like those
  of its plain weight, are taken per q/k/v block);
- blocks ``[:depth]``; classifier weight ``[:, :embed]``.

The layout is :class:`~tvm_mcuformer.models.TinyViT`'s: pre-LN blocks, one
qkv linear sliced on the last axis, 4-D attention tensors, LayerNorm, mean
over tokens, linear head; no class token. :meth:`Supernet.extract` copies a
subnet into a standalone :class:`SubnetViT` of standard modules (``Conv2d``,
``Linear``, ``LayerNorm``, TinyViT's ``Attention``, GELU or QuickGELU) that
computes the same function and exports with ``torch.export``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tvm_mcuformer.models import QuickGELU
from tvm_mcuformer.models.vit import Attention
from tvm_mcuformer.search.space import SearchSpace, SubnetConfig, low_rank


def _attention_rank_ratio(space: SearchSpace) -> float:
    """ρ of the qkv, proj and classifier linears: the space's with scope "all", else 1."""
    return space.rank_ratio if space.low_rank_scope == "all" else 1.0


def _activation(kind: str) -> nn.Module:
    return nn.GELU() if kind == "gelu" else QuickGELU()


def _attend(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Multi-head attention on a ``(B, N, 3D)`` qkv tensor, exactly as TinyViT's ``Attention``."""
    b, n, three_d = qkv.shape
    d = three_d // 3
    head_dim = d // num_heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, n, num_heads, head_dim).permute(0, 2, 1, 3)

    q, k, v = heads(qkv[:, :, :d]), heads(qkv[:, :, d : 2 * d]), heads(qkv[:, :, 2 * d :])
    attn = torch.softmax((q * head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
    return (attn @ v).permute(0, 2, 1, 3).reshape(b, n, d)


class SuperLinear(nn.Module):
    """Entangled linear ``in_max -> out_max``: plain when ρ = 1, else ``U (V x) + b``.

    The output rows are ``blocks`` stacked blocks (qkv: q, k, v); a subnet with
    ``out`` outputs keeps the leading ``out / blocks`` rows of each block.
    Factors are initialised from the truncated SVD of a ``trunc_normal(0.02)``
    weight, so ``U V`` starts as the best rank-``R_max`` approximation of it;
    ``svd_init=False`` skips the SVD (factors ``trunc_normal(0.02)``) for
    weights that are overwritten or do not matter (memory planning).
    """

    def __init__(
        self, in_max: int, out_max: int, rank_ratio: float, blocks: int = 1, svd_init: bool = True
    ) -> None:
        super().__init__()
        self.rank_ratio, self.blocks = rank_ratio, blocks
        full = nn.init.trunc_normal_(torch.empty(out_max, in_max), std=0.02)
        self.bias = nn.Parameter(torch.zeros(out_max))
        if rank_ratio == 1:
            self.weight = nn.Parameter(full)
            return
        rank = low_rank(rank_ratio, min(in_max, out_max))
        if not svd_init:
            self.u = nn.Parameter(full[:, :rank].clone())
            self.v = nn.Parameter(full[:rank].clone())
            return
        p, s, qt = torch.linalg.svd(full, full_matrices=False)
        root = s[:rank].sqrt()
        self.u = nn.Parameter(p[:, :rank] * root)
        self.v = nn.Parameter(root[:, None] * qt[:rank])

    @property
    def factorised(self) -> bool:
        return self.rank_ratio != 1

    def _rows(self, t: torch.Tensor, out: int) -> torch.Tensor:
        """The rows of ``t`` (weight, U or bias) that a subnet with ``out`` outputs uses."""
        if self.blocks == 1:
            return t[:out]
        size, keep = t.shape[0] // self.blocks, out // self.blocks
        return torch.cat([t[i * size : i * size + keep] for i in range(self.blocks)])

    def _parts(self, n_in: int, out: int) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """``(V_r, U_r, bias)`` of the subnet's slice; V_r is None when not factorised."""
        bias = self._rows(self.bias, out)
        if not self.factorised:
            return None, self._rows(self.weight, out)[:, :n_in], bias
        r = low_rank(self.rank_ratio, min(n_in, out))
        return self.v[:r, :n_in], self._rows(self.u, out)[:, :r], bias

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        v, u, bias = self._parts(x.shape[-1], out)
        return F.linear(x if v is None else F.linear(x, v), u, bias)

    def extract(self, n_in: int, out: int) -> nn.Module:
        """Standalone copy with copied weights: ``Linear(in, out)`` when not factorised, else
        ``Sequential(Linear(in, r, bias=False), Linear(r, out))`` (V first, then U with the bias).
        """
        v, u, bias = self._parts(n_in, out)
        if v is None:
            return _linear(u, bias)
        return nn.Sequential(_linear(v, None), _linear(u, bias))


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _layer_norm(weight: torch.Tensor, bias: torch.Tensor, eps: float) -> nn.LayerNorm:
    norm = nn.LayerNorm(weight.shape[0], eps=eps)
    with torch.no_grad():
        norm.weight.copy_(weight)
        norm.bias.copy_(bias)
    return norm


class SuperBlock(nn.Module):
    """Pre-LN transformer block at the space's largest widths; runs any narrower subnet layer."""

    def __init__(self, space: SearchSpace, svd_init: bool = True) -> None:
        super().__init__()
        d = space.embed_dims[-1]
        hidden = int(d * space.mlp_ratios[-1])
        attn_rank = _attention_rank_ratio(space)
        self.norm1 = nn.LayerNorm(d)
        self.qkv = SuperLinear(d, 3 * d, attn_rank, 3, svd_init)  # rows: q, k, v blocks
        self.proj = SuperLinear(d, d, attn_rank, svd_init=svd_init)
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = SuperLinear(d, hidden, space.rank_ratio, svd_init=svd_init)
        self.act = _activation(space.gelu)
        self.fc2 = SuperLinear(hidden, d, space.rank_ratio, svd_init=svd_init)

    def forward(self, x: torch.Tensor, num_heads: int, hidden: int) -> torch.Tensor:
        e = x.shape[-1]
        h = F.layer_norm(x, (e,), self.norm1.weight[:e], self.norm1.bias[:e], self.norm1.eps)
        attn = _attend(self.qkv(h, 3 * e), num_heads)
        x = x + self.proj(attn, e)
        h = F.layer_norm(x, (e,), self.norm2.weight[:e], self.norm2.bias[:e], self.norm2.eps)
        return x + self.fc2(self.act(self.fc1(h, hidden)), e)

    def extract(self, embed: int, num_heads: int, hidden: int) -> SubnetBlock:
        attn = Attention(embed, num_heads)
        attn.qkv = self.qkv.extract(embed, 3 * embed)
        attn.proj = self.proj.extract(embed, embed)
        mlp = nn.Sequential(
            self.fc1.extract(embed, hidden), type(self.act)(), self.fc2.extract(hidden, embed)
        )
        return SubnetBlock(
            _layer_norm(self.norm1.weight[:embed], self.norm1.bias[:embed], self.norm1.eps),
            attn,
            _layer_norm(self.norm2.weight[:embed], self.norm2.bias[:embed], self.norm2.eps),
            mlp,
        )


class SubnetBlock(nn.Module):
    """Pre-LN block of an extracted subnet: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(
        self, norm1: nn.LayerNorm, attn: Attention, norm2: nn.LayerNorm, mlp: nn.Sequential
    ) -> None:
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm1, attn, norm2, mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SubnetViT(nn.Module):
    """A subnet as a standalone model, ``(B, C, H, W)`` -> logits; see :meth:`Supernet.extract`.

    ``self.config`` is its :class:`SubnetConfig`, ``self.space`` the space it came from.
    Each MLP is ``Sequential(fc1, activation, fc2)`` where a factorised linear
    is ``Sequential(Linear(in, r, bias=False), Linear(r, out))``.
    """

    def __init__(
        self,
        space: SearchSpace,
        cfg: SubnetConfig,
        patch_embed: nn.Conv2d,
        pos_embed: torch.Tensor,
        blocks: list[SubnetBlock],
        norm: nn.LayerNorm,
        head: nn.Module,
    ) -> None:
        super().__init__()
        self.space, self.config = space, cfg
        self.patch_embed = patch_embed
        self.pos_embed = nn.Parameter(pos_embed)
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x).mean(dim=1))


class Supernet(nn.Module):
    """Weight-entangled supernet over ``space``; ``forward(x, cfg)`` runs subnet ``cfg``.

    ``x`` is ``(B, in_chans, img_size, img_size)``; ``cfg`` must belong to
    ``space`` (``ValueError`` otherwise). Initialisation follows TinyViT
    (``trunc_normal(0.02)`` linears and position embedding, zero biases; low-rank
    factors from an SVD unless ``svd_init=False``, see :class:`SuperLinear`);
    seed torch first to fix it.
    """

    def __init__(self, space: SearchSpace, svd_init: bool = True) -> None:
        super().__init__()
        if not isinstance(space, SearchSpace):
            raise TypeError(f"Supernet needs a SearchSpace, not {type(space).__name__}")
        self.space = space
        d, p = space.embed_dims[-1], space.patch_size
        self.patch_embed = nn.Conv2d(space.in_chans, d, kernel_size=p, stride=p)
        self.pos_embed = nn.Parameter(torch.zeros(1, space.num_tokens, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(SuperBlock(space, svd_init) for _ in range(space.max_depth))
        self.norm = nn.LayerNorm(d)
        self.head = SuperLinear(
            d, space.num_classes, _attention_rank_ratio(space), svd_init=svd_init
        )

    def _check_input(self, x: torch.Tensor) -> None:
        s = self.space
        want = (s.in_chans, s.img_size, s.img_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != want:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"Supernet input {shape} must be images (B, {', '.join(map(str, want))})"
            )

    def forward(self, x: torch.Tensor, cfg: SubnetConfig) -> torch.Tensor:
        self._check_input(x)
        self.space.check(cfg)
        e = cfg.embed_dim
        x = F.conv2d(
            x, self.patch_embed.weight[:e], self.patch_embed.bias[:e], self.space.patch_size
        )
        x = x.flatten(2).transpose(1, 2) + self.pos_embed[:, :, :e]
        for block, heads, hidden in zip(self.blocks, cfg.num_heads, cfg.mlp_hidden, strict=False):
            x = block(x, heads, hidden)
        x = F.layer_norm(x, (e,), self.norm.weight[:e], self.norm.bias[:e], self.norm.eps)
        return self.head(x.mean(dim=1), self.space.num_classes)

    def extract(self, cfg: SubnetConfig) -> SubnetViT:
        """Copy subnet ``cfg`` into a standalone :class:`SubnetViT` (eval mode, same outputs)."""
        self.space.check(cfg)
        e, s = cfg.embed_dim, self.space
        patch = nn.Conv2d(s.in_chans, e, kernel_size=s.patch_size, stride=s.patch_size)
        with torch.no_grad():
            patch.weight.copy_(self.patch_embed.weight[:e])
            patch.bias.copy_(self.patch_embed.bias[:e])
            blocks = [
                block.extract(e, heads, hidden)
                for block, heads, hidden in zip(
                    self.blocks, cfg.num_heads, cfg.mlp_hidden, strict=False
                )
            ]
            model = SubnetViT(
                s,
                cfg,
                patch,
                self.pos_embed[:, :, :e].clone(),
                blocks,
                _layer_norm(self.norm.weight[:e], self.norm.bias[:e], self.norm.eps),
                self.head.extract(e, s.num_classes),
            )
        return model.eval()
