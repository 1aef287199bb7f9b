"""Search-space evolution (fit, update, state, resume) and the end-to-end search on digits."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tvm_mcuformer.compiler import CompileOptions
from tvm_mcuformer.data import load_split
from tvm_mcuformer.demo import deploy
from tvm_mcuformer.search import SearchSpace, SubnetConfig
from tvm_mcuformer.search.cli import register
from tvm_mcuformer.search.evolution import EvolutionConfig
from tvm_mcuformer.search.memory import PlannerMemory, SubnetMemory
from tvm_mcuformer.search.run import PRESETS, InfeasibleBudget, load_subnet, run_search
from tvm_mcuformer.search.space_evolution import (
    STATE_FILE,
    SpaceEvolutionConfig,
    SpaceVisit,
    evolve_spaces,
    fit_local_linear,
    fit_points,
    next_point,
    space_dir,
)


def tiny_space(rank_ratio: float = 1.0, patch_size: int = 4) -> SearchSpace:
    """4 subnets per space on 8x8 digits: embed {16, 32} x depth {1, 2}."""
    return SearchSpace((16, 32), (2,), (2.0,), (1, 2), rank_ratio, patch_size, 8, 1, 10)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def fake_memory(space: SearchSpace):
    """Stand-in for PlannerMemory: more tokens and wider layers need more SRAM."""

    def memory(cfg: SubnetConfig) -> SubnetMemory:
        tokens = space.num_tokens
        return SubnetMemory(tokens * cfg.embed_dim * 8, cfg.embed_dim * cfg.depth * 100, 0)

    return memory


def test_fit_local_linear():
    points = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 1]])
    scores = 0.1 * points[:, 0] - 0.05 * points[:, 1] + 0.7
    w, s0 = fit_local_linear(points, scores)
    np.testing.assert_allclose(w, [0.1, -0.05], atol=1e-12)
    assert s0 == pytest.approx(0.7)
    w, _ = fit_local_linear(np.array([[3, 1], [4, 1]]), np.array([0.5, 0.6]))
    np.testing.assert_allclose(w, [0.1, 0.0], atol=1e-12)  # no spread along x1: slope 0
    with pytest.raises(ValueError, match="two or more points"):
        fit_local_linear(np.array([[0, 0]]), np.array([1.0]))


def test_next_point_rules():
    grid = (3, 2)
    # one space: nothing to fit, probe the first factor (up, or down at the top)
    assert next_point((1, 1), [(1, 1)], [0.5], (0.02, 0.02), grid)[:2] == ((2, 1), "probe")
    assert next_point((2, 1), [(2, 1)], [0.5], (0.02, 0.02), grid)[:2] == ((1, 1), "probe")
    # S rises by 0.05 per step along rho: round(0.05 / 0.02) = 3 steps, clamped to the grid
    x, rule, w = next_point((0, 0), [(0, 0), (1, 0)], [0.5, 0.55], (0.02, 0.02), (6, 2))
    assert (x, rule) == ((3, 0), "fit") and w[0] == pytest.approx(0.05)
    assert next_point((1, 0), [(0, 0), (1, 0)], [0.5, 0.55], (0.02, 0.02), grid)[0] == (2, 0)
    # S falls along rho: step down (the paper's minus sign is its own sign convention)
    assert next_point((1, 0), [(1, 0), (2, 0)], [0.6, 0.5], (0.02, 0.02), grid)[0] == (0, 0)
    # clamped at the edge with an unprobed factor: probe it
    assert next_point((2, 0), [(1, 0), (2, 0)], [0.5, 0.6], (0.02, 0.02), grid)[:2] == (
        (2, 1),
        "probe",
    )
    # a flat plane, both factors probed: fixed point
    flat = [(1, 0), (0, 0), (1, 1), (2, 0)]
    assert next_point((1, 0), flat, [0.7] * 4, (0.02, 0.02), grid)[:2] == ((1, 0), "fixed point")
    # a slope below the threshold's half rounds to no step
    assert next_point((1, 0), flat[:3], [0.7, 0.695, 0.705], (0.02, 0.02), grid)[1] == (
        "fixed point"
    )


def test_update_climbs_synthetic_scores_to_a_fixed_point():
    """The loop's rule on a concave S: it climbs and stops at the maximum."""

    def score(x):
        return 1 - 0.03 * ((x[0] - 4) ** 2 + (x[1] - 2) ** 2)

    x, scored, path = (0, 0), {}, []
    for _ in range(30):
        scored[x] = score(x)
        path.append(x)
        phi = sorted(scored, key=lambda p: (math.dist(p, x), p))[:4]
        x, rule, _ = next_point(x, phi, [scored[p] for p in phi], (0.05, 0.05), (6, 5))
        if rule == "fixed point":
            break
    assert rule == "fixed point" and x == (4, 2)
    assert score(path[-1]) == max(scored.values()) and len(path) < 15


