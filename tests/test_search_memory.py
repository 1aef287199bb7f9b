"""The search's memory model is the compiler's planner; the evolutionary search obeys it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend.model import ImportedModel
from tvm_mcuformer.search.evolution import EvolutionConfig, evolutionary_search
from tvm_mcuformer.search.memory import PlannerMemory, SubnetMemory
from tvm_mcuformer.search.space import SearchSpace, SubnetConfig
from tvm_mcuformer.search.supernet import Supernet

SPACE = SearchSpace(
    embed_dims=(16, 32),
    num_heads=(2, 4),
    mlp_ratios=(1.0, 2.0),
    depths=(1, 2),
    rank_ratio=0.5,
    patch_size=4,
    img_size=8,
    in_chans=1,
    num_classes=10,
)


def test_planner_memory_equals_a_calibrated_compile_of_the_subnet():
    """Placeholder scales change no byte: the search sees what `compile` deploys."""
    from tvm.relax.frontend.torch import from_exported_program

    x, _ = load_split("digits", "train")
    memory = PlannerMemory(SPACE)
    net = Supernet(SPACE).eval()
    rng = np.random.default_rng(3)
    for cfg in (SPACE.smallest(), SPACE.largest(), SPACE.sample(rng)):
        ep = torch.export.export(net.extract(cfg).eval(), (torch.zeros(1, 1, 8, 8),))
        model = ImportedModel.from_module(from_exported_program(ep, keep_params_as_input=False))
        deployed = compile_model(model, CompileOptions(calibration=x[:32, None])).metadata
        got = memory(cfg)
        assert got.peak_sram_bytes == deployed["memory"]["required_sram_bytes"]
        assert got.flash_bytes == deployed["memory"]["required_flash_bytes"]
        assert got.arena_bytes == deployed["memory"]["planned_arena_bytes"]
    small, large = memory(SPACE.smallest()), memory(SPACE.largest())
    assert small.arena_bytes < large.arena_bytes and small.flash_bytes < large.flash_bytes


def _fake_memory(cfg) -> SubnetMemory:
    """Memory growing with width and depth (a stand-in to keep the search test fast)."""
    arena = cfg.embed_dim * (cfg.depth + max(cfg.mlp_hidden)) * 4
    return SubnetMemory(arena + 1000, 10_000 * cfg.depth, arena)


def _fake_accuracy(cfg) -> float:
    return cfg.embed_dim * cfg.depth + sum(cfg.mlp_ratios) + 0.1 * sum(cfg.num_heads)


def _all_subnets(space: SearchSpace) -> list[SubnetConfig]:
    return [
        SubnetConfig(e, d, heads, ratios, space.rank_ratio, space.patch_size)
        for e in space.embed_dims
        for d in space.depths
        for heads in itertools.product(space.num_heads, repeat=d)
        for ratios in itertools.product(space.mlp_ratios, repeat=d)
    ]


def test_evolutionary_search_finds_the_best_subnet_that_fits():
    budget = 5300
    fitting = [c for c in _all_subnets(SPACE) if _fake_memory(c).fits(budget, 10**6)]
    optimum = max(_fake_accuracy(c) for c in fitting)
    assert len(fitting) < len(_all_subnets(SPACE))  # the budget really excludes subnets
    conf = EvolutionConfig(population=8, parents=3, mutations=6, crossovers=6, generations=4)
    found = evolutionary_search(SPACE, _fake_accuracy, _fake_memory, budget, 10**6, conf, False)
    assert found and all(c.memory.fits(budget, 10**6) for c in found)
    for c in found:
        SPACE.check(c.cfg)
    assert max(c.accuracy for c in found) == optimum
    assert len({c.cfg for c in found}) == len(found)


def test_infeasible_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="smallest drawn needs"):
        evolutionary_search(
            SPACE,
            _fake_accuracy,
            _fake_memory,
            10,
            10**6,
            EvolutionConfig(population=4, generations=1, max_tries=5),
            False,
        )
