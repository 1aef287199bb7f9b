"""Search-space evolution: MCUFormer's outer loop over the low-rank ratio ρ and the patch size.

A point of the grid is ``x = (i, j)``, the space with ρ = ``rank_ratios[i]`` and
patch size ``patch_sizes[j]`` (the other choices come from a base
:class:`~tvm_mcuformer.search.space.SearchSpace`); Δ_i is one index step. Each
round of :func:`evolve_spaces`:

1. trains the supernet of the current space ``epochs_per_round`` more epochs
   with :func:`~tvm_mcuformer.search.train_supernet.train_supernet` in
   ``out_dir/spaces/rho{ρ}_p{patch}/``. Revisiting a space continues its
   training (its total epoch count E grows). A space visited for the first
   time is warm-started: every tensor of the nearest visited space's
   checkpoint whose name and shape match (attention, norms, head; the
   factors of an MLP with the same rank; not the patch or position embedding
   of another patch size) is copied into its fresh supernet
   (:func:`warm_start`). E counts only the epochs trained in the space itself.
2. scores the space: ``A`` = mean of the best and the average top-1, on the
   validation images, of ``n_subnets`` subnets sampled with ``seed`` (the same
   draws in every space); ``R`` = the fraction of them whose memory fits the
   SRAM and flash budget; ``S = A + η·R``.
3. moves (:func:`next_point`): fit ``S ≈ wᵀx + S0`` by least squares on the
   k nearest scored spaces with the same E (:func:`fit_points`; with fewer
   than two, on the k nearest at the previous round's count E − epochs_per_round),
   then ``x_i ← x_i + round(w_i / h_i)·Δ_i``, clamped to the grid. That steps
   toward higher S; the paper writes the update with a minus sign under its
   own sign convention. When the rounded step is zero and the fitted spaces
   do not vary along some factor (always the case with a single space), the
   slope along it is unknown: x steps one index along the first such factor
   (up, or down at the top of the grid) to probe it. Otherwise a zero step is
   a fixed point and the evolution stops.

Every round is recorded (:class:`SpaceVisit`: x, ρ, patch, E, A, R, S, …) and
the whole state (settings, visits, moves, the next x, the round count) is
written atomically to ``out_dir/search_state.json`` after the round. Calling
:func:`evolve_spaces` again on the same ``out_dir`` resumes: finished rounds
are not redone, an interrupted round's training resumes from its
checkpoints, and the caps (``max_rounds``) may be raised to go on; other
settings that differ raise ``ValueError``. The cost cap is ``max_rounds``:
``max_rounds · epochs_per_round`` epochs in all.
"""

from __future__ import annotations

import json
import math
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tvm_mcuformer.fileio import write_json_atomic
from tvm_mcuformer.search.space import (
    DEFAULT_PATCH_SIZES,
    DEFAULT_RANK_RATIOS,
    SearchSpace,
    SubnetConfig,
)
from tvm_mcuformer.search.supernet import Supernet
from tvm_mcuformer.search.train_supernet import (
    checkpoint_path,
    evaluate_subnet,
    latest_checkpoint,
    train_supernet,
)
from tvm_mcuformer.training import BATCH_SIZE, LR, WEIGHT_DECAY, ArrayLike

if TYPE_CHECKING:
    from tvm_mcuformer.search.memory import SubnetMemory

STATE_FILE = "search_state.json"
STATE_VERSION = 1
CAPS = ("max_rounds",)
"""Settings a resumed run may change."""

MemoryFn = Callable[[SubnetConfig], "SubnetMemory"]


