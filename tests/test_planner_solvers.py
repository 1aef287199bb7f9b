"""The planner as a component: solvers on synthetic buffers, the registry, the verifier."""

from __future__ import annotations

import random

import pytest

from tvm_mcuformer.cli import PLANNERS
from tvm_mcuformer.lowering import Tensor, TensorKind
from tvm_mcuformer.planner import (
    ALGORITHMS,
    SOLVERS,
    BufferModel,
    InplacePair,
    PlanError,
    plan_buffers,
    register_solver,
    verify_plan,
)

ALIGN = 16


def buffers(spec: list[tuple[int, int, int]]) -> dict[Tensor, tuple[int, int]]:
    """``[(bytes, first call, last call)]`` as int8 activations with those lifetimes."""
    return {
        Tensor(i, f"t{i}", (n,), "int8", TensorKind.ACTIVATION): (s, e)
        for i, (n, s, e) in enumerate(spec)
    }


def random_model(seed: int, count: int = 40, calls: int = 30) -> BufferModel:
    rng = random.Random(seed)
    spec = []
    for _ in range(count):
        s = rng.randrange(calls)
        spec.append((16 * rng.randint(1, 64), s, min(calls - 1, s + rng.randint(0, 6))))
    return BufferModel.from_buffers(buffers(spec))


def test_cli_lists_every_planner():
    assert set(PLANNERS) == set(ALGORITHMS)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_solver_gives_a_verified_plan_above_the_lower_bound(seed, algorithm):
    model = random_model(seed)
    plan = plan_buffers(model, algorithm, ALIGN)
    verify_plan(model, plan.offsets, plan.arena_bytes, ALIGN)
    assert model.lower_bound_bytes <= plan.arena_bytes <= model.naive_bytes
    if algorithm == "best":
        sizes = [plan_buffers(model, name, ALIGN).arena_bytes for name in SOLVERS]
        assert plan.arena_bytes == min(sizes)
        assert plan.arena_bytes <= 1.5 * model.lower_bound_bytes


def test_disjoint_lifetimes_share_one_buffer():
    model = BufferModel.from_buffers(buffers([(64, 0, 0), (64, 1, 1), (64, 2, 2)]))
    plan = plan_buffers(model, "best", ALIGN)
    assert plan.arena_bytes == model.lower_bound_bytes == 64
    assert set(plan.offsets.values()) == {0}


def test_order_matters_and_best_reaches_the_bound():
    """By start, the early buffers take the low offsets and leave the late large one only
    the top; by size it goes first and the plan meets the lower bound."""
    spec = [(64, 3, 3), (48, 1, 3), (16, 2, 3), (32, 0, 2)]
    model = BufferModel.from_buffers(buffers(spec))
    assert model.lower_bound_bytes == 128
    by_start = plan_buffers(model, "greedy_by_start", ALIGN).arena_bytes
    best = plan_buffers(model, "best", ALIGN)
    assert best.arena_bytes == model.lower_bound_bytes < by_start


def test_inplace_pair_overlaps_only_at_its_offset():
    lifetimes = buffers([(64, 0, 1), (96, 1, 2), (16, 0, 2)])
    src, dst, other = lifetimes
    pair = InplacePair(1, src, dst, 32)  # output larger: input ends where output ends
    model = BufferModel.from_buffers(lifetimes, [pair])
    assert model.lower_bound_bytes == 96 + 16
    plan = plan_buffers(model, "best", ALIGN)
    assert plan.offsets[src] - plan.offsets[dst] == 32
    assert plan.arena_bytes == 96 + 16
    shifted = dict(plan.offsets)
    shifted[src] = plan.offsets[dst]  # same bytes, but not where the kernel writes over
    with pytest.raises(PlanError, match="overlap"):
        verify_plan(model, shifted, plan.arena_bytes, ALIGN)


def test_verifier_rejects_a_corrupted_plan():
    model = random_model(7)
    plan = plan_buffers(model, "best", ALIGN)
    a, b = next(
        (a, b)
        for a in model.lifetimes
        for b in model.lifetimes
        if a is not b and model.lifetimes[a][0] == model.lifetimes[b][0]
    )
    corrupt = {**plan.offsets, b: plan.offsets[a]}
    with pytest.raises(PlanError, match=f"{a.name}|{b.name}"):
        verify_plan(model, corrupt, plan.arena_bytes, ALIGN)
    with pytest.raises(PlanError, match="outside the arena"):
        verify_plan(model, plan.offsets, plan.arena_bytes - ALIGN, ALIGN)
    with pytest.raises(PlanError, match="no arena offset"):
        verify_plan(model, {t: o for t, o in plan.offsets.items() if t is not a}, 1 << 20, ALIGN)


@pytest.fixture
def scratch_solver():
    added = []

    def add(name, solver):
        register_solver(name)(solver)
        added.append(name)

    yield add
    for name in added:
        del SOLVERS[name]


def test_registered_solver_is_used_and_verified(scratch_solver):
    def stacked(model, alignment):  # no reuse at all: valid, as large as naive
        bases, top = {}, 0
        for iv in model.intervals:
            bases[iv] = top
            top += -(-iv.nbytes // alignment) * alignment
        return bases

    def everything_at_zero(model, alignment):
        return dict.fromkeys(model.intervals, 0)

    scratch_solver("stacked", stacked)
    scratch_solver("broken", everything_at_zero)
    model = random_model(3)
    plan = plan_buffers(model, "stacked", ALIGN)
    assert plan.algorithm == "stacked" and plan.arena_bytes >= model.naive_bytes
    with pytest.raises(PlanError):
        plan_buffers(model, "broken", ALIGN)
    with pytest.raises(ValueError, match="already registered"):
        register_solver("stacked")(stacked)
