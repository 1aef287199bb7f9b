"""Data-free memory search: the highest-capacity subnet that fits SRAM and flash.

Without data (``tvm-mcuformer search --no-train``) accuracy cannot rank subnets,
so a capacity proxy does: ``"params"`` (parameters) or ``"macs"``
(multiply-accumulates per image), the other one breaking ties. Memory is the
compiler's, as in the trained search:

1. Every *uniform* subnet (each layer the same heads and MLP ratio) of every
   space of the (ρ, patch) grid is a candidate: embed × depth × heads × MLP ratio.
2. Flash is nearly free: :func:`weight_bytes` (the int8 layout the compiler
   emits; a test holds it equal to the planner's) + the compiler's code
   reserve, whose per-call part is learnt per layer from the whole plans made
   so far. Candidates over the flash budget are dropped.
3. The rest are taken in descending capacity. Peak SRAM is set by the largest
   layer (the residual stream and one layer's temporaries are live at once),
   so each distinct layer (embed, heads, MLP ratio) of a space is planned once
   as a depth-1 subnet by :class:`~tvm_mcuformer.search.memory.PlannerMemory`
   (cached). A layer at least as large in every choice (and ρ) as one that did
   not fit is not planned: it cannot fit either.
4. The first candidate whose layer fits is filled greedily (one layer at a
   time to a larger MLP ratio while flash and SRAM allow), then planned whole
   by the planner; if the whole plan fits, that subnet is the result
   (otherwise the scan goes on).

:func:`datafree_search` writes ``search.json``, ``best_subnet.pt`` (seeded
initial weights, for :func:`~tvm_mcuformer.search.run.load_subnet` and training)
and ``best_subnet.pt2`` (``torch.export``, for ``tvm-mcuformer compile``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tvm_mcuformer.boards import get_board
from tvm_mcuformer.compiler import CODE_RESERVE
from tvm_mcuformer.fileio import write_json_atomic
from tvm_mcuformer.lowering.pipeline import DEFAULT_PATCH_FIELD
from tvm_mcuformer.ops.table import INT8_TABLE_BYTES
from tvm_mcuformer.schedules.patch_embed import field_length
from tvm_mcuformer.search.memory import PlannerMemory, SubnetMemory
from tvm_mcuformer.search.space import SearchSpace, SubnetConfig, low_rank
from tvm_mcuformer.search.space_evolution import grid_space
from tvm_mcuformer.search.supernet import Supernet
from tvm_mcuformer.training import export_pt2

OBJECTIVES = ("params", "macs")


def _linears(space: SearchSpace, cfg: SubnetConfig) -> Iterator[tuple[int, int, bool, int]]:
    """``(in, out, has_bias, rows)`` of every ``Linear`` of the extracted subnet (a factorised
    layer gives two); ``rows`` is how many token rows it runs on (1 for the classifier)."""

    def linear(n_in: int, out: int, factorised: bool, rows: int):
        if factorised:
            r = low_rank(space.rank_ratio, min(n_in, out))
            yield n_in, r, False, rows
            yield r, out, True, rows
        else:
            yield n_in, out, True, rows

    e, n = cfg.embed_dim, space.num_tokens
    every = space.low_rank_scope == "all" and space.rank_ratio != 1
    mlp = space.rank_ratio != 1
    for hidden in cfg.mlp_hidden:
        yield from linear(e, 3 * e, every, n)
        yield from linear(e, e, every, n)
        yield from linear(e, hidden, mlp, n)
        yield from linear(hidden, e, mlp, n)
    yield from linear(e, space.num_classes, every, 1)


def param_count(space: SearchSpace, cfg: SubnetConfig) -> int:
    """Parameters of subnet ``cfg`` (those of ``Supernet(space).extract(cfg)``)."""
    e, p = cfg.embed_dim, space.patch_size
    patch = e * space.in_chans * p * p + e
    norms = 2 * e * (2 * cfg.depth + 1)
    linears = sum(i * o + (o if bias else 0) for i, o, bias, _ in _linears(space, cfg))
    return patch + space.num_tokens * e + norms + linears


def mac_count(space: SearchSpace, cfg: SubnetConfig) -> int:
    """MACs of one image (matmuls and the patch convolution, as ``count_macs`` counts them):
    the linears, ``q kᵀ`` and ``attn v`` (``N² · embed`` each) and the patch embedding."""
    e, n, p = cfg.embed_dim, space.num_tokens, space.patch_size
    attention = 2 * n * n * e * cfg.depth
    return (
        n * e * space.in_chans * p * p
        + attention
        + sum(rows * i * o for i, o, _, rows in _linears(space, cfg))
    )


def weight_bytes(space: SearchSpace, cfg: SubnetConfig) -> int:
    """Flash bytes of the int8 weights the compiler emits for ``cfg`` (default options):
    int8 matrices and position embedding, the patch filter laid out sub-field major
    (:func:`~tvm_mcuformer.schedules.patch_embed.field_major_weight`, rows padded to 4
    bytes); per output channel two int32 (a linear's requantization multiplier and shift)
    plus its int32 bias when it has one (the patch convolution: three); LayerNorm weight
    and bias as int32; one 256-byte GeLU table per block. ``tests/test_paper_scale.py``
    holds it equal to the planner's."""
    e, p, field = cfg.embed_dim, space.patch_size, DEFAULT_PATCH_FIELD
    grid = -(-p // field)
    patch = e * grid * grid * field_length(space.in_chans, field) + 12 * e
    norms = 8 * e * (2 * cfg.depth + 1)
    linears = sum(i * o + (12 if bias else 8) * o for i, o, bias, _ in _linears(space, cfg))
    tables = INT8_TABLE_BYTES * cfg.depth
    return patch + space.num_tokens * e + norms + linears + tables


def capacity(space: SearchSpace, cfg: SubnetConfig, objective: str) -> tuple[int, int]:
    """Sort key: ``(objective, the other proxy)``."""
    params, macs = param_count(space, cfg), mac_count(space, cfg)
    return (params, macs) if objective == "params" else (macs, params)


@dataclass(frozen=True)
class _Layer:
    """One distinct layer of a space, the unit of SRAM planning."""

    patch_size: int
    rank_ratio: float
    embed_dim: int
    num_heads: int
    mlp_ratio: float

    def covers(self, other: _Layer) -> bool:
        """True when every choice of ``self`` is at least ``other``'s (same patch size)."""
        return self.patch_size == other.patch_size and all(
            getattr(self, f) >= getattr(other, f)
            for f in ("rank_ratio", "embed_dim", "num_heads", "mlp_ratio")
        )


class _LayerMemory:
    """SRAM of one layer per space, planned as a depth-1 subnet; pruned by dominance."""

    def __init__(self, board: str, sram_bytes: int) -> None:
        self.board, self.sram_bytes = board, sram_bytes
        self._planners: dict[tuple[float, int], PlannerMemory] = {}
        self.planned: dict[_Layer, SubnetMemory] = {}
        self._too_big: list[_Layer] = []

    def planner(self, space: SearchSpace) -> PlannerMemory:
        key = (space.rank_ratio, space.patch_size)
        if key not in self._planners:
            with_depth_1 = replace(space, depths=tuple(sorted({1, *space.depths})))
            self._planners[key] = PlannerMemory(with_depth_1, self.board)
        return self._planners[key]

    def fits(self, space: SearchSpace, embed: int, heads: int, ratio: float) -> bool:
        layer = _Layer(space.patch_size, space.rank_ratio, embed, heads, ratio)
        if any(layer.covers(big) for big in self._too_big):
            return False
        if layer not in self.planned:
            cfg = space.subnet(embed, 1, [heads], [ratio])
            self.planned[layer] = self.planner(space)(cfg)
            if self.planned[layer].peak_sram_bytes > self.sram_bytes:
                self._too_big.append(layer)
        return self.planned[layer].peak_sram_bytes <= self.sram_bytes


def _uniform(space: SearchSpace) -> Iterator[SubnetConfig]:
    for embed in space.embed_dims:
        for depth in space.depths:
            for heads in space.num_heads:
                for ratio in space.mlp_ratios:
                    yield space.subnet(embed, depth, [heads] * depth, [ratio] * depth)


def _fill(
    space: SearchSpace,
    cfg: SubnetConfig,
    flash_left: int,
    layers: _LayerMemory,
) -> SubnetConfig:
    """Raise single layers' MLP ratios (first layer first) while flash and SRAM allow."""
    for i in range(cfg.depth):
        for ratio in reversed(space.mlp_ratios):
            if ratio <= cfg.mlp_ratios[i]:
                break
            ratios = list(cfg.mlp_ratios)
            ratios[i] = ratio
            bigger = space.subnet(cfg.embed_dim, cfg.depth, cfg.num_heads, ratios)
            if weight_bytes(space, bigger) <= flash_left and layers.fits(
                space, cfg.embed_dim, cfg.num_heads[i], ratio
            ):
                cfg = bigger
                break
    return cfg


def _log(message: str) -> None:
    print(f"search: {message}", file=sys.stderr, flush=True)


def datafree_search(
    base: SearchSpace,
    sram_bytes: int,
    flash_bytes: int,
    out_dir: str | Path,
    *,
    board: str,
    rank_ratios: Sequence[float],
    patch_sizes: Sequence[int],
    objective: str = "macs",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Find the highest-capacity subnet of the (ρ, patch) grid over ``base`` within the budgets.

    Returns (and writes as ``out_dir/search.json``) the best subnet with its
    params, MACs and the planner's memory, the budgets and what the scan
    planned; raises ``ValueError`` (naming the smallest memory seen) when no
    subnet fits. See the module docstring for the procedure.
    """
    get_board(board)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    clock = time.perf_counter()
    spaces = [grid_space(base, rho, p) for rho in rank_ratios for p in patch_sizes]
    flash_left = flash_bytes - CODE_RESERVE  # the per-call code reserve is learnt below
    pool = [
        (capacity(s, cfg, objective), cfg.num_heads[0], i, cfg)
        for i, s in enumerate(spaces)
        for cfg in _uniform(s)
        if weight_bytes(s, cfg) <= flash_left
    ]
    if not pool:
        smallest = min(weight_bytes(s, s.smallest()) for s in spaces) + CODE_RESERVE
        raise ValueError(
            f"no subnet fits the flash budget of {flash_bytes} B: the smallest needs {smallest} B "
            "(weights + code reserve); raise --flash or search a smaller space"
        )
    pool.sort(key=lambda item: item[:3], reverse=True)
    if progress:
        _log(f"{len(pool)} uniform subnets of {len(spaces)} spaces fit {flash_bytes} B of flash")
    layers = _LayerMemory(board, sram_bytes)
    rejected: list[dict] = []
    best = None
    code_per_layer = 0  # code reserve beyond CODE_RESERVE per layer, from whole plans
    for _, _, index, cfg in pool:
        space = spaces[index]
        if weight_bytes(space, cfg) + code_per_layer * cfg.depth > flash_left:
            continue
        if not layers.fits(space, cfg.embed_dim, cfg.num_heads[0], cfg.mlp_ratios[0]):
            continue
        cfg = _fill(space, cfg, flash_left - code_per_layer * cfg.depth, layers)
        memory = layers.planner(space)(cfg)
        if memory.fits(sram_bytes, flash_bytes):
            best = (space, cfg, memory)
            break
        code = memory.flash_bytes - weight_bytes(space, cfg) - CODE_RESERVE
        code_per_layer = max(code_per_layer, -(-code // cfg.depth))
        rejected.append({"config": asdict(cfg), **asdict(memory)})
        if progress:
            _log(f"whole plan of {cfg}: {memory}, over budget; next candidate")
    if best is None:
        smallest = min(m.peak_sram_bytes for m in layers.planned.values())
        raise ValueError(
            f"no subnet fits {sram_bytes} B of SRAM within {flash_bytes} B of flash: the smallest "
            f"layer planned needs {smallest} B (arena + I/O + stack); raise --sram or search a "
            "smaller space"
        )
    space, cfg, memory = best
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Supernet(space).extract(cfg)
    pt_path, pt2_path = out_dir / "best_subnet.pt", out_dir / "best_subnet.pt2"
    torch.save(
        {"config": asdict(cfg), "space": asdict(space), "state_dict": model.state_dict()}, pt_path
    )
    shape = (1, space.in_chans, space.img_size, space.img_size)
    export_pt2(model, torch.zeros(shape), pt2_path)
    result = {
        "mode": "data-free",
        "objective": objective,
        "board": board,
        "seed": seed,
        "budget": {"sram_bytes": sram_bytes, "flash_bytes": flash_bytes},
        "settings": {
            "base_space": asdict(base),
            "rank_ratios": list(rank_ratios),
            "patch_sizes": list(patch_sizes),
        },
        "flash_feasible_uniform_subnets": len(pool),
        "layers_planned": [
            {**asdict(layer), **asdict(mem)} for layer, mem in layers.planned.items()
        ],
        "rejected_whole_plans": rejected,
        "best": {
            "architecture": asdict(cfg),
            "space": asdict(space),
            "params": param_count(space, cfg),
            "macs": mac_count(space, cfg),
            "peak_sram_bytes": memory.peak_sram_bytes,
            "flash_bytes": memory.flash_bytes,
            "arena_bytes": memory.arena_bytes,
            "paths": {"pt": str(pt_path), "pt2": str(pt2_path)},
        },
        "timings_s": {"search": round(time.perf_counter() - clock, 1)},
    }
    write_json_atomic(json.loads(json.dumps(result)), out_dir / "search.json")
    if progress:
        _log(f"best: {cfg}; wrote {out_dir / 'search.json'}")
    return result
