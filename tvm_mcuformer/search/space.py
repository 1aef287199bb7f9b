"""Search space of the weight-entangled ViT supernet, and the subnets drawn from it.

A :class:`SearchSpace` fixes the image geometry and the two *space-level*
factors of MCUFormer (one value each per space; an outer loop evolves them):

- ``rank_ratio`` ρ in (0, 1]: each MLP linear ``W x + b`` (with
  ``low_rank_scope="all"`` every linear: qkv, proj, the MLP and the classifier)
  becomes ``U_r (V_r^T x) + b`` with ``r = low_rank(ρ, d)``, ``d`` the layer's
  smaller dimension; ρ = 1 means no factorisation (one plain linear layer);
- ``patch_size`` p, which sets the token count ``N = (img_size / p) ** 2``.

Inside a space each subnet picks an embedding width, a depth and, per layer,
a number of heads and an MLP ratio (:class:`SubnetConfig`). Head width is
``embed_dim / num_heads`` as in :class:`~tvm_mcuformer.models.TinyViT`, so every
head choice must divide every embedding choice; the MLP hidden width is
``int(embed_dim * mlp_ratio)``.

:func:`default_space` builds the small MNIST 28x28 space; the outer loop's
values of ρ and p for it are :data:`DEFAULT_RANK_RATIOS` and
:data:`DEFAULT_PATCH_SIZES`. :func:`paper_space` builds the MCUFormer-size space
(224/240 px, 1,000 classes, AutoFormer-T-like widths up to 240, ρ on every
linear); its outer-loop values are :data:`PAPER_RANK_RATIOS` and
:func:`paper_patch_sizes`. :data:`SPACES` names both for the command line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tvm_mcuformer.models import checks

DEFAULT_EMBED_DIMS = (32, 48, 64)
DEFAULT_NUM_HEADS = (2, 4)
DEFAULT_MLP_RATIOS = (1.5, 2.0)
DEFAULT_DEPTHS = (1, 2, 3)
DEFAULT_RANK_RATIOS = (0.25, 0.5, 1.0)
"""Values of ρ the outer loop explores for the default space (1.0: no factorisation)."""
DEFAULT_PATCH_SIZES = (4, 7)
"""Patch sizes the outer loop explores on 28x28 images: 49 or 16 tokens."""

PAPER_EMBED_DIMS = (96, 120, 144, 168, 192, 216, 240)
PAPER_NUM_HEADS = (3, 4)
PAPER_MLP_RATIOS = (2.0, 3.0, 3.5, 4.0)
PAPER_DEPTHS = tuple(range(4, 15))
PAPER_RANK_RATIOS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.95)
"""Values of ρ the outer loop explores in the paper space (MCUFormer's range [0.4, 0.95])."""
PAPER_PATCH_SIZES = (16, 20, 24, 28, 32)
"""MCUFormer's patch sizes; :func:`paper_patch_sizes` keeps those dividing the image side."""
LOW_RANK_SCOPES = ("mlp", "all")


def low_rank(rank_ratio: float, dim: int) -> int:
    """Rank of a factorised layer whose smaller dimension is ``dim``: ``max(1, ρ·dim)``.

    ``ρ·dim`` is rounded half up, so the rank never exceeds ``dim`` for ρ ≤ 1.
    """
    return max(1, math.floor(rank_ratio * dim + 0.5))


def _check_rank_ratio(owner: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{owner}.rank_ratio={value!r} must be a number in (0, 1]")


def _choices(owner: str, field: str, values: Sequence, kind: type) -> tuple:
    """Validate a non-empty set of positive choices; return it sorted and deduplicated."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{owner}.{field}={values!r} must be a non-empty sequence of choices")
    for v in values:
        ok = isinstance(v, int) if kind is int else isinstance(v, int | float)
        if isinstance(v, bool) or not ok or v <= 0:
            raise ValueError(f"{owner}.{field} holds {v!r}; every choice must be a positive {kind}")
    return tuple(sorted({kind(v) for v in values}))


@dataclass(frozen=True)
class SubnetConfig:
    """One architecture of a space: validated on construction (not against a space).

    ``num_heads`` and ``mlp_ratios`` hold one entry per layer (``depth`` of
    them). Use :meth:`SearchSpace.check` to test membership in a space.
    """

    embed_dim: int
    depth: int
    num_heads: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    rank_ratio: float
    patch_size: int

    def __post_init__(self) -> None:
        for field in ("embed_dim", "depth", "patch_size"):
            checks.positive_int("SubnetConfig", field, getattr(self, field))
        _check_rank_ratio("SubnetConfig", self.rank_ratio)
        for field in ("num_heads", "mlp_ratios"):
            value = getattr(self, field)
            if not isinstance(value, tuple) or len(value) != self.depth:
                raise ValueError(
                    f"SubnetConfig.{field}={value!r} must be a tuple with one entry per layer "
                    f"(depth={self.depth})"
                )
        for layer, heads in enumerate(self.num_heads):
            checks.positive_int("SubnetConfig", f"num_heads[{layer}]", heads)
            checks.heads_divide("SubnetConfig", heads, self.embed_dim, f"num_heads[{layer}]")
        for layer, ratio in enumerate(self.mlp_ratios):
            checks.mlp_not_empty("SubnetConfig", ratio, self.embed_dim, f"mlp_ratios[{layer}]")

    @property
    def mlp_hidden(self) -> tuple[int, ...]:
        """MLP hidden width of each layer, ``int(embed_dim * mlp_ratio)``."""
        return tuple(int(self.embed_dim * r) for r in self.mlp_ratios)

    @property
    def mlp_ranks(self) -> tuple[int, ...]:
        """Rank of both MLP linears of each layer (``low_rank(ρ, min(embed, hidden))``)."""
        return tuple(low_rank(self.rank_ratio, min(self.embed_dim, h)) for h in self.mlp_hidden)


@dataclass(frozen=True)
class SearchSpace:
    """Choices of a supernet; validated on construction, choice tuples stored sorted.

    ``embed_dims``, ``num_heads``, ``mlp_ratios`` and ``depths`` are the
    per-subnet choices (heads and MLP ratio are chosen per layer);
    ``rank_ratio`` and ``patch_size`` are single space-level values. Images
    are ``(in_chans, img_size, img_size)``; ``gelu`` is ``"gelu"`` or ``"quick"``;
    ``low_rank_scope`` says which linears ρ factorises: ``"mlp"`` (fc1, fc2) or
    ``"all"`` (also qkv, proj and the classifier).
    """

    embed_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    depths: tuple[int, ...]
    rank_ratio: float
    patch_size: int
    img_size: int
    in_chans: int
    num_classes: int
    gelu: str = "quick"
    low_rank_scope: str = "mlp"

    def __post_init__(self) -> None:
        owner = "SearchSpace"
        if self.low_rank_scope not in LOW_RANK_SCOPES:
            raise ValueError(
                f"SearchSpace.low_rank_scope={self.low_rank_scope!r} is unknown; choose one of: "
                f"{', '.join(LOW_RANK_SCOPES)}"
            )
        for field, kind in (
            ("embed_dims", int),
            ("num_heads", int),
            ("mlp_ratios", float),
            ("depths", int),
        ):
            object.__setattr__(self, field, _choices(owner, field, getattr(self, field), kind))
        for field in ("patch_size", "img_size", "in_chans", "num_classes"):
            checks.positive_int(owner, field, getattr(self, field))
        _check_rank_ratio(owner, self.rank_ratio)
        checks.patch_divides(owner, self.patch_size, self.img_size)
        for d in self.embed_dims:
            bad = [h for h in self.num_heads if d % h]
            if bad:
                raise ValueError(
                    f"SearchSpace: num_heads {bad} do not divide embed_dim={d}; every head "
                    "choice must divide every embedding choice"
                )
            checks.mlp_not_empty(owner, self.mlp_ratios[0], d, "mlp_ratios")
        checks.gelu_kind(owner, self.gelu)

    @property
    def num_tokens(self) -> int:
        """Tokens per image, ``(img_size / patch_size) ** 2``."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def max_depth(self) -> int:
        return self.depths[-1]

    def subnet(
        self, embed: int, depth: int, heads: Sequence[int], ratios: Sequence[float]
    ) -> SubnetConfig:
        """The subnet with these per-subnet choices and this space's ρ and patch size
        (validated as a :class:`SubnetConfig`, not against the space: see :meth:`check`)."""
        return SubnetConfig(
            embed, depth, tuple(heads), tuple(ratios), self.rank_ratio, self.patch_size
        )

    def largest(self) -> SubnetConfig:
        """The subnet with every choice at its maximum."""
        d = self.max_depth
        return self.subnet(
            self.embed_dims[-1], d, [self.num_heads[-1]] * d, [self.mlp_ratios[-1]] * d
        )

    def smallest(self) -> SubnetConfig:
        """The subnet with every choice at its minimum."""
        d = self.depths[0]
        return self.subnet(self.embed_dims[0], d, [self.num_heads[0]] * d, [self.mlp_ratios[0]] * d)

    def sample(self, rng: np.random.Generator) -> SubnetConfig:
        """Draw a subnet uniformly per choice (depth, embed, then heads and MLP ratio per layer)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"sample needs a numpy.random.Generator (np.random.default_rng(seed)), "
                f"not {type(rng).__name__}"
            )
        depth = self.depths[rng.integers(len(self.depths))]
        embed = self.embed_dims[rng.integers(len(self.embed_dims))]
        heads = [self.num_heads[i] for i in rng.integers(len(self.num_heads), size=depth)]
        ratios = [self.mlp_ratios[i] for i in rng.integers(len(self.mlp_ratios), size=depth)]
        return self.subnet(embed, depth, heads, ratios)

    def check(self, cfg: SubnetConfig) -> None:
        """Raise ``ValueError`` naming the first field of ``cfg`` outside this space."""
        if not isinstance(cfg, SubnetConfig):
            raise TypeError(f"expected a SubnetConfig, not {type(cfg).__name__}")
        for field in ("rank_ratio", "patch_size"):
            if getattr(cfg, field) != getattr(self, field):
                raise ValueError(
                    f"subnet {field}={getattr(cfg, field)!r} differs from the space's "
                    f"{getattr(self, field)!r} (a space-level factor)"
                )
        outside = [
            (field, value, choices)
            for field, values, choices in (
                ("embed_dim", (cfg.embed_dim,), self.embed_dims),
                ("depth", (cfg.depth,), self.depths),
                ("num_heads", cfg.num_heads, self.num_heads),
                ("mlp_ratios", cfg.mlp_ratios, self.mlp_ratios),
            )
            for value in values
            if value not in choices
        ]
        if outside:
            field, value, choices = outside[0]
            raise ValueError(f"subnet {field} {value!r} is not a choice of the space {choices}")

    def is_subspace_of(self, other: SearchSpace) -> bool:
        """True when every subnet of this space is a subnet of ``other``."""
        same = (
            "rank_ratio",
            "patch_size",
            "img_size",
            "in_chans",
            "num_classes",
            "gelu",
            "low_rank_scope",
        )
        return all(getattr(self, f) == getattr(other, f) for f in same) and all(
            set(getattr(self, f)) <= set(getattr(other, f))
            for f in ("embed_dims", "num_heads", "mlp_ratios", "depths")
        )


def default_space(
    rank_ratio: float = 0.5,
    patch_size: int = 7,
    img_size: int = 28,
    in_chans: int = 1,
    num_classes: int = 10,
) -> SearchSpace:
    """The small MNIST space: embed {32, 48, 64}, heads {2, 4}, MLP ratio {1.5, 2}, depth 1-3.

    ``rank_ratio`` and ``patch_size`` pick the space-level factors (see
    :data:`DEFAULT_RANK_RATIOS`, :data:`DEFAULT_PATCH_SIZES`); the geometry
    arguments let the same choices serve another dataset (e.g. 8x8 digits
    with ``patch_size=4``). QuickGELU, like ``DEMO_CONFIG``.
    """
    return SearchSpace(
        embed_dims=DEFAULT_EMBED_DIMS,
        num_heads=DEFAULT_NUM_HEADS,
        mlp_ratios=DEFAULT_MLP_RATIOS,
        depths=DEFAULT_DEPTHS,
        rank_ratio=rank_ratio,
        patch_size=patch_size,
        img_size=img_size,
        in_chans=in_chans,
        num_classes=num_classes,
    )


def paper_patch_sizes(img_size: int) -> tuple[int, ...]:
    """The :data:`PAPER_PATCH_SIZES` that divide ``img_size`` (224: 16, 28, 32; 240: 16, 20, 24)."""
    sizes = tuple(p for p in PAPER_PATCH_SIZES if img_size % p == 0)
    if not sizes:
        raise ValueError(
            f"no paper patch size {PAPER_PATCH_SIZES} divides the image side {img_size}: "
            "use 224 or 240 px, or pass --patch-sizes"
        )
    return sizes


def paper_space(
    rank_ratio: float = 0.5,
    patch_size: int = 16,
    img_size: int = 224,
    in_chans: int = 3,
    num_classes: int = 1000,
) -> SearchSpace:
    """The MCUFormer-size space: embed 96-240 (AutoFormer-T's 192/216/240 and narrower),
    heads {3, 4}, MLP ratio {2, 3, 3.5, 4}, depth 4-14, ρ on every linear, QuickGELU.

    Narrower widths and shallower depths than AutoFormer-T's are what an int8 model needs
    to reach 1 MiB of flash at 1,000 classes.
    """
    return SearchSpace(
        embed_dims=PAPER_EMBED_DIMS,
        num_heads=PAPER_NUM_HEADS,
        mlp_ratios=PAPER_MLP_RATIOS,
        depths=PAPER_DEPTHS,
        rank_ratio=rank_ratio,
        patch_size=patch_size,
        img_size=img_size,
        in_chans=in_chans,
        num_classes=num_classes,
        low_rank_scope="all",
    )


SPACES = {"default": default_space, "paper": paper_space}
"""Space presets by name (``tvm-mcuformer search --space``): geometry and ρ/patch are
keyword arguments (``rank_ratio``, ``patch_size``, ``img_size``, ``in_chans``, ``num_classes``)."""
