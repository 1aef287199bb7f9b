"""Search space, weight-entangled supernet, subnet extraction and resumable supernet training."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tvm_mcuformer.data import load_split
from tvm_mcuformer.search import (
    SearchSpace,
    SubnetConfig,
    SubnetViT,
    Supernet,
    default_space,
    low_rank,
)
from tvm_mcuformer.search.train_supernet import (
    evaluate_subnet,
    latest_checkpoint,
    load_supernet,
    train_supernet,
)
from tvm_mcuformer.training import evaluate_top1, export_pt2

TORCHRUN = Path(sys.executable).with_name("torchrun")


def tiny_space(rank_ratio: float = 0.5, patch_size: int = 4, img_size: int = 8) -> SearchSpace:
    return SearchSpace(
        embed_dims=(16, 24, 32),
        num_heads=(2, 4),
        mlp_ratios=(1.0, 2.0),
        depths=(1, 2),
        rank_ratio=rank_ratio,
        patch_size=patch_size,
        img_size=img_size,
        in_chans=1,
        num_classes=10,
    )


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", "train"), load_split("digits", "test")


def make_supernet(space: SearchSpace, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return Supernet(space)


def test_sampled_configs_are_valid():
    space = default_space(0.25, 4)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(200)]
    for cfg in configs:
        space.check(cfg)
        assert len(cfg.num_heads) == len(cfg.mlp_ratios) == cfg.depth
        assert all(cfg.embed_dim % h == 0 for h in cfg.num_heads)
        assert cfg.rank_ratio == 0.25 and cfg.patch_size == 4
        assert cfg.mlp_ranks == tuple(low_rank(0.25, cfg.embed_dim) for _ in range(cfg.depth))
    assert {c.embed_dim for c in configs} == set(space.embed_dims)
    assert {c.depth for c in configs} == set(space.depths)
    assert {r for c in configs for r in c.mlp_ratios} == set(space.mlp_ratios)
    again = np.random.default_rng(0)
    assert [space.sample(again) for _ in range(200)] == configs
    assert space.largest() == SubnetConfig(64, 3, (4, 4, 4), (2.0, 2.0, 2.0), 0.25, 4)
    assert space.smallest() == SubnetConfig(32, 1, (2,), (1.5,), 0.25, 4)
    assert space.num_tokens == 49 and default_space(1.0, 7).num_tokens == 16
    assert low_rank(0.5, 24) == 12 and low_rank(0.25, 2) == 1 and low_rank(1.0, 48) == 48


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": (3,)}, "do not divide"),
        ({"rank_ratio": 0.0}, "rank_ratio"),
        ({"rank_ratio": 1.5}, "rank_ratio"),
        ({"patch_size": 5}, "does not divide img_size"),
        ({"embed_dims": ()}, "non-empty"),
        ({"depths": (0, 1)}, "positive"),
        ({"gelu": "relu"}, "unknown"),
    ],
)
def test_bad_space_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**{**tiny_space().__dict__, **kwargs})


def test_bad_subnet_raises():
    space = tiny_space()
    with pytest.raises(ValueError, match="one entry per layer"):
        SubnetConfig(16, 2, (2,), (1.0, 1.0), 0.5, 4)
    with pytest.raises(ValueError, match="does not divide"):
        SubnetConfig(18, 1, (4,), (1.0,), 0.5, 4)
    with pytest.raises(ValueError, match="not a choice"):
        space.check(SubnetConfig(40, 1, (4,), (1.0,), 0.5, 4))
    with pytest.raises(ValueError, match="space-level"):
        space.check(SubnetConfig(16, 1, (4,), (1.0,), 0.25, 4))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        space.sample(0)
    net = make_supernet(space)
    with pytest.raises(ValueError, match="must be images"):
        net(torch.zeros(1, 1, 28, 28), space.largest())
    with pytest.raises(ValueError, match="not a choice"):
        net(torch.zeros(1, 1, 8, 8), SubnetConfig(16, 3, (2,) * 3, (1.0,) * 3, 0.5, 4))


def test_weight_entanglement():
    """A step on the smallest subnet moves only the leading slices, and changes the largest."""
    space = tiny_space()
    net = make_supernet(space)
    small, large = space.smallest(), space.largest()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    before = net(x, large).detach()
    nn.functional.cross_entropy(net(x, small), y).backward()
    e, r, h = small.embed_dim, small.mlp_ranks[0], small.mlp_hidden[0]
    b0, b1 = net.blocks
    assert b1.qkv.weight.grad is None  # depth 1: the second block is unused
    q = b0.qkv.weight.grad.view(3, 32, 32)  # q, k, v blocks of the (3 D_max, D_max) weight
    assert q[:, :e, :e].abs().sum() > 0 and q[:, e:].abs().sum() == q[:, :, e:].abs().sum() == 0
    v, u = b0.fc1.v.grad, b0.fc1.u.grad
    assert v[:r, :e].abs().sum() > 0 and v[r:].abs().sum() == v[:, e:].abs().sum() == 0
    assert u[:h, :r].abs().sum() > 0 and u[h:].abs().sum() == u[:, r:].abs().sum() == 0
    assert net.head.weight.grad[:, e:].abs().sum() == 0
    torch.optim.SGD(net.parameters(), lr=0.5).step()
    assert not torch.allclose(net(x, large), before)


@pytest.mark.parametrize(("rank_ratio", "patch_size"), [(0.25, 4), (0.5, 7), (1.0, 4), (1.0, 7)])
def test_extract_matches_supernet_and_exports(rank_ratio, patch_size, tmp_path):
    space = tiny_space(rank_ratio, patch_size, img_size=28)
    net = make_supernet(space).eval()
    x = torch.randn(4, 1, 28, 28)
    rng = np.random.default_rng(1)
    mixed = SubnetConfig(24, 2, (2, 4), (2.0, 1.0), rank_ratio, patch_size)
    configs = [space.largest(), space.smallest(), mixed, *(space.sample(rng) for _ in range(3))]
    with torch.no_grad():
        for cfg in configs:
            sub = net.extract(cfg)
            assert isinstance(sub, SubnetViT) and sub.config == cfg
            torch.testing.assert_close(sub(x), net(x, cfg), rtol=1e-5, atol=1e-6)
    sub = net.extract(mixed)
    fc1 = sub.blocks[0].mlp[0]
    if rank_ratio < 1:
        v, u = fc1
        r = low_rank(rank_ratio, 24)
        assert (v.in_features, v.out_features, v.bias) == (24, r, None)
        assert (u.in_features, u.out_features) == (r, 48) and u.bias is not None
    else:
        assert isinstance(fc1, nn.Linear) and (fc1.in_features, fc1.out_features) == (24, 48)
    assert {type(m) for m in sub.modules()} <= {
        SubnetViT,
        type(sub.blocks[0]),
        type(sub.blocks[0].attn),
        type(sub.blocks[0].mlp[1]),
        nn.Sequential,
        nn.Conv2d,
        nn.Linear,
        nn.LayerNorm,
    }
    path = export_pt2(sub, x[:1], tmp_path / "subnet.pt2")
    program = torch.export.load(path).module()
    torch.testing.assert_close(program(x[:1]), net(x[:1], mixed), rtol=1e-5, atol=1e-6)


def _state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            if not _state_equal(va, vb):
                return False
        elif isinstance(va, torch.Tensor):
            if not torch.equal(va, vb):
                return False
        elif va != vb:
            return False
    return True


def test_resume_equals_uninterrupted_run(digits, tmp_path, capsys):
    (x, y), (xt, yt) = digits
    space = tiny_space()
    full = tmp_path / "full"
    train_supernet(make_supernet(space), space, x, y, 2, full, max_shift=1)
    capsys.readouterr()

    killed = tmp_path / "killed"  # as left by a run killed during epoch 2
    killed.mkdir()
    shutil.copy2(full / "supernet_epoch1.pt", killed)
    (killed / ".supernet_epoch2.pt.123.tmp").write_bytes(b"partial")
    epoch1_mtime = (killed / "supernet_epoch1.pt").stat().st_mtime_ns
    net = make_supernet(space, seed=1)  # other init: every weight must come from the checkpoint
    path = train_supernet(net, space, x, y, 2, killed, max_shift=1)
    err = capsys.readouterr().err
    assert path == killed / "supernet_epoch2.pt"
    assert "at epoch 2/2" in err and "epoch 2/2  loss" in err and "epoch 1/2" not in err
    assert (killed / "supernet_epoch1.pt").stat().st_mtime_ns == epoch1_mtime
    a = torch.load(full / "supernet_epoch2.pt", weights_only=True)
    b = torch.load(path, weights_only=True)
    for key in ("model", "optimizer", "scheduler", "settings", "space", "epoch"):
        assert _state_equal({key: a[key]}, {key: b[key]}), key
    assert _state_equal(net.state_dict(), load_supernet(path).state_dict())

    assert train_supernet(net, space, x, y, 2, full, max_shift=1) == full / "supernet_epoch2.pt"
    assert "already holds 2 epochs" in capsys.readouterr().err

    with pytest.raises(ValueError, match="lr"):
        train_supernet(net, space, x, y, 3, full, lr=1e-3, max_shift=1)

    acc = evaluate_subnet(net, space.largest(), xt, yt)
    assert acc == evaluate_top1(net.extract(space.largest()), xt, yt)
    assert acc > 0.15


def test_more_epochs_continue_without_repeating(digits, tmp_path, capsys):
    (x, y), _ = digits
    space = tiny_space(rank_ratio=1.0)
    out = tmp_path / "run"
    train_supernet(make_supernet(space), space, x, y, 1, out, sandwich=False)
    epoch1_mtime = (out / "supernet_epoch1.pt").stat().st_mtime_ns
    capsys.readouterr()
    train_supernet(make_supernet(space), space, x, y, 2, out, sandwich=False)
    err = capsys.readouterr().err
    assert re.findall(r"^epoch (\d+)/2", err, re.M) == ["2"]
    assert "resuming" in err and "at epoch 2/2" in err
    assert (out / "supernet_epoch1.pt").stat().st_mtime_ns == epoch1_mtime
    assert latest_checkpoint(out) == (2, out / "supernet_epoch2.pt")


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        str(TORCHRUN),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tvm_mcuformer.search.train_supernet",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--patch-size",
        "4",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1/1" in done.stderr and "largest subnet test top-1" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["supernet_epoch1.pt"]
    ckpt = torch.load(out / "supernet_epoch1.pt", weights_only=True)
    assert ckpt["settings"]["world_size"] == 2 and ckpt["epoch"] == 1


def test_corrupt_latest_checkpoint_falls_back_to_the_epoch_before(digits, tmp_path, capsys):
    (x, y), _ = digits
    space = tiny_space()
    full = tmp_path / "full"
    train_supernet(make_supernet(space), space, x, y, 2, full, max_shift=1)
    broken = tmp_path / "broken"  # as left by a disk that lost the end of epoch 2's file
    shutil.copytree(full, broken)
    data = (broken / "supernet_epoch2.pt").read_bytes()
    (broken / "supernet_epoch2.pt").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    path = train_supernet(make_supernet(space, seed=1), space, x, y, 2, broken, max_shift=1)
    err = capsys.readouterr().err
    assert f"warning: checkpoint {broken / 'supernet_epoch2.pt'} is corrupt" in err
    assert "at epoch 2/2" in err and "weights_only" not in err
    a = torch.load(full / "supernet_epoch2.pt", weights_only=True)
    b = torch.load(path, weights_only=True)
    for key in ("model", "optimizer", "scheduler", "settings", "space", "epoch"):
        assert _state_equal({key: a[key]}, {key: b[key]}), key


def test_low_rank_on_every_linear(tmp_path):
    """With low_rank_scope="all" (the paper space's) qkv, proj and the classifier are
    factorised too; q/k/v keep their own leading rows and the subnet equals the supernet."""
    from dataclasses import replace

    space = replace(tiny_space(0.5, 4, img_size=8), low_rank_scope="all")
    net = make_supernet(space).eval()
    cfg = SubnetConfig(24, 2, (2, 4), (2.0, 1.0), 0.5, 4)
    x = torch.randn(3, 1, 8, 8)
    sub = net.extract(cfg)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), net(x, cfg), rtol=1e-5, atol=1e-6)
    r = low_rank(0.5, 24)
    attn = sub.blocks[0].attn
    for layer, (n_in, out) in ((attn.qkv, (24, 72)), (attn.proj, (24, 24)), (sub.head, (24, 10))):
        v, u = layer
        rank = low_rank(0.5, min(n_in, out))
        assert (v.in_features, v.out_features, v.bias) == (n_in, rank, None)
        assert (u.in_features, u.out_features) == (rank, out) and u.bias is not None
    # qkv's U rows: the leading 24 rows of each of the q, k and v blocks (32 rows each)
    u_super = net.blocks[0].qkv.u
    blocks = [u_super[i * 32 : i * 32 + 24, :r] for i in range(3)]
    torch.testing.assert_close(attn.qkv[1].weight, torch.cat(blocks))
    assert len([m for m in sub.modules() if isinstance(m, nn.Linear)]) == 2 * (4 * 2 + 1)
    path = export_pt2(sub, x[:1], tmp_path / "subnet.pt2")
    torch.testing.assert_close(torch.export.load(path).module()(x[:1]), net(x[:1], cfg))
