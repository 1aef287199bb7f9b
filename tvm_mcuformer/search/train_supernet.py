"""Train a :class:`~tvm_mcuformer.search.supernet.Supernet` one sampled subnet per step, resumably.

Each step draws a subnet from the search space with a generator seeded by
``(seed, step)`` (so every process of a ``torchrun`` job draws the same
one); with the sandwich rule the largest and smallest subnets run too and
the three gradients are accumulated before one AdamW step. The learning
rate warms up linearly over the first epoch, then decays on a cosine to
zero at ``epochs``. Data order comes from a ``DistributedSampler`` seeded
with ``seed`` (one replica when not distributed) and random shifts from a
generator seeded by ``(seed, epoch, rank)``: all randomness is derived from
the seed, so a resumed run equals an uninterrupted one bit for bit (same
``epochs``, same machine and world size).

After every epoch ``out_dir/supernet_epoch{N}.pt`` is written atomically
(temporary file, fsync, rename) holding the model, optimizer and scheduler
states, torch's RNG state, the epoch and the training settings. A call whose
``out_dir`` already holds checkpoints resumes after the latest one; asking
for more epochs than before continues with the cosine recomputed for the
new total.

Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the process group is
initialised (gloo on CPU, nccl with CUDA, each rank on ``cuda:LOCAL_RANK``),
the supernet is wrapped in ``DistributedDataParallel``, each rank trains on
its shard with ``batch_size`` images per step, and only rank 0 writes
checkpoints (``out_dir`` must be shared by all ranks)::

    torchrun --standalone --nproc_per_node 2 -m tvm_mcuformer.search.train_supernet \\
        --dataset mnist5k --epochs 30 --out runs/supernet
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from tvm_mcuformer.data import dataset_info, load_split
from tvm_mcuformer.fileio import atomic_write
from tvm_mcuformer.search.space import SPACES, SearchSpace, SubnetConfig
from tvm_mcuformer.search.supernet import Supernet
from tvm_mcuformer.training import (
    BATCH_SIZE,
    LR,
    WEIGHT_DECAY,
    ArrayLike,
    CheckpointError,
    _random_shift,
    _tensors,
    _torch_threads,
    evaluate_top1,
    load_checkpoint,
    warmup_cosine,
)


def _save_checkpoint(obj: dict, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


CHECKPOINT_RE = re.compile(r"supernet_epoch(\d+)\.pt")


def checkpoint_path(out_dir: str | Path, epoch: int) -> Path:
    """``out_dir/supernet_epoch{epoch}.pt``."""
    return Path(out_dir) / f"supernet_epoch{epoch}.pt"


def checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every checkpoint in ``out_dir``, latest first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in out_dir.iterdir()
        if (m := CHECKPOINT_RE.fullmatch(p.name)) and p.is_file()
    ]
    return sorted(found, reverse=True)


def latest_checkpoint(out_dir: str | Path) -> tuple[int, Path] | None:
    """``(epoch, path)`` of the highest-epoch checkpoint in ``out_dir``, or None if it has none."""
    return next(iter(checkpoints(out_dir)), None)


def _resume_point(out_dir: Path, device: torch.device) -> tuple[int, Path, dict] | None:
    """The latest checkpoint that loads, as ``(epoch, path, contents)``, or None.

    A corrupt checkpoint (a kill mid-copy, a full disk, a bad sector) is skipped with a
    warning naming it, and training resumes from the epoch before; it is overwritten when
    that epoch is trained again.
    """
    for epoch, path in checkpoints(out_dir):
        try:
            ckpt = load_checkpoint(path, map_location=device)
            if ckpt.get("epoch") != epoch or not {"model", "optimizer", "settings"} <= set(ckpt):
                raise CheckpointError(f"checkpoint {path} lacks the training state")
        except CheckpointError as err:
            _log(f"warning: {err}; resuming from the epoch before")
            continue
        return epoch, path, ckpt
    return None


def load_supernet(path: str | Path) -> Supernet:
    """Rebuild the :class:`Supernet` saved in checkpoint ``path`` (eval mode, CPU)."""
    ckpt = load_checkpoint(path)
    supernet = Supernet(SearchSpace(**ckpt["space"]), svd_init=False)
    supernet.load_state_dict(ckpt["model"])
    return supernet.eval()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _step_configs(space: SearchSpace, seed: int, step: int, sandwich: bool) -> list[SubnetConfig]:
    sampled = space.sample(np.random.default_rng([seed, step]))
    return [space.largest(), space.smallest(), sampled] if sandwich else [sampled]


def _init_distributed() -> bool:
    """Initialise the default process group from torchrun's env; True if this call created it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def train_supernet(
    supernet: Supernet,
    space: SearchSpace,
    x: ArrayLike,
    y: ArrayLike,
    epochs: int,
    out_dir: str | Path,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    weight_decay: float = WEIGHT_DECAY,
    max_shift: int = 0,
    seed: int = 0,
    sandwich: bool = True,
    progress: bool = True,
    num_threads: int | None = 1,
) -> Path:
    """Train ``supernet`` in place on ``x`` (N, C, H, W), ``y``; return the last checkpoint.

    Subnets are drawn from ``space``, which must be a subspace of
    ``supernet.space`` (the supernet's own space in the common case).
    ``max_shift > 0`` adds random translations of up to that many pixels.
    With ``progress`` one line per epoch goes to stderr (epoch, mean loss
    per subnet and image, learning rate, seconds), plus a line saying where a
    resumed run starts. Resuming with settings other than ``epochs`` that
    differ from the checkpoint's raises ``ValueError`` (use a new
    ``out_dir``). ``num_threads`` torch threads are used (``None``: leave
    torch's setting). The supernet ends in eval mode holding the weights of
    the returned checkpoint.
    """
    xt, yt = _tensors(x, y)
    if not isinstance(supernet, Supernet):
        raise TypeError(f"train_supernet needs a Supernet, not {type(supernet).__name__}")
    if not isinstance(space, SearchSpace) or not space.is_subspace_of(supernet.space):
        raise ValueError(
            "train_supernet: space must be a SearchSpace whose subnets the supernet holds "
            "(same space-level factors and geometry, subsets of its choices)"
        )
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"train_supernet: epochs={epochs}, batch_size={batch_size} and lr={lr} "
            "must all be positive"
        )
    if not 0 <= max_shift < min(xt.shape[2:]):
        raise ValueError(f"train_supernet: max_shift={max_shift} must be in [0, image side)")
    owns_group = _init_distributed()
    try:
        with _torch_threads(num_threads):
            return _train(
                supernet,
                space,
                xt,
                yt,
                epochs,
                Path(out_dir),
                {
                    "batch_size": batch_size,
                    "lr": lr,
                    "weight_decay": weight_decay,
                    "max_shift": max_shift,
                    "seed": seed,
                    "sandwich": sandwich,
                    "sample_space": asdict(space),
                    "world_size": dist.get_world_size() if dist.is_initialized() else 1,
                },
                progress,
            )
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train(
    supernet: Supernet,
    space: SearchSpace,
    xt: torch.Tensor,
    yt: torch.Tensor,
    epochs: int,
    out_dir: Path,
    settings: dict,
    progress: bool,
) -> Path:
    distributed = dist.is_initialized()
    world, rank = settings["world_size"], dist.get_rank() if distributed else 0
    if distributed and torch.cuda.is_available():
        supernet.to(torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))))
    device = next(supernet.parameters()).device
    progress = progress and rank == 0
    seed, batch_size, max_shift = settings["seed"], settings["batch_size"], settings["max_shift"]
    sandwich = settings["sandwich"]
    sampler = DistributedSampler(range(len(xt)), num_replicas=world, rank=rank, seed=seed)
    steps_per_epoch = math.ceil(len(sampler) / batch_size)
    schedule = warmup_cosine(steps_per_epoch, epochs)

    opt = torch.optim.AdamW(
        supernet.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    done = 0
    found = _resume_point(Path(out_dir), device)
    if found is not None:
        done, path, ckpt = found
        stale = sorted(k for k, v in settings.items() if ckpt["settings"].get(k) != v)
        if ckpt["space"] != asdict(supernet.space) or stale:
            raise ValueError(
                f"train_supernet: {path} was trained with other settings "
                f"({', '.join(stale) or 'supernet space'}); resume with the same ones or "
                "use a new out_dir"
            )
        supernet.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):
            group["lr"] = base * schedule(sched.last_epoch)
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if done >= epochs:
            if progress:
                _log(f"{out_dir}: {path.name} already holds {done} epochs (asked {epochs})")
            supernet.eval()
            return path
        if progress:
            _log(f"resuming {out_dir} at epoch {done + 1}/{epochs} (from {path.name})")
    model: nn.Module = supernet
    if distributed:
        # Blocks past a subnet's depth get no gradient, so DDP must look for unused
        # parameters (it warns once per rank when a step, e.g. the largest subnet, has none).
        model = DistributedDataParallel(supernet, find_unused_parameters=len(space.depths) > 1)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    supernet.train()
    for epoch in range(done + 1, epochs + 1):
        start = time.perf_counter()
        sampler.set_epoch(epoch)
        shift_gen = torch.Generator().manual_seed(
            int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
        )
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        for i, idx in enumerate(torch.tensor(list(sampler)).split(batch_size)):
            xb, yb = xt[idx], yt[idx]
            if max_shift:
                xb = _random_shift(xb, max_shift, shift_gen)
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            step = (epoch - 1) * steps_per_epoch + i
            for cfg in _step_configs(space, seed, step, sandwich):
                loss = loss_fn(model(xb, cfg), yb)
                (loss / len(idx)).backward()
                loss_sum += torch.stack([loss.detach(), loss.new_tensor(len(idx))]).double()
            opt.step()
            sched.step()
        if distributed:
            dist.all_reduce(loss_sum)
        path = checkpoint_path(out_dir, epoch)
        if rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            _save_checkpoint(
                {
                    "epoch": epoch,
                    "epochs": epochs,
                    "space": asdict(supernet.space),
                    "settings": settings,
                    "model": supernet.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": {"torch": torch.get_rng_state()},
                },
                path,
            )
        if distributed:
            dist.barrier()
        if progress:
            _log(
                f"epoch {epoch}/{epochs}  loss {float(loss_sum[0] / loss_sum[1]):.4f}  "
                f"lr {opt.param_groups[0]['lr']:.2e}  {time.perf_counter() - start:.1f} s"
            )
    supernet.eval()
    return path


