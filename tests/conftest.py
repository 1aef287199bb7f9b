"""Shared fixtures: one small ViT trained on sklearn digits (a few seconds, 1 thread)."""

from __future__ import annotations

import ctypes
import subprocess
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tvm_mcuformer.codegen
from tvm_mcuformer.data import load_split
from tvm_mcuformer.models import ViTConfig, build_vit
from tvm_mcuformer.training import evaluate_top1, export_pt2, train

# An untrained 8×8 ViT small enough to compile in a few seconds (4 tokens, dim 16).
TINY_VIT = ViTConfig(
    img_size=8,
    patch_size=4,
    in_chans=1,
    num_classes=10,
    embed_dim=16,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    gelu="gelu",
)

DIGITS_VIT = replace(TINY_VIT, embed_dim=32)
"""The trained digits model of :func:`digits_vit`: TINY_VIT at dim 32."""


@dataclass
class TrainedModel:
    model: nn.Module
    pt2: Path
    float_top1: float


@pytest.fixture(scope="session")
def digits_vit(tmp_path_factory) -> TrainedModel:
    """DIGITS_VIT trained 30 epochs on the digits train split (≈0.93 test top-1)."""
    torch.set_num_threads(1)
    x, y = load_split("digits", "train")
    xt, yt = load_split("digits", "test")
    torch.manual_seed(0)
    model = train(build_vit(DIGITS_VIT), x, y, epochs=30, seed=0, progress=False)
    path = tmp_path_factory.mktemp("digits_vit") / "vit.pt2"
    export_pt2(model, torch.from_numpy(xt[:1]), path)
    return TrainedModel(model, path, evaluate_top1(model, xt, yt))


def load_c_kernels(source: str, workdir: Path, stem: str) -> ctypes.CDLL:
    """Build generated kernel C (``emit_c``) into ``workdir/stem.so`` with the host cc and
    the engine's runtime headers; return the loaded library."""
    runtime = Path(tvm_mcuformer.codegen.__file__).parent / "runtime"
    src, so = workdir / f"{stem}.c", workdir / f"{stem}.so"
    src.write_text(source)
    subprocess.run(
        ["cc", "-O2", "-shared", "-fPIC", f"-I{runtime}", str(src), "-o", str(so)], check=True
    )
    return ctypes.CDLL(str(so))


def host_run(artifact: Path, workdir: Path, inputs: np.ndarray, out_dtype) -> np.ndarray:
    """Build an artifact's C with the host cc and a stdin/stdout harness; run ``inputs``."""
    with tarfile.open(artifact) as tar:
        tar.extractall(workdir, filter="data")
    harness = workdir / "harness.c"
    harness.write_text(
        '#include <stdio.h>\n#include "mcuformer_model.h"\n'
        "static _Alignas(16) unsigned char in[MCUFORMER_INPUT_BYTES];\n"
        "static _Alignas(16) unsigned char out[MCUFORMER_OUTPUT_BYTES];\n"
        "int main(void) { while (fread(in, 1, sizeof in, stdin) == sizeof in) {"
        " mcuformer_run(in, out); fwrite(out, 1, sizeof out, stdout); } return 0; }\n"
    )
    exe = workdir / "host"
    srcs = sorted(str(p) for p in (workdir / "codegen/host/src").glob("*.c"))
    subprocess.run(
        [
            "cc",
            "-O2",
            "-std=c11",
            "-Wall",
            "-Werror",
            "-ffp-contract=off",
            "-fno-strict-aliasing",
            f"-I{workdir}/codegen/host/include",
            *srcs,
            str(harness),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe)], input=inputs.tobytes(), capture_output=True, check=True)
    return np.frombuffer(out.stdout, dtype=out_dtype).reshape(len(inputs), -1)


BENCH = Path(__file__).resolve().parents[1] / "bench"


def import_bench(name: str):
    """Import ``bench/NAME.py`` as module ``bench_NAME`` and return it.

    Loaded from its path, never by its plain name (``tables`` is also a PyPI package); the
    bench's own sibling imports are dropped from ``sys.modules`` afterwards.
    """
    import importlib.util
    import sys

    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
        for added in set(sys.modules) - before:
            origin = getattr(sys.modules[added], "__file__", None) or ""
            if origin.startswith(str(BENCH)):
                del sys.modules[added]
    return module
