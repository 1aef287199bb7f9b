"""Paper scale at CI size: the paper space, the data-free memory search and the budget check
before calibration.

The same code paths as the 224-px bench (bench/paper_scale.py), on 32-px images with
patch 8/16 so that every plan takes about a second.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from tvm_mcuformer import compiler
from tvm_mcuformer.cli import main
from tvm_mcuformer.compiler import BudgetError, CompileOptions, compile_model, plan_model
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.lowering.macs import count_macs
from tvm_mcuformer.search.datafree import mac_count, param_count, weight_bytes
from tvm_mcuformer.search.memory import PlannerMemory
from tvm_mcuformer.search.run import load_subnet
from tvm_mcuformer.search.space import paper_patch_sizes, paper_space
from tvm_mcuformer.search.supernet import Supernet
from tvm_mcuformer.training import export_pt2


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def small_paper_space(rank_ratio: float, patch_size: int):
    """The paper space's choices (ρ on every linear) at 32 px, 10 classes, narrower."""
    return replace(
        paper_space(rank_ratio, patch_size, img_size=32, num_classes=10),
        embed_dims=(24, 48),
        depths=(1, 2, 3),
    )


def test_paper_patch_sizes():
    assert paper_patch_sizes(224) == (16, 28, 32) and paper_patch_sizes(240) == (16, 20, 24)
    with pytest.raises(ValueError, match="224 or 240"):
        paper_patch_sizes(50)


@pytest.mark.parametrize(("rank_ratio", "patch_size"), [(0.4, 8), (1.0, 16)])
def test_analytic_capacity_and_flash_equal_the_model_and_planner(tmp_path, rank_ratio, patch_size):
    """Params, MACs and int8 weight bytes of the search's formulas equal the extracted
    module's parameters, count_macs on its Relax graph and the planner's weight bytes."""
    space = small_paper_space(rank_ratio, patch_size)
    torch.manual_seed(0)
    net = Supernet(space).eval()
    rng = np.random.default_rng(round(rank_ratio * 100))
    for i, cfg in enumerate((space.largest(), space.sample(rng))):
        model = net.extract(cfg)
        assert param_count(space, cfg) == sum(p.numel() for p in model.parameters())
        imported = import_model(export_pt2(model, torch.zeros(1, 3, 32, 32), tmp_path / f"{i}.pt2"))
        assert mac_count(space, cfg) == count_macs(imported.mod)
        memory = plan_model(imported, CompileOptions(quantize="int8-layout")).memory
        assert memory["weight_bytes"] == weight_bytes(space, cfg)


def test_datafree_search_cli_finds_a_fitting_subnet_that_compiles(tmp_path, capsys):
    """--no-train: the found subnet fits per the planner and per compile; one layer more
    (more MACs, same widths) does not fit, so the scan did not stop early."""
    out = tmp_path / "search"
    sram, flash = 40 * 1024, 768 * 1024
    args = ["search", "--space", "paper", "--no-train", "--image-size", "32", "--num-classes",
            "10", "--patch-sizes", "8,16", "--rank-ratios", "0.5,0.95", "--sram", str(sram),
            "--flash", str(flash), "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "data-free search (macs)" in capsys.readouterr().out
    result = json.loads((out / "search.json").read_text())
    best = result["best"]
    assert best["peak_sram_bytes"] <= sram and best["flash_bytes"] <= flash
    model = load_subnet(out / "best_subnet.pt")
    cfg, space = model.config, model.space
    assert space.img_size == 32 and space.num_classes == 10 and space.low_rank_scope == "all"
    assert best["macs"] == mac_count(space, cfg) and best["params"] == param_count(space, cfg)
    if cfg.depth < space.max_depth:
        deeper = space.subnet(
            cfg.embed_dim,
            cfg.depth + 1,
            [*cfg.num_heads, cfg.num_heads[-1]],
            [*cfg.mlp_ratios, space.mlp_ratios[0]],
        )
        assert not PlannerMemory(space)(deeper).fits(sram, flash)
    artifact = tmp_path / "m.tar"
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype("float32"))
    assert main(["compile", best["paths"]["pt2"], "-o", str(artifact), "--sram", str(sram),
                 "--flash", str(flash), "--calib", str(calib)]) == 0  # fmt: skip
    with tarfile.open(artifact) as tar:
        compiled = json.load(tar.extractfile("metadata.json"))["memory"]
    assert compiled["required_sram_bytes"] == best["peak_sram_bytes"]
    assert compiled["required_flash_bytes"] == best["flash_bytes"]


def test_over_budget_refused_before_calibration_naming_layers(tmp_path, monkeypatch):
    space = small_paper_space(0.5, 8)
    torch.manual_seed(0)
    model = Supernet(space).extract(space.largest())
    pt2 = export_pt2(model, torch.zeros(1, 3, 32, 32), tmp_path / "m.pt2")

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated an over-budget model")

    monkeypatch.setattr("tvm_mcuformer.quantize.passes.calibrate", no_calibration)
    calibration = np.zeros((2, 1, 3, 32, 32), np.float32)
    for budget, what in ({"sram_bytes": 9 * 1024}, "SRAM"), ({"flash_bytes": 64 * 1024}, "flash"):
        with pytest.raises(BudgetError, match=f"{what} budget") as err:
            compile_model(pt2, CompileOptions(calibration=calibration, **budget))
        message = str(err.value)
        assert "largest layers by live bytes: " in message and "by weight bytes: " in message
        assert message.count(" B, ") >= 2 * (compiler.TOP_LAYERS - 1)