def _log(message: str) -> None:
    print(f"space evolution: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SpaceEvolutionConfig:
    """Settings of :func:`evolve_spaces`; validated on construction, grids stored sorted.

    ``start`` is the first x (indices into the sorted grids; None: the middle
    of each). ``thresholds`` are the h_i of the update, in units of S per
    index step. ``batch_size``, ``lr``, ``weight_decay``, ``max_shift`` and
    ``sandwich`` go to ``train_supernet``; ``seed`` fixes the supernet
    initialisation, the training order and the subnets that score a space.
    """

    rank_ratios: tuple[float, ...] = DEFAULT_RANK_RATIOS
    patch_sizes: tuple[int, ...] = DEFAULT_PATCH_SIZES
    start: tuple[int, int] | None = None
    epochs_per_round: int = 5
    n_subnets: int = 50
    eta: float = 0.5
    k_nearest: int = 4
    thresholds: tuple[float, float] = (0.02, 0.02)
    max_rounds: int = 8
    seed: int = 0
    batch_size: int = BATCH_SIZE
    lr: float = LR
    weight_decay: float = WEIGHT_DECAY
    max_shift: int = 0
    sandwich: bool = True

    def __post_init__(self) -> None:
        for name, kind in (("rank_ratios", float), ("patch_sizes", int)):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"SpaceEvolutionConfig.{name}={values!r} must be a non-empty list")
            object.__setattr__(self, name, tuple(sorted({kind(v) for v in values})))
        if not all(0 < r <= 1 for r in self.rank_ratios):
            raise ValueError(
                f"SpaceEvolutionConfig.rank_ratios={self.rank_ratios} must be in (0, 1]"
            )
        if not all(p >= 1 for p in self.patch_sizes):
            raise ValueError(f"SpaceEvolutionConfig.patch_sizes={self.patch_sizes} must be >= 1")
        for name in ("epochs_per_round", "n_subnets", "max_rounds", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"SpaceEvolutionConfig.{name}={value!r} must be a positive integer"
                )
        if self.k_nearest < 2:
            raise ValueError(f"SpaceEvolutionConfig.k_nearest={self.k_nearest} must be >= 2")
        if self.eta < 0 or self.lr <= 0:
            raise ValueError(f"SpaceEvolutionConfig: eta={self.eta} must be >= 0, lr={self.lr} > 0")
        thresholds = tuple(float(h) for h in self.thresholds)
        if len(thresholds) != 2 or not all(h > 0 for h in thresholds):
            raise ValueError(
                f"SpaceEvolutionConfig.thresholds={self.thresholds!r} must be two positive numbers"
            )
        object.__setattr__(self, "thresholds", thresholds)
        if self.start is not None:
            start = tuple(self.start)
            if len(start) != 2 or not all(
                isinstance(i, int) and 0 <= i < n
                for i, n in zip(start, self.grid_shape, strict=True)
            ):
                raise ValueError(
                    f"SpaceEvolutionConfig.start={self.start!r} must be two indices into "
                    f"rank_ratios {self.rank_ratios} and patch_sizes {self.patch_sizes}"
                )
            object.__setattr__(self, "start", start)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return len(self.rank_ratios), len(self.patch_sizes)

    @property
    def first_point(self) -> tuple[int, int]:
        if self.start is not None:
            return self.start
        rows, cols = self.grid_shape
        return rows // 2, cols // 2

    def factors(self, x: Sequence[int]) -> tuple[float, int]:
        """``(ρ, patch size)`` of grid point ``x``."""
        return self.rank_ratios[x[0]], self.patch_sizes[x[1]]


def space_name(rank_ratio: float, patch_size: int) -> str:
    """Folder name of a space, ``rho{ρ}_p{patch}`` (e.g. ``rho0.5_p4``)."""
    return f"rho{float(rank_ratio)}_p{int(patch_size)}"


def space_dir(out_dir: str | Path, rank_ratio: float, patch_size: int) -> Path:
    """``out_dir/spaces/rho{ρ}_p{patch}``: the supernet checkpoints of one space."""
    return Path(out_dir) / "spaces" / space_name(rank_ratio, patch_size)


def grid_space(base: SearchSpace, rank_ratio: float, patch_size: int) -> SearchSpace:
    """``base`` with the space-level factors ρ and patch size replaced."""
    return replace(base, rank_ratio=rank_ratio, patch_size=patch_size)