def test_fit_points_same_epochs_else_previous_round():
    def visit(rnd, x, epochs):
        return SpaceVisit(rnd, x, 0.5, 4, epochs, 0.5, 1.0, 1.0, 0.5, 0.5, 1, 1, None, 0.0)

    config = SpaceEvolutionConfig(rank_ratios=(0.25, 0.5, 1.0), epochs_per_round=2, k_nearest=2)
    visits = [visit(1, (0, 0), 2), visit(2, (1, 0), 2), visit(3, (2, 1), 2), visit(4, (0, 0), 4)]
    assert [v.round for v in fit_points(visits, (1, 0), 2, config)] == [2, 1]  # k nearest
    assert [v.round for v in fit_points(visits, (0, 0), 4, config)] == [1, 2]  # E = 4 - 2
    assert [v.round for v in fit_points(visits[:1], (0, 0), 2, config)] == [1]


@pytest.fixture(scope="module")
def digits_small():
    x, y = load_split("digits", "train")
    return x[:500], y[:500], x[500:700], y[500:700]


def test_evolve_spaces_state_kill_and_resume(digits_small, tmp_path, capsys):
    config = SpaceEvolutionConfig(
        rank_ratios=(0.5, 1.0), patch_sizes=(2, 4), epochs_per_round=1, n_subnets=3, max_rounds=1
    )
    out = tmp_path / "evo"

    def evolve(memory=fake_memory, **changes):
        cfg = replace(config, **changes)
        return evolve_spaces(
            tiny_space(), *digits_small, memory, 4096, 10**6, out, cfg, {"dataset": "digits"}
        )

    first = evolve()
    state = json.loads((out / STATE_FILE).read_text())
    assert state["rounds"] == 1 and state["next_x"] == list(first.next_x)
    (visit,) = first.visits
    assert visit.x == (1, 1) and (visit.rank_ratio, visit.patch_size, visit.epochs) == (1.0, 4, 1)
    assert visit.S == pytest.approx(visit.A + config.eta * visit.R)
    assert visit.A == pytest.approx((visit.best_top1 + visit.mean_top1) / 2)
    assert visit.R == 1.0  # 4 tokens x 32 x 8 B <= 4096 B
    assert first.moves[0].rule == "probe" and first.next_x == (0, 1)
    ckpt = space_dir(out, 1.0, 4) / "supernet_epoch1.pt"
    mtime = ckpt.stat().st_mtime_ns

    def killed(space):
        raise KeyboardInterrupt("killed while scoring")

    with pytest.raises(KeyboardInterrupt):  # round 2 trains, then dies before its state is saved
        evolve(memory=killed, max_rounds=2)
    new_ckpt = space_dir(out, 0.5, 4) / "supernet_epoch1.pt"
    new_mtime = new_ckpt.stat().st_mtime_ns
    assert json.loads((out / STATE_FILE).read_text())["rounds"] == 1
    capsys.readouterr()

    second = evolve(max_rounds=2)
    log = capsys.readouterr().err
    assert "resuming" in log and "1 round(s) done" in log
    assert "already holds 1 epochs" in log  # round 2's training is not repeated
    assert ckpt.stat().st_mtime_ns == mtime and new_ckpt.stat().st_mtime_ns == new_mtime
    assert not (space_dir(out, 1.0, 4) / "supernet_epoch2.pt").exists()
    state = json.loads((out / STATE_FILE).read_text())
    assert state["rounds"] == 2 and [v["x"] for v in state["visits"]] == [[1, 1], [0, 1]]
    assert second.visits[0] == visit and second.visits[1].init_from == "rho1.0_p4"
    assert second.visits[1].R == 1.0 and {v.name for v in second.spaces} == {
        "rho1.0_p4",
        "rho0.5_p4",
    }

    again = evolve(max_rounds=2)  # nothing left to do
    assert again.visits == second.visits and "epoch 1/1" not in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"other settings \(config.n_subnets\)"):
        evolve(n_subnets=4, max_rounds=2)


