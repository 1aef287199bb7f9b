"""Memory-constrained architecture search end to end: :func:`run_search`.

1. The training split is cut (stratified, seeded) into a training part and a
   validation slice of :data:`VAL_FRACTION`; everything the search scores is
   measured on that slice, never on the test split.
2. Feasibility: the smallest subnet of every space of the (ρ, patch) grid is
   planned; if none fits, :class:`InfeasibleBudget` is raised before any
   training.
3. :func:`~tvm_mcuformer.search.space_evolution.evolve_spaces` evolves the
   space (resumable, ``out_dir/search_state.json``).
4. The winning space (highest S) has its supernet trained ``final_epochs``
   more epochs in its own folder (continuing its schedule).
5. :func:`~tvm_mcuformer.search.evolution.evolutionary_search` finds the most
   accurate subnet within the budgets: accuracy = the subnet's validation
   top-1 through the supernet (memoised), memory = the compiler's planner
   (:class:`~tvm_mcuformer.search.memory.PlannerMemory`, one per space, shared
   with step 3).
6. The best subnet is extracted and written as ``best_subnet.pt`` (state
   dict, config and space; :func:`load_subnet`) and ``best_subnet.pt2``
   (``torch.export``); ``search.json`` records the spaces, the candidates, the
   best subnet (with its test top-1, measured once after the choice), the
   budgets and the settings; ``pareto.png`` plots accuracy against peak SRAM.

``preset`` names how much the search spends (:data:`PRESETS`): ``quick`` is
CI-sized (minutes on 2 cores, a rough ranking), ``standard`` about 10 minutes,
``full`` (about half an hour) MCUFormer's schedule with AutoFormer's evolution defaults.
A rerun with the same arguments resumes (finished rounds and epochs are not
redone).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tvm_mcuformer.boards import DEFAULT_BOARD, get_board
from tvm_mcuformer.data import dataset_info, load_split, stratified_split
from tvm_mcuformer.fileio import write_json_atomic
from tvm_mcuformer.search.evolution import Candidate, EvolutionConfig, evolutionary_search
from tvm_mcuformer.search.memory import PlannerMemory, SubnetMemory
from tvm_mcuformer.search.space import (
    DEFAULT_PATCH_SIZES,
    DEFAULT_RANK_RATIOS,
    SearchSpace,
    SubnetConfig,
    default_space,
)
from tvm_mcuformer.search.space_evolution import (
    MemoryFn,
    SpaceEvolutionConfig,
    evolve_spaces,
    grid_space,
    space_dir,
    train_space,
)
from tvm_mcuformer.search.supernet import SubnetViT, Supernet
from tvm_mcuformer.search.train_supernet import evaluate_subnet
from tvm_mcuformer.training import evaluate_top1, export_pt2, load_checkpoint

VAL_FRACTION = 0.2
"""Share of the training split held out to score spaces and subnets."""


@dataclass(frozen=True)
class SearchPreset:
    """How much a search spends: settings of its stages and how much data it uses.

    ``space_evolution`` and ``evolution`` are keyword arguments of
    :class:`SpaceEvolutionConfig` and :class:`EvolutionConfig` (empty: their
    defaults, AutoFormer's for the evolution); ``final_epochs`` more epochs go
    to the winning space's supernet before the evolutionary search ranks its
    subnets through it; ``max_train``/``max_val`` cap the images used (None:
    all of the training part / validation slice).
    """

    space_evolution: Mapping
    evolution: Mapping
    final_epochs: int
    max_train: int | None = None
    max_val: int | None = None


PRESETS: Mapping[str, SearchPreset] = MappingProxyType(
    {
        # CI-sized (minutes on 2 cores): an epoch of 1,500 images takes 1-3 s while planning
        # one subnet takes about 2, so the planner sets the cost; with 1 epoch per round a
        # supernet is near chance and S is noise. Its ranking of subnets is rough.
        "quick": SearchPreset(
            {"epochs_per_round": 3, "n_subnets": 6, "max_rounds": 3},
            {"population": 8, "parents": 3, "mutations": 4, "crossovers": 4, "generations": 2},
            final_epochs=3,
            max_train=1500,
            max_val=500,
        ),
        # A usable ranking in about 10 minutes on 2 cores: all the data, a supernet
        # trained long enough that its subnets' accuracies order like trained models', and a
        # smaller evolution (planning, about 2 s per new subnet, is most of the cost).
        "standard": SearchPreset(
            {"epochs_per_round": 5, "n_subnets": 12, "max_rounds": 4},
            {"population": 20, "parents": 5, "mutations": 10, "crossovers": 10, "generations": 8},
            final_epochs=60,
        ),
        # MCUFormer's schedule with AutoFormer's evolution defaults (about half an hour on 2 cores).
        "full": SearchPreset(
            {"epochs_per_round": 5, "n_subnets": 50, "max_rounds": 8}, {}, final_epochs=60
        ),
    }
)
"""Search presets by name; ``tvm-mcuformer search --preset`` (``--quick`` = ``quick``)."""


class InfeasibleBudget(ValueError):
    """No subnet found within the SRAM/flash budget; the message names the smallest seen."""


def _log(message: str) -> None:
    print(f"search: {message}", file=sys.stderr, flush=True)


def default_patch_sizes(img_size: int) -> tuple[int, ...]:
    """:data:`DEFAULT_PATCH_SIZES` when they all divide ``img_size``, else every divisor
    ``p >= 2`` that leaves at least 2x2 tokens (8x8 digits: 2 and 4)."""
    if all(img_size % p == 0 for p in DEFAULT_PATCH_SIZES):
        return DEFAULT_PATCH_SIZES
    sizes = tuple(p for p in range(2, img_size // 2 + 1) if img_size % p == 0)
    if not sizes:
        raise ValueError(f"image side {img_size} has no patch size >= 2 leaving 2x2 tokens")
    return sizes


class _Memories:
    """One :class:`PlannerMemory` per space; remembers the smallest memory it has planned."""

    def __init__(self, board: str) -> None:
        self.board = board
        self._planners: dict[tuple[float, int], PlannerMemory] = {}
        self.min_sram: int | None = None
        self.min_flash: int | None = None

    def __call__(self, space: SearchSpace) -> MemoryFn:
        key = (space.rank_ratio, space.patch_size)
        if key not in self._planners:
            self._planners[key] = PlannerMemory(space, self.board)
        planner = self._planners[key]

        def memory(cfg: SubnetConfig) -> SubnetMemory:
            mem = planner(cfg)
            self.min_sram = min(mem.peak_sram_bytes, self.min_sram or mem.peak_sram_bytes)
            self.min_flash = min(mem.flash_bytes, self.min_flash or mem.flash_bytes)
            return mem

        return memory

    def infeasible(self, sram_bytes: int, flash_bytes: int, what: str) -> InfeasibleBudget:
        return InfeasibleBudget(
            f"{what} fits the budget of {sram_bytes} B SRAM and {flash_bytes} B flash: the "
            f"smallest memory seen is {self.min_sram} B peak SRAM and {self.min_flash} B flash "
            "(board reserves included); raise --sram/--flash or search a smaller space"
        )


def _splits(dataset: str, preset: SearchPreset, seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val) from the training split only."""
    x, y = load_split(dataset, "train")
    n_classes = len(np.unique(y))
    n_val = max(n_classes, round(VAL_FRACTION * len(y)))
    train_idx, val_idx = stratified_split(y, n_val, seed)
    train_idx, val_idx = train_idx[: preset.max_train], val_idx[: preset.max_val]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def load_subnet(path: str | Path) -> SubnetViT:
    """Rebuild the :class:`SubnetViT` saved by :func:`run_search` in ``best_subnet.pt``."""
    ckpt = load_checkpoint(path)
    space = SearchSpace(**ckpt["space"])
    model = Supernet(space, svd_init=False).extract(SubnetConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def _candidate_json(c: Candidate) -> dict:
    return {
        "config": asdict(c.cfg),
        "accuracy": c.accuracy,
        "peak_sram_bytes": c.memory.peak_sram_bytes,
        "flash_bytes": c.memory.flash_bytes,
        "arena_bytes": c.memory.arena_bytes,
    }


def describe_subnet(arch: Mapping) -> str:
    """One line naming a subnet's choices; ``arch`` is ``asdict(SubnetConfig)`` or its JSON."""
    return (
        f"embed {arch['embed_dim']}, depth {arch['depth']}, heads {list(arch['num_heads'])}, "
        f"MLP ratios {list(arch['mlp_ratios'])}, rho {arch['rank_ratio']}, "
        f"patch {arch['patch_size']}"
    )


def plot_pareto(
    candidates: list[Candidate],
    best: Candidate,
    sram_bytes: int,
    flash_bytes: int,
    title: str,
    path: str | Path,
) -> Path:
    """PNG of validation top-1 against peak SRAM (KiB) for ``candidates``; return ``path``.

    The best subnet is a star, the Pareto front (most accurate for its SRAM)
    a step line. The SRAM budget is a vertical line when it is within 1.5x the
    largest candidate's SRAM; otherwise the axis stops short of it and an
    arrow at the right edge names it, so the points stay readable.
    """
    kib = 1024.0
    sram = np.array([c.memory.peak_sram_bytes for c in candidates]) / kib
    acc = np.array([c.accuracy for c in candidates]) * 100
    fig = Figure(figsize=(8.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(sram, acc, s=28, color="#4c78a8", alpha=0.7, label=f"candidates ({len(sram)})")
    order = np.lexsort((-acc, sram))
    front_x, front_y = [], []
    for i in order:
        if not front_y or acc[i] > front_y[-1]:
            front_x.append(sram[i])
            front_y.append(acc[i])
    ax.step(front_x, front_y, where="post", color="#72b7b2", lw=1.5, label="Pareto front")
    ax.scatter(
        [best.memory.peak_sram_bytes / kib],
        [best.accuracy * 100],
        marker="*",
        s=260,
        color="#e45756",
        edgecolor="black",
        zorder=3,
        label=f"best: {best.accuracy * 100:.1f}% at {best.memory.peak_sram_bytes / kib:.1f} KiB",
    )
    budget = sram_bytes / kib
    span = max(sram.max() - sram.min(), 0.05 * sram.max())
    if budget <= 1.5 * sram.max():
        ax.axvline(budget, color="#e45756", ls="--", lw=1.5, label=f"SRAM budget {budget:g} KiB")
        ax.set_xlim(sram.min() - 0.1 * span, max(budget, sram.max()) + 0.1 * span)
    else:
        right = sram.max() + 0.15 * span
        ax.set_xlim(sram.min() - 0.15 * span, right)
        ax.annotate(
            f"SRAM budget {budget:g} KiB →",
            xy=(1.0, 0.04),
            xycoords="axes fraction",
            ha="right",
            color="#e45756",
        )
    ax.set_xlabel("peak SRAM (KiB): arena + I/O + stack reserve, from the compiler's planner")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"{title}\nflash budget {flash_bytes / kib:g} KiB", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    path = Path(path)
    fig.savefig(path, format="png", dpi=120)
    return path


def run_search(
    dataset: str,
    sram_bytes: int,
    flash_bytes: int,
    out_dir: str | Path,
    preset: str = "full",
    board: str = DEFAULT_BOARD,
    seed: int = 0,
    progress: bool = True,
    *,
    space: SearchSpace | None = None,
    rank_ratios: tuple[float, ...] | None = None,
    patch_sizes: tuple[int, ...] | None = None,
) -> dict:
    """Search ``dataset`` for the most accurate subnet within the budgets; return ``search.json``.

    ``space`` (default: :func:`~tvm_mcuformer.search.space.default_space` at the
    dataset's geometry) gives the per-subnet choices; the outer loop explores
    ``rank_ratios`` (default :data:`DEFAULT_RANK_RATIOS`) and ``patch_sizes``
    (default :func:`default_patch_sizes`). Writes into ``out_dir`` (see the
    module docstring); raises :class:`InfeasibleBudget` (a ``ValueError``)
    without writing the best subnet when nothing fits.
    """
    get_board(board)
    if preset not in PRESETS:
        raise ValueError(f"unknown search preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    effort = PRESETS[preset]
    for name, value in (("sram_bytes", sram_bytes), ("flash_bytes", flash_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"run_search: {name}={value!r} must be a positive byte count")
    info = dataset_info(dataset)
    side, width = info.image_size
    if side != width:
        raise ValueError(f"dataset {dataset!r} has non-square images {info.image_size}")
    want = (side, info.channels, info.num_classes)
    patch_sizes = patch_sizes or default_patch_sizes(side)
    base = space or default_space(
        patch_size=patch_sizes[0], img_size=side, in_chans=want[1], num_classes=want[2]
    )
    geometry = (base.img_size, base.in_chans, base.num_classes)
    if geometry != want:
        raise ValueError(
            f"space geometry (img_size, in_chans, num_classes)={geometry} does not match "
            f"dataset {dataset!r} {want}"
        )
    sconf = SpaceEvolutionConfig(
        rank_ratios=rank_ratios or DEFAULT_RANK_RATIOS,
        patch_sizes=patch_sizes,
        seed=seed,
        max_shift=side // 14,  # 2 px on 28x28 (the demo recipe's), none on 8x8
        **effort.space_evolution,
    )
    econf = EvolutionConfig(seed=seed, **effort.evolution)
    final_epochs = effort.final_epochs
    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    x_tr, y_tr, x_val, y_val = _splits(dataset, effort, seed)
    memories = _Memories(board)

    if progress:
        _log(f"{len(x_tr)} training / {len(x_val)} validation images; checking feasibility")
    grid = [grid_space(base, rho, p) for rho in sconf.rank_ratios for p in sconf.patch_sizes]
    if not any(memories(s)(s.smallest()).fits(sram_bytes, flash_bytes) for s in grid):
        raise memories.infeasible(sram_bytes, flash_bytes, "no space's smallest subnet")
    timings["feasibility_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    evolution = evolve_spaces(
        base,
        x_tr,
        y_tr,
        x_val,
        y_val,
        memories,
        sram_bytes,
        flash_bytes,
        out_dir,
        sconf,
        extra_settings={"dataset": dataset, "board": board, "preset": preset},
        progress=progress,
    )
    timings["space_evolution_s"] = time.perf_counter() - clock
    win = evolution.winner
    win_space = grid_space(base, win.rank_ratio, win.patch_size)
    if progress:
        _log(
            f"winning space {win.name} (S={win.S:.4f}, A={win.A:.4f}, R={win.R:.2f}); "
            f"training it {final_epochs} more epoch(s)"
        )
    clock = time.perf_counter()
    supernet = train_space(
        win_space,
        space_dir(out_dir, win.rank_ratio, win.patch_size),
        win.epochs + final_epochs,
        x_tr,
        y_tr,
        sconf,
        progress=progress,
    )
    timings["final_training_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    top1: dict[SubnetConfig, float] = {}

    def accuracy(cfg: SubnetConfig) -> float:
        if cfg not in top1:
            top1[cfg] = evaluate_subnet(supernet, cfg, x_val, y_val)
        return top1[cfg]

    try:
        candidates = evolutionary_search(
            win_space, accuracy, memories(win_space), sram_bytes, flash_bytes, econf, progress
        )
    except ValueError as err:
        raise memories.infeasible(sram_bytes, flash_bytes, f"no subnet of {win.name}") from err
    if not candidates:
        raise memories.infeasible(sram_bytes, flash_bytes, f"no subnet of {win.name}")
    timings["evolutionary_search_s"] = time.perf_counter() - clock
    best = max(candidates, key=lambda c: c.accuracy)

    model = supernet.extract(best.cfg)
    x_test, y_test = load_split(dataset, "test")
    pt_path, pt2_path = out_dir / "best_subnet.pt", out_dir / "best_subnet.pt2"
    torch.save(
        {"config": asdict(best.cfg), "space": asdict(win_space), "state_dict": model.state_dict()},
        pt_path,
    )
    export_pt2(model, torch.from_numpy(x_val[:1]), pt2_path)
    pareto = plot_pareto(
        candidates,
        best,
        sram_bytes,
        flash_bytes,
        f"{dataset}: evolutionary search in {win.name}, SRAM from the deployed planner",
        out_dir / "pareto.png",
    )
    result = {
        "dataset": dataset,
        "board": board,
        "preset": preset,
        "seed": seed,
        "budget": {"sram_bytes": sram_bytes, "flash_bytes": flash_bytes},
        "settings": {
            "space_evolution": asdict(sconf),
            "evolution": asdict(econf),
            "final_epochs": final_epochs,
            "base_space": asdict(base),
            "n_train": len(x_tr),
            "n_val": len(x_val),
        },
        "spaces": [asdict(v) for v in evolution.spaces],
        "rounds": [asdict(v) for v in evolution.visits],
        "moves": [asdict(m) for m in evolution.moves],
        "fixed_point": evolution.fixed_point,
        "winner": {"space": win.name, "epochs": win.epochs + final_epochs, "S": win.S},
        "candidates": [_candidate_json(c) for c in candidates],
        "best": {
            "architecture": asdict(best.cfg),
            "accuracy": best.accuracy,
            "test_top1": evaluate_top1(model, x_test, y_test),
            "peak_sram_bytes": best.memory.peak_sram_bytes,
            "flash_bytes": best.memory.flash_bytes,
            "arena_bytes": best.memory.arena_bytes,
            "paths": {"pt": str(pt_path), "pt2": str(pt2_path), "pareto": str(pareto)},
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    write_json_atomic(json.loads(json.dumps(result)), out_dir / "search.json")
    if progress:
        _log(f"best: {describe_subnet(asdict(best.cfg))}; wrote {out_dir / 'search.json'}")
    return result