@dataclass(frozen=True)
class SpaceVisit:
    """One round: the space trained (``x``, ρ, patch), its total epochs ``E`` and its score.

    ``A`` = (``best_top1`` + ``mean_top1``) / 2 over the sampled subnets, ``R``
    the fraction of them within budget, ``S = A + η·R``;
    ``min_peak_sram_bytes`` / ``min_flash_bytes`` are the smallest memory among
    them; ``init_from`` names the space a new one was warm-started from.
    """

    round: int
    x: tuple[int, int]
    rank_ratio: float
    patch_size: int
    epochs: int
    A: float
    R: float
    S: float
    best_top1: float
    mean_top1: float
    min_peak_sram_bytes: int
    min_flash_bytes: int
    init_from: str | None
    seconds: float

    @property
    def name(self) -> str:
        return space_name(self.rank_ratio, self.patch_size)

    @classmethod
    def from_json(cls, data: Mapping) -> SpaceVisit:
        return cls(**{**data, "x": tuple(data["x"])})


@dataclass(frozen=True)
class Move:
    """How round ``round`` chose the next x.

    ``rule`` is ``"fit"`` (the rounded linear step), ``"probe"`` (one index
    along a factor the fitted spaces do not vary on) or ``"fixed point"``.
    ``points`` are the x of the fitted spaces, all scored at ``epochs``;
    ``w`` the fitted slopes (S per index step; 0 along unprobed factors).
    """

    round: int
    x: tuple[int, int]
    next_x: tuple[int, int]
    rule: str
    epochs: int
    points: tuple[tuple[int, int], ...]
    w: tuple[float, ...]

    @classmethod
    def from_json(cls, data: Mapping) -> Move:
        return cls(
            **{
                **data,
                "x": tuple(data["x"]),
                "next_x": tuple(data["next_x"]),
                "points": tuple(tuple(p) for p in data["points"]),
                "w": tuple(data["w"]),
            }
        )


@dataclass(frozen=True)
class SpaceEvolution:
    """Result of :func:`evolve_spaces`: every round's visit and move, in order."""

    visits: tuple[SpaceVisit, ...]
    moves: tuple[Move, ...]
    fixed_point: bool
    next_x: tuple[int, int]
    state_path: Path
    settings: Mapping

    @property
    def spaces(self) -> list[SpaceVisit]:
        """The latest visit of each space, in order of first visit."""
        latest: dict[tuple[int, int], SpaceVisit] = {}
        for v in self.visits:
            latest[v.x] = v  # an existing key keeps its place
        return list(latest.values())

    @property
    def winner(self) -> SpaceVisit:
        """The visited space with the highest latest S among those with R > 0 (any, if none).

        A space none of whose sampled subnets fits is passed over even when its
        accuracy outweighs η·R: the subnet search inside it would likely find nothing.
        Ties go to the first visited.
        """
        if not self.visits:
            raise ValueError("the space evolution has not scored any space yet")
        feasible = [v for v in self.spaces if v.R > 0]
        return max(feasible or self.spaces, key=lambda v: v.S)