def test_search_quick_end_to_end(tmp_path):
    """The real search: planner memory, budgets that exclude 16-token and the widest subnets;
    the found subnet, deployed int8 on QEMU, runs within the SRAM budget."""
    limit = PlannerMemory(tiny_space(1.0, 4))(SubnetConfig(32, 1, (2,), (2.0,), 1.0, 4))
    sram, flash = limit.peak_sram_bytes, limit.flash_bytes
    out = tmp_path / "search"
    result = run_search(
        "digits",
        sram,
        flash,
        out,
        preset="quick",
        space=tiny_space(),
        rank_ratios=(0.5, 1.0),
        progress=False,
    )
    assert {"spaces", "candidates", "best", "budget", "settings", "moves"} <= result.keys()
    assert json.loads((out / "search.json").read_text()) == json.loads(json.dumps(result))
    assert result["budget"] == {"sram_bytes": sram, "flash_bytes": flash}
    assert len(result["rounds"]) == 3
    for space in result["spaces"]:
        assert {"x", "rank_ratio", "patch_size", "A", "R", "S", "epochs"} <= space.keys()
        if space["patch_size"] == 2:
            assert space["R"] == 0  # 16 tokens never fit
    best = result["best"]
    assert best["peak_sram_bytes"] <= sram and best["flash_bytes"] <= flash
    assert best["accuracy"] == max(c["accuracy"] for c in result["candidates"])
    assert all(c["peak_sram_bytes"] <= sram for c in result["candidates"])
    assert best["architecture"]["patch_size"] == 4
    model = load_subnet(best["paths"]["pt"])
    program = torch.export.load(best["paths"]["pt2"]).module()
    x = torch.from_numpy(load_split("digits", "test")[0][:4])
    torch.testing.assert_close(program(x[:1]), model(x[:1]))
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    x_train, _ = load_split("digits", "train")
    x_test, y_test = load_split("digits", "test")
    options = CompileOptions(sram_bytes=sram, flash_bytes=flash, calibration=x_train[:64, None])
    report = deploy(
        Path(best["paths"]["pt2"]),
        tmp_path / "deploy",
        "mps2-an500",
        options,
        x_test,
        y_test,
        limit=8,
    )
    memory = report["memory"]
    assert memory["planned_arena_bytes"] == best["arena_bytes"]
    assert 0 < memory["measured"]["peak_sram_bytes"] <= sram
    assert memory["fits_budget"] is True and report["accuracy"]["device_equals_host"] is True


def test_infeasible_budget_raises_and_writes_nothing(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["search", "--dataset", "digits", "--sram", "1KiB", "-o", "x"])
    assert (args.sram, args.flash, args.quick, args.preset, args.seed) == (
        "1KiB",
        None,
        False,
        "full",
        0,
    )
    (preset_action,) = [
        a
        for sub in parser._subparsers._group_actions
        for a in sub.choices["search"]._actions
        if a.dest == "preset"
    ]
    assert tuple(preset_action.choices) == tuple(PRESETS)  # the CLI lists every preset
    out = tmp_path / "search"
    with pytest.raises(InfeasibleBudget, match=r"1024 B SRAM .* smallest memory seen is \d+ B"):
        run_search(
            "digits",
            1024,
            2**20,
            out,
            preset="quick",
            space=tiny_space(),
            rank_ratios=(1.0,),
            patch_sizes=(4,),
            progress=False,
        )
    assert not (out / "best_subnet.pt").exists() and not (out / "best_subnet.pt2").exists()
    with pytest.raises(ValueError, match="positive byte count"):
        run_search("digits", 0, 2**20, out)
    with pytest.raises(ValueError, match="unknown search preset 'fast'; choose one of: quick"):
        run_search("digits", 2**20, 2**20, out, preset="fast")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_settings(name):
    """Every preset builds its stage configs; larger presets spend at least as much."""
    preset = PRESETS[name]
    sconf = SpaceEvolutionConfig(**preset.space_evolution)
    econf = EvolutionConfig(**preset.evolution)
    assert preset.final_epochs >= 1
    if name == "full":
        assert (econf.population, econf.parents, econf.generations) == (50, 10, 20)  # AutoFormer
        assert (sconf.n_subnets, preset.max_train) == (50, None)
    cost = sconf.max_rounds * sconf.epochs_per_round + preset.final_epochs
    smaller = {"quick": None, "standard": "quick", "full": "standard"}[name]
    if smaller is not None:
        low = PRESETS[smaller]
        low_s = SpaceEvolutionConfig(**low.space_evolution)
        assert cost >= low_s.max_rounds * low_s.epochs_per_round + low.final_epochs
        assert econf.population >= EvolutionConfig(**low.evolution).population