class _SubnetView(nn.Module):
    """One subnet of a supernet as a plain ``x -> logits`` module (logits on the CPU)."""

    def __init__(self, supernet: Supernet, cfg: SubnetConfig) -> None:
        super().__init__()
        supernet.space.check(cfg)
        self.supernet, self.cfg = supernet, cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.supernet.parameters()).device
        return self.supernet(x.to(device), self.cfg).cpu()


def evaluate_subnet(
    supernet: Supernet,
    cfg: SubnetConfig,
    x: ArrayLike,
    y: ArrayLike,
    batch_size: int = 256,
    num_threads: int | None = 1,
) -> float:
    """Top-1 accuracy of subnet ``cfg`` run through ``supernet`` (switched to eval mode)."""
    view = _SubnetView(supernet, cfg)
    return evaluate_top1(view, x, y, batch_size=batch_size, num_threads=num_threads)


def main(argv: list[str] | None = None) -> None:
    """CLI: train the default-choice supernet on a dataset (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mcuformer.search.train_supernet",
        description="Train a weight-entangled ViT supernet (resumes from --out; torchrun-ready).",
    )
    parser.add_argument("--dataset", required=True, help="digits, mnist5k or imagefolder:PATH")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument(
        "--space", default="default", choices=list(SPACES), help="space preset (default, paper)"
    )
    parser.add_argument("--rank-ratio", type=float, default=0.5, help="low-rank ratio rho")
    parser.add_argument("--patch-size", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="per process")
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    parser.add_argument("--max-shift", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sandwich", action="store_true", help="one random subnet per step")
    args = parser.parse_args(argv)
    try:
        info = dataset_info(args.dataset)
        if info.image_size[0] != info.image_size[1]:
            raise ValueError(f"dataset {args.dataset!r} has non-square images {info.image_size}")
        space = SPACES[args.space](
            args.rank_ratio, args.patch_size, info.image_size[0], info.channels, info.num_classes
        )
        x, y = load_split(args.dataset, "train")
    except (ValueError, FileNotFoundError, ImportError) as e:
        parser.error(str(e))
    torch.manual_seed(args.seed)
    supernet = Supernet(space)
    path = train_supernet(
        supernet,
        space,
        x,
        y,
        args.epochs,
        args.out,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        max_shift=args.max_shift,
        seed=args.seed,
        sandwich=not args.no_sandwich,
    )
    if int(os.environ.get("RANK", 0)) == 0:
        xt, yt = load_split(args.dataset, "test")
        for name, cfg in (("largest", space.largest()), ("smallest", space.smallest())):
            print(f"{name} subnet test top-1: {evaluate_subnet(supernet, cfg, xt, yt):.4f}")
        print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
