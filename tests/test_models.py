"""TinyViT, the MAC count of its Relax graph, training, evaluation and export."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tvm_mcuformer.data import load_split
from tvm_mcuformer.frontend import ImportedModel
from tvm_mcuformer.lowering.macs import count_macs as count_relax_macs
from tvm_mcuformer.models import (
    DEMO_CONFIG,
    QuickGELU,
    TinyViT,
    ViTConfig,
    build_vit,
)
from tvm_mcuformer.training import DEMO_RECIPE, evaluate_top1, export_pt2, train

from .conftest import DIGITS_VIT

torch.set_num_threads(1)


def count_macs(model_or_cfg: TinyViT | ViTConfig) -> int:
    """MACs of the model's exported Relax graph (the compiler's one MAC counter)."""
    from tvm.relax.frontend.torch import from_exported_program

    model = model_or_cfg if isinstance(model_or_cfg, TinyViT) else build_vit(model_or_cfg)
    cfg = model.config
    x = torch.zeros(1, cfg.in_chans, cfg.img_size, cfg.img_size)
    program = torch.export.export(model.eval(), (x,))
    mod = ImportedModel.from_module(from_exported_program(program, keep_params_as_input=False))
    return count_relax_macs(mod.mod)


TINY = ViTConfig(
    img_size=4,
    patch_size=2,
    in_chans=1,
    num_classes=3,
    embed_dim=4,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
)
DIGITS = dataclasses.replace(DIGITS_VIT, gelu="quick")


@pytest.mark.parametrize("gelu", ["gelu", "quick"])
def test_forward_shape(gelu):
    torch.manual_seed(0)
    model = TinyViT(12, 4, 3, 7, 16, 2, 4, 1.5, gelu=gelu)
    assert model(torch.randn(5, 3, 12, 12)).shape == (5, 7)
    assert model.config.num_tokens == 9 and model.config.mlp_hidden == 24


def test_demo_config_size():
    model = build_vit(DEMO_CONFIG)
    assert DEMO_CONFIG.num_tokens == 16
    assert sum(p.numel() for p in model.parameters()) == 71_946
    assert count_macs(DEMO_CONFIG) == count_macs(model) == 1_164_928


def test_quick_gelu_formula():
    x = torch.linspace(-4, 4, 9)
    assert torch.allclose(QuickGELU()(x), x * torch.sigmoid(1.702 * x))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patch_size": 5}, "patch_size=5 does not divide img_size=28"),
        ({"num_heads": 3}, "num_heads=3 does not divide embed_dim=64"),
        ({"gelu": "relu"}, "gelu='relu' is unknown; choose one of: gelu, quick"),
        ({"depth": 0}, "depth=0 must be a positive integer"),
        ({"mlp_ratio": 0.0}, "empty MLP"),
    ],
)
def test_bad_configs_raise(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DEMO_CONFIG, **change)
    with pytest.raises(ValueError, match=message):
        TinyViT(**{**dataclasses.asdict(DEMO_CONFIG), **change})


def test_count_macs_by_hand():
    # TINY: N = (4/2)^2 = 4 tokens, D = 4, hidden M = 8, 1 channel, patch 2, 3 classes.
    patch = 4 * 4 * (1 * 2 * 2)  # 64
    qkv = 4 * 4 * 12  # 192
    scores = 4 * 4 * 4  # q @ k^T over both heads: 64
    mix = 4 * 4 * 4  # attn @ v: 64
    proj = 4 * 4 * 4  # 64
    mlp = 4 * 4 * 8 + 4 * 8 * 4  # 256
    head = 4 * 3  # 12
    assert count_macs(TINY) == patch + qkv + scores + mix + proj + mlp + head == 716


@pytest.mark.parametrize("cfg", [TINY, DIGITS, DEMO_CONFIG])
def test_count_macs_matches_torch_flop_counter(cfg):
    model = build_vit(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, cfg.in_chans, cfg.img_size, cfg.img_size))
    assert counter.get_total_flops() == 2 * count_macs(model)


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", "train"), load_split("digits", "test")


def test_tinyvit_learns_digits(digits, capsys):
    (x_train, y_train), (x_test, y_test) = digits
    torch.manual_seed(0)
    model = train(build_vit(DIGITS), x_train, y_train, epochs=15, batch_size=32, seed=0)
    assert not model.training
    assert evaluate_top1(model, x_test, y_test) > 0.85
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 15 and lines[-1].startswith("epoch 15/15  loss ")
    assert "train acc" in lines[-1] and lines[-1].endswith(" s")


def test_training_is_deterministic_and_restores_threads(digits):
    (x_train, y_train), _ = digits
    torch.set_num_threads(2)
    states = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_vit(DIGITS)
        train(model, x_train[:256], y_train[:256], 2, max_shift=1, seed=3, progress=False)
        states.append(model.state_dict())
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_train_rejects_bad_input():
    model = build_vit(TINY)
    x = np.zeros((4, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\)"):
        train(model, x[:, 0], np.zeros(4), 1)
    with pytest.raises(ValueError, match="one label per image"):
        train(model, x, np.zeros(3), 1)
    with pytest.raises(ValueError, match="must all be positive"):
        train(model, x, np.zeros(4), 0)
    with pytest.raises(ValueError, match="max_shift=4"):
        train(model, x, np.zeros(4), 1, max_shift=4)
    with pytest.raises(ValueError, match="one label per image"):
        evaluate_top1(model, x, np.zeros(5))


def test_demo_recipe_is_train_keywords():
    assert set(DEMO_RECIPE) <= set(inspect.signature(train).parameters)


def test_export_pt2_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_vit(dataclasses.replace(DIGITS, depth=2))
    x = torch.randn(1, 1, 8, 8)
    path = export_pt2(model, x, tmp_path / "sub" / "model.pt2")
    assert path.is_file() and not model.training
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
        other = torch.randn(1, 1, 8, 8)
        assert torch.allclose(loaded(other), model(other), atol=1e-6)


def test_export_pt2_needs_batch_one(tmp_path):
    with pytest.raises(ValueError, match="batch 1"):
        export_pt2(build_vit(TINY), torch.zeros(2, 1, 4, 4), tmp_path / "m.pt2")


@pytest.mark.parametrize("gelu", ["gelu", "quick"])
def test_exported_program_imports_into_relax(gelu):
    relax_torch = pytest.importorskip("tvm.relax.frontend.torch")
    model = build_vit(dataclasses.replace(TINY, gelu=gelu, depth=2)).eval()
    program = torch.export.export(model, (torch.zeros(1, 1, 4, 4),))
    mod = relax_torch.from_exported_program(program)
    assert "main" in [gv.name_hint for gv in mod.get_global_vars()]
