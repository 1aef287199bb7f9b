"""Make fully-int8 ``.tflite`` ViTs with a standard converter, and TFLite Micro's outputs on them.

Runs in the side environment (``bench/side_env.sh``: litert-torch, ai-edge-quantizer,
tflite-micro), never in the core install. A trained :class:`TinyViT` is converted
by ``litert_torch`` to a float ``.tflite`` and quantized by ``ai-edge-quantizer``
(recipe ``static_wi8_ai8``: int8 weights per channel, int8 activations per tensor,
calibrated on training images); TFLite Micro (the x86 interpreter of the
``tflite-micro`` package) then runs it. Regenerate the test fixtures with::

    /work/side/tflite-env/bin/python bench/make_tflite.py --fixtures

which writes ``tests/data/digits_vit_int8.tflite``, ``digits_vit_float.tflite`` and
``digits_vit_tflm.npz`` (inputs, labels, PyTorch's logits, TFLM's int8 outputs on a
fixed slice of the digits test split, and TFLM's non-persistent arena).
``bench/tflite_vs_tflm.py`` calls its ``convert`` and ``tflm`` subcommands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tvm_mcuformer.data import load_split  # noqa: E402
from tvm_mcuformer.models import ViTConfig, build_vit  # noqa: E402
from tvm_mcuformer.training import train  # noqa: E402

FIXTURE_VIT = ViTConfig(
    img_size=8,
    patch_size=4,
    in_chans=1,
    num_classes=10,
    embed_dim=32,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    gelu="quick",
)
"""The tests' model: the digits ViT (4 tokens, 2 heads) with QuickGELU, which TFLM runs."""
FIXTURE_SLICE = 64


def convert(model: torch.nn.Module, calib: np.ndarray, out_float: Path, out_int8: Path) -> None:
    """``model`` → float ``.tflite`` (litert-torch) → fully-int8 ``.tflite`` (ai-edge-quantizer)."""
    import litert_torch
    from ai_edge_quantizer import quantizer, recipe

    model = model.eval()
    litert_torch.convert(model, (torch.from_numpy(calib[:1]),)).export(str(out_float))
    q = quantizer.Quantizer(str(out_float))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    (name,) = _input_names(out_float)
    data = {"serving_default": [{name: x[None]} for x in calib]}
    result = q.quantize(q.calibrate(data, num_threads=1))
    out_int8.write_bytes(result.quantized_model)


def _input_names(path: Path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(str(path)).get_signature_runner("serving_default")
    return list(runner.get_input_details())


def input_quant(path: Path) -> tuple[float, int]:
    """The scale and zero point of the int8 model's input."""
    import tflite

    sub = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    q = sub.Tensors(int(sub.InputsAsNumpy()[0])).Quantization()
    return float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])


def tflm_run(path: Path, images: np.ndarray, arena: int = 256 * 1024) -> np.ndarray:
    """TFLite Micro's int8 outputs on float ``images`` (quantized with the file's input scale)."""
    from tflite_micro.python.tflite_micro import runtime

    scale, zp = input_quant(path)
    interp = runtime.Interpreter.from_file(str(path), arena_size=arena)
    outs = []
    for x in images:
        q = np.clip(np.round(x.astype(np.float64) / scale) + zp, -128, 127).astype(np.int8)
        interp.set_input(q[None], 0)
        interp.invoke()
        outs.append(interp.get_output(0).reshape(-1).copy())
    return np.stack(outs)


def _arena_ok(path: Path, arena: int, probe: np.ndarray) -> bool:
    try:
        tflm_run(path, probe, arena)
        return True
    except RuntimeError:
        return False


def tflm_arenas(path: Path, probe: np.ndarray) -> dict:
    """TFLM's smallest working arena (bisection) and the non-persistent part it records.

    ``print_allocations`` writes TFLM's recording allocator report to the C stderr;
    its "non-persistent" line is the activation (head) arena, comparable with ours.
    """
    from tflite_micro.python.tflite_micro import runtime

    lo, hi = 1024, 1024 * 1024
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _arena_ok(path, mid, probe) else (mid, hi)
    interp = runtime.Interpreter.from_file(str(path), arena_size=hi)
    report = _capture_stderr(interp.print_allocations)
    return {"min_total_arena_bytes": hi, "allocations_report": report}


def _capture_stderr(fn) -> str:
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def make_fixtures(out_dir: Path) -> None:
    torch.set_num_threads(1)
    x, y = load_split("digits", "train")
    xt, yt = load_split("digits", "test")
    torch.manual_seed(0)
    model = train(build_vit(FIXTURE_VIT), x, y, epochs=30, seed=0, progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    f32, i8 = out_dir / "digits_vit_float.tflite", out_dir / "digits_vit_int8.tflite"
    convert(model, x[:128], f32, i8)
    inputs = xt[:FIXTURE_SLICE]
    outputs = tflm_run(i8, inputs)
    arenas = parse_allocations(tflm_arenas(i8, inputs[:1])["allocations_report"])
    with torch.no_grad():
        torch_logits = model.eval()(torch.from_numpy(inputs)).numpy()
    np.savez(
        out_dir / "digits_vit_tflm.npz",
        inputs=inputs,
        labels=yt[:FIXTURE_SLICE],
        tflm_int8=outputs,
        torch_logits=torch_logits,
        tflm_head_bytes=arenas["head_bytes"],
    )
    print(f"wrote {i8} ({i8.stat().st_size} B), {f32}, TFLM outputs on {len(inputs)} images")


def parse_allocations(report: str) -> dict:
    """Head (non-persistent: activations + scratch), tail and total of TFLM's recorded arena."""
    found = dict(re.findall(r"Arena allocation (\w+) (\d+) bytes", report))
    return {f"{k}_bytes": int(v) for k, v in found.items()}


def cmd_convert(args) -> None:
    cfg = ViTConfig(**json.loads(args.config.read_text()))
    model = build_vit(cfg)
    model.load_state_dict(torch.load(args.state, weights_only=True))
    convert(model, np.load(args.calib), args.out_float, args.out_int8)


def cmd_tflm(args) -> None:
    images = np.load(args.inputs)
    arenas = tflm_arenas(args.tflite, images[:1])
    recorded = parse_allocations(arenas["allocations_report"])
    outputs = tflm_run(args.tflite, images)
    np.savez(args.out, tflm_int8=outputs)
    summary = {"min_total_arena_bytes": arenas["min_total_arena_bytes"], **recorded}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fixtures", action="store_true", help="write the tests' fixtures")
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("convert", help="state dict + config → float and int8 .tflite")
    c.add_argument("--state", type=Path, required=True)
    c.add_argument("--config", type=Path, required=True)
    c.add_argument("--calib", type=Path, required=True, help=".npy of calibration images")
    c.add_argument("--out-float", type=Path, required=True)
    c.add_argument("--out-int8", type=Path, required=True)
    t = sub.add_parser("tflm", help="TFLM outputs (.npz) and arena sizes (.json beside it)")
    t.add_argument("--tflite", type=Path, required=True)
    t.add_argument("--inputs", type=Path, required=True, help=".npy of float images")
    t.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if args.command == "convert":
        cmd_convert(args)
    elif args.command == "tflm":
        cmd_tflm(args)
    elif args.fixtures:
        make_fixtures(args.out)
    else:
        p.error("give --fixtures or a subcommand")


if __name__ == "__main__":
    main()