def fit_local_linear(points: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares ``S ≈ w·x + S0`` on ``points`` (n, d) with ``scores`` (n,); ``(w, S0)``.

    Coordinates are centred before the fit, so with too few points (or none
    varying along a factor) ``numpy.linalg.lstsq`` gives the minimum-norm
    slopes: 0 along every factor the points do not vary on.
    """
    points = np.asarray(points, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if points.ndim != 2 or scores.shape != (len(points),) or len(points) < 2:
        raise ValueError(
            f"fit_local_linear needs two or more points (n, d) with one score each; got "
            f"points {points.shape}, scores {scores.shape}"
        )
    centre = points.mean(axis=0)
    design = np.hstack([points - centre, np.ones((len(points), 1))])
    coef = np.linalg.lstsq(design, scores, rcond=None)[0]
    w = coef[:-1]
    return w, float(coef[-1] - w @ centre)


def _round_half_away(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def next_point(
    x: Sequence[int],
    points: Sequence[Sequence[int]],
    scores: Sequence[float],
    thresholds: Sequence[float],
    grid_shape: Sequence[int],
) -> tuple[tuple[int, ...], str, tuple[float, ...]]:
    """The update of one round: ``(next x, rule, w)``; see the module docstring.

    ``points``/``scores`` are the fitted spaces (their x and S); with fewer than
    two no line is fitted (w = 0). ``rule`` is ``"fit"``, ``"probe"`` or
    ``"fixed point"`` (then next x == x).
    """
    x = tuple(int(i) for i in x)
    if len(thresholds) != len(x) or len(grid_shape) != len(x) or len(points) != len(scores):
        raise ValueError("next_point: x, thresholds and grid_shape need one entry per factor")
    w = np.zeros(len(x))
    if len(points) >= 2:
        w, _ = fit_local_linear(np.asarray(points), np.asarray(scores))
    new = [
        min(max(i + _round_half_away(wi / h), 0), n - 1)
        for i, wi, h, n in zip(x, w, thresholds, grid_shape, strict=True)
    ]
    slopes = tuple(float(v) for v in w)
    if tuple(new) != x:
        return tuple(new), "fit", slopes
    spread = np.ptp(np.asarray(points), axis=0) if len(points) else np.zeros(len(x))
    for axis, n in enumerate(grid_shape):
        if spread[axis] == 0 and n > 1:
            new[axis] = x[axis] + 1 if x[axis] + 1 < n else x[axis] - 1
            return tuple(new), "probe", slopes
    return x, "fixed point", slopes


def local_points(
    visits: Sequence[SpaceVisit], x: Sequence[int], epochs: int, k: int
) -> list[SpaceVisit]:
    """Φ: the (at most) ``k`` visits at ``epochs`` total epochs nearest to ``x`` (ties: by x)."""
    same = [v for v in visits if v.epochs == epochs]
    same.sort(key=lambda v: (math.dist(v.x, x), v.x))
    return same[:k]


def fit_points(
    visits: Sequence[SpaceVisit], x: Sequence[int], epochs: int, config: SpaceEvolutionConfig
) -> list[SpaceVisit]:
    """Φ(x) for the fit: the k nearest at ``epochs``; with fewer than two, the k nearest at
    the previous round's count ``epochs - epochs_per_round`` if that gives two or more."""
    phi = local_points(visits, x, epochs, config.k_nearest)
    if len(phi) < 2 and epochs > config.epochs_per_round:
        earlier = local_points(visits, x, epochs - config.epochs_per_round, config.k_nearest)
        return earlier if len(earlier) >= 2 else phi
    return phi


def _nearest_visited(visits: Sequence[SpaceVisit], x: Sequence[int]) -> SpaceVisit | None:
    """Latest visit of the visited space nearest to ``x`` (ties: most epochs, then lowest x)."""
    latest = {v.x: v for v in visits}
    return min(latest.values(), key=lambda v: (math.dist(v.x, x), -v.epochs, v.x), default=None)


def warm_start(supernet: Supernet, checkpoint: str | Path) -> tuple[int, int]:
    """Copy into ``supernet`` every tensor of ``checkpoint`` whose name and shape match.

    Returns ``(copied, total)`` tensor counts of the supernet's state dict;
    the other tensors keep their fresh initialisation.
    """
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    target = supernet.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    supernet.load_state_dict(matched, strict=False)
    return len(matched), len(target)


def train_space(
    space: SearchSpace,
    directory: Path,
    epochs: int,
    x: ArrayLike,
    y: ArrayLike,
    config: SpaceEvolutionConfig,
    init_from: Path | None = None,
    progress: bool = True,
) -> Supernet:
    """Train the supernet of ``space`` in ``directory`` up to ``epochs`` total epochs.

    Resumes from ``directory``'s checkpoints; when it has none, ``init_from``
    (a checkpoint of another space) warm-starts it (:func:`warm_start`).
    Returns the supernet in eval mode.
    """
    torch.manual_seed(config.seed)
    supernet = Supernet(space)
    if init_from is not None and latest_checkpoint(directory) is None:
        copied, total = warm_start(supernet, init_from)
        if progress:
            _log(f"{directory.name}: warm start, {copied}/{total} tensors from {init_from}")
    train_supernet(
        supernet,
        space,
        x,
        y,
        epochs,
        directory,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        max_shift=config.max_shift,
        seed=config.seed,
        sandwich=config.sandwich,
        progress=progress,
    )
    return supernet


def score_space(
    supernet: Supernet,
    space: SearchSpace,
    x_val: ArrayLike,
    y_val: ArrayLike,
    memory: MemoryFn,
    sram_bytes: int,
    flash_bytes: int,
    config: SpaceEvolutionConfig,
) -> dict:
    """A, R, S and the top-1 and memory extremes of ``config.n_subnets`` sampled subnets."""
    rng = np.random.default_rng(config.seed)
    configs = [space.sample(rng) for _ in range(config.n_subnets)]
    top1 = [evaluate_subnet(supernet, cfg, x_val, y_val) for cfg in configs]
    mems = [memory(cfg) for cfg in configs]
    best, mean = max(top1), float(np.mean(top1))
    a = (best + mean) / 2
    r = sum(m.fits(sram_bytes, flash_bytes) for m in mems) / len(mems)
    return {
        "A": a,
        "R": r,
        "S": a + config.eta * r,
        "best_top1": best,
        "mean_top1": mean,
        "min_peak_sram_bytes": min(m.peak_sram_bytes for m in mems),
        "min_flash_bytes": min(m.flash_bytes for m in mems),
    }


def _fingerprint(a: ArrayLike) -> list:
    arr = np.ascontiguousarray(np.asarray(a))
    return [list(arr.shape), zlib.crc32(arr.tobytes())]


def _settings(base, config, sram_bytes, flash_bytes, data, extra) -> dict:
    cfg = {k: v for k, v in asdict(config).items() if k not in CAPS}
    settings = {
        "base_space": asdict(base),
        "config": cfg,
        "sram_bytes": sram_bytes,
        "flash_bytes": flash_bytes,
        "data": [_fingerprint(a) for a in data],
        "extra": dict(extra or {}),
    }
    return json.loads(json.dumps(settings))  # the form it takes in the state file


def _differences(new: Mapping, old: Mapping, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two nested settings mappings."""
    out = []
    for key in sorted(new.keys() | old.keys()):
        a, b = new.get(key), old.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(prefix + key)
    return out


def _load_state(path: Path, settings: dict) -> dict | None:
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path} has state version {state.get('version')!r}, not {STATE_VERSION}")
    stale = _differences(settings, state["settings"])
    if stale:
        raise ValueError(
            f"{path} was written with other settings ({', '.join(stale)}); rerun with the same "
            "ones (only max_rounds may change) or use a new output directory"
        )
    return state


def evolve_spaces(
    base: SearchSpace,
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_val: ArrayLike,
    y_val: ArrayLike,
    memory_for: Callable[[SearchSpace], MemoryFn],
    sram_bytes: int,
    flash_bytes: int,
    out_dir: str | Path,
    config: SpaceEvolutionConfig | None = None,
    extra_settings: Mapping | None = None,
    progress: bool = True,
) -> SpaceEvolution:
    """Evolve the (ρ, patch) space from ``config.first_point``; see the module docstring.

    ``base`` supplies the per-subnet choices and the image geometry (its own
    ρ and patch size are replaced by the grid's). Supernets train on
    ``x_train``/``y_train`` and spaces are scored on ``x_val``/``y_val`` (a
    held-out slice of the training split, never the test split).
    ``memory_for(space)`` returns the memory model of the subnets of a space,
    ``cfg -> SubnetMemory`` (e.g. ``PlannerMemory(space, board)``).
    ``extra_settings`` (JSON values) join the settings a resumed run must
    repeat. Progress lines go to stderr.
    """
    config = config or SpaceEvolutionConfig()
    if not isinstance(base, SearchSpace):
        raise TypeError(f"evolve_spaces needs a base SearchSpace, not {type(base).__name__}")
    for name, value in (("sram_bytes", sram_bytes), ("flash_bytes", flash_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"evolve_spaces: {name}={value!r} must be a positive byte count")
    spaces = {
        (i, j): grid_space(base, rho, patch)
        for i, rho in enumerate(config.rank_ratios)
        for j, patch in enumerate(config.patch_sizes)
    }
    out_dir = Path(out_dir)
    state_path = out_dir / STATE_FILE
    data = (x_train, y_train, x_val, y_val)
    settings = _settings(base, config, sram_bytes, flash_bytes, data, extra_settings)
    state = _load_state(state_path, settings)
    if state is None:
        visits: list[SpaceVisit] = []
        moves: list[Move] = []
        x, fixed = config.first_point, False
    else:
        visits = [SpaceVisit.from_json(v) for v in state["visits"]]
        moves = [Move.from_json(m) for m in state["moves"]]
        x, fixed = tuple(state["next_x"]), state["fixed_point"]
        if progress:
            _log(f"resuming {state_path}: {len(visits)} round(s) done, next x={x}")
    memories: dict[tuple[int, int], MemoryFn] = {}
    while not fixed and len(visits) < config.max_rounds:
        start = time.perf_counter()
        rnd = len(visits) + 1
        rho, patch = config.factors(x)
        space = spaces[x]
        directory = space_dir(out_dir, rho, patch)
        own = [v for v in visits if v.x == x]
        epochs = (own[-1].epochs if own else 0) + config.epochs_per_round
        source = _nearest_visited(visits, x) if not own else None
        init_from = None
        if source is not None:
            source_dir = space_dir(out_dir, source.rank_ratio, source.patch_size)
            init_from = checkpoint_path(source_dir, source.epochs)
        if progress:
            _log(
                f"round {rnd}/{config.max_rounds}: {space_name(rho, patch)} x={x}, "
                f"training to epoch {epochs}"
                + (f" (new, warm start from {source.name})" if source else "")
            )
        supernet = train_space(
            space, directory, epochs, x_train, y_train, config, init_from, progress
        )
        if x not in memories:
            memories[x] = memory_for(space)
        scores = score_space(
            supernet, space, x_val, y_val, memories[x], sram_bytes, flash_bytes, config
        )
        visit = SpaceVisit(
            round=rnd,
            x=x,
            rank_ratio=rho,
            patch_size=patch,
            epochs=epochs,
            init_from=source.name if source else None,
            seconds=round(time.perf_counter() - start, 2),
            **scores,
        )
        visits.append(visit)
        phi = fit_points(visits, x, epochs, config)
        new_x, rule, w = next_point(
            x, [v.x for v in phi], [v.S for v in phi], config.thresholds, config.grid_shape
        )
        move = Move(rnd, x, new_x, rule, phi[0].epochs, tuple(v.x for v in phi), w)
        moves.append(move)
        fixed = rule == "fixed point"
        x = new_x
        if progress:
            _log(
                f"round {rnd}: A={visit.A:.4f} (best {visit.best_top1:.4f}, mean "
                f"{visit.mean_top1:.4f}) R={visit.R:.2f} S={visit.S:.4f}; {rule} on "
                f"{len(phi)} space(s) at E={move.epochs}, w=({', '.join(f'{v:+.4f}' for v in w)})"
                f" -> x={x} ({visit.seconds:.1f} s)"
            )
        write_json_atomic(
            {
                "version": STATE_VERSION,
                "settings": settings,
                "rounds": len(visits),
                "next_x": list(x),
                "fixed_point": fixed,
                "visits": [asdict(v) for v in visits],
                "moves": [asdict(m) for m in moves],
            },
            state_path,
        )
    if progress:
        reason = "fixed point" if fixed else f"round cap {config.max_rounds}"
        _log(f"stopped after {len(visits)} round(s) ({reason})")
    return SpaceEvolution(tuple(visits), tuple(moves), fixed, x, state_path, settings)
