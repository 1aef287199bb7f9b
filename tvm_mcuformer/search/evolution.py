"""Evolutionary search for the most accurate subnet within SRAM and flash budgets.

AutoFormer's procedure with its defaults: a random initial population of
subnets that fit the budgets; each generation keeps the ``parents`` most
accurate, and adds ``mutations`` mutants (each layer's heads and MLP ratio
resampled with ``mutation_prob``, depth and embedding dim with
``depth_embed_prob``) and ``crossovers`` (every choice from one of two
parents) until the population is refilled. Candidates that do not fit are
discarded before their accuracy is evaluated; every evaluation is memoised.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .memory import SubnetMemory
from .space import SearchSpace, SubnetConfig


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 50
    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    generations: int = 20
    mutation_prob: float = 0.2
    depth_embed_prob: float = 0.4
    seed: int = 0
    max_tries: int = 200  # draws allowed per wanted candidate before giving up


@dataclass(frozen=True)
class Candidate:
    """An evaluated subnet that fits the budgets."""

    cfg: SubnetConfig
    accuracy: float
    memory: SubnetMemory


def _mutate(space: SearchSpace, cfg: SubnetConfig, conf: EvolutionConfig, rng) -> SubnetConfig:
    depth, embed = cfg.depth, cfg.embed_dim
    if rng.random() < conf.depth_embed_prob:
        depth = space.depths[rng.integers(len(space.depths))]
    if rng.random() < conf.depth_embed_prob:
        embed = space.embed_dims[rng.integers(len(space.embed_dims))]
    heads, ratios = [], []
    for layer in range(depth):
        fresh = layer >= cfg.depth or rng.random() < conf.mutation_prob
        heads.append(
            space.num_heads[rng.integers(len(space.num_heads))] if fresh else cfg.num_heads[layer]
        )
        fresh = layer >= cfg.depth or rng.random() < conf.mutation_prob
        ratios.append(
            space.mlp_ratios[rng.integers(len(space.mlp_ratios))]
            if fresh
            else cfg.mlp_ratios[layer]
        )
    return space.subnet(embed, depth, heads, ratios)


def _crossover(space: SearchSpace, a: SubnetConfig, b: SubnetConfig, rng) -> SubnetConfig:
    def pick(*options):
        return options[rng.integers(len(options))]

    depth, embed = pick(a.depth, b.depth), pick(a.embed_dim, b.embed_dim)
    heads, ratios = [], []
    for layer in range(depth):
        donors = [p for p in (a, b) if layer < p.depth]
        heads.append(pick(*donors).num_heads[layer])
        ratios.append(pick(*donors).mlp_ratios[layer])
    return space.subnet(embed, depth, heads, ratios)


def evolutionary_search(
    space: SearchSpace,
    accuracy: Callable[[SubnetConfig], float],
    memory: Callable[[SubnetConfig], SubnetMemory],
    sram_bytes: int,
    flash_bytes: int,
    config: EvolutionConfig = EvolutionConfig(),
    progress: bool = True,
) -> list[Candidate]:
    """Every evaluated candidate that fits, in evaluation order (best: max accuracy).

    Raises ``ValueError`` when no subnet that fits is found in the initial draws.
    """
    rng = np.random.default_rng(config.seed)
    seen: dict[SubnetConfig, Candidate | None] = {}
    smallest_seen: list[int] = []

    def consider(cfg: SubnetConfig) -> Candidate | None:
        if cfg not in seen:
            mem = memory(cfg)
            smallest_seen.append(mem.peak_sram_bytes)
            seen[cfg] = (
                Candidate(cfg, accuracy(cfg), mem) if mem.fits(sram_bytes, flash_bytes) else None
            )
        return seen[cfg]

    def fill(make: Callable[[], SubnetConfig], count: int, into: list[Candidate]) -> None:
        wanted, tries = len(into) + count, 0
        while len(into) < wanted and tries < config.max_tries * count:
            tries += 1
            cand = consider(make())
            if cand is not None and all(c.cfg != cand.cfg for c in into):
                into.append(cand)

    population: list[Candidate] = []
    fill(lambda: space.sample(rng), config.population, population)
    if not population:
        raise ValueError(
            f"no subnet of the space fits the budget (SRAM {sram_bytes} B, flash {flash_bytes} B);"
            f" the smallest drawn needs {min(smallest_seen)} B of SRAM: raise --sram or use a"
            " smaller space"
        )
    for gen in range(config.generations):
        parents = [c.cfg for c in sorted(population, key=lambda c: -c.accuracy)[: config.parents]]
        children = [seen[cfg] for cfg in parents]

        def mutant(parents=parents) -> SubnetConfig:
            return _mutate(space, parents[rng.integers(len(parents))], config, rng)

        def cross(parents=parents) -> SubnetConfig:
            i, j = rng.choice(len(parents), 2, replace=len(parents) < 2)
            return _crossover(space, parents[i], parents[j], rng)

        fill(mutant, config.mutations, children)
        fill(cross, config.crossovers, children)
        population = children
        if progress:
            best = max(population, key=lambda c: c.accuracy)
            print(
                f"search: generation {gen + 1}/{config.generations}: best top-1 "
                f"{best.accuracy:.4f} at {best.memory.peak_sram_bytes} B SRAM; "
                f"{sum(c is not None for c in seen.values())} of {len(seen)} evaluated fit",
                file=sys.stderr,
                flush=True,
            )
    return [c for c in seen.values() if c is not None]
