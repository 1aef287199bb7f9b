"""Side by side with TensorFlow Lite Micro, on the very same fully-int8 ``.tflite`` files.

For the demo ViT (dim 64, depth 2, 4 heads, MLP 2, QuickGELU) at patch 7
(16 tokens) and patch 4 (49 tokens): train it on the MNIST-5k split with the demo
recipe, convert it with a standard converter (litert-torch, then
ai-edge-quantizer ``static_wi8_ai8`` calibrated on 256 training images) in the
side environment (``bench/side_env.sh``), then on each ``.tflite``:

* TFLite Micro (x86 interpreter of the ``tflite-micro`` package): outputs on the
  1,000 test images, its smallest working arena (bisection) and its recorded
  arena split into the non-persistent head (activations + scratch) and the
  persistent tail;
* this compiler, from the same file with the file's own quantization (no
  calibration): planned arena, liveness lower bound, TVM's static plan, the
  naive sum, flash, and the firmware on QEMU ``mps2-an500`` (instructions per
  inference and per MAC, device == host), top-1 and agreement with TFLM.

Writes ``bench/results/tflite_vs_tflm.json`` (with date, commit and command) and
prints the README table (``bench/tables.py`` renders it into the README). One
command; the side environment is created if missing::

    .venv/bin/python bench/tflite_vs_tflm.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from provenance import write_results
from tables import render

from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.data import load_split
from tvm_mcuformer.micro import build_project, create_project, evaluate
from tvm_mcuformer.models import DEMO_CONFIG, build_vit
from tvm_mcuformer.training import DEMO_RECIPE, evaluate_top1, train

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tflite_vs_tflm.json"
WORK = ROOT / "bench" / ".work" / "tflite_vs_tflm"
SIDE_ENV = Path(os.environ.get("TFLITE_SIDE_ENV", "/work/side/tflite-env"))
CALIBRATION = 256
BOARD = "mps2-an500"
MEMORY_KEYS = ("planned_arena_bytes", "lower_bound_bytes", "tvm_static_plan_bytes", "naive_bytes")


def _side_python() -> Path:
    python = SIDE_ENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(ROOT / "bench" / "side_env.sh"), str(SIDE_ENV)], check=True)
    return python


def _side(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [str(_side_python()), str(ROOT / "bench" / "make_tflite.py"), *args], check=True, env=env
    )


def _tflite_files(cfg, work: Path, x, y) -> tuple[Path, float]:
    """Train (or reuse) the model of ``cfg`` and convert it; the int8 file and float top-1."""
    state, int8 = work / "model.pt", work / "model_int8.tflite"
    x_test, y_test = load_split("mnist5k", "test")
    torch.manual_seed(0)
    model = build_vit(cfg)
    if state.exists():
        model.load_state_dict(torch.load(state, weights_only=True))
    else:
        model = train(model, x, y, seed=0, progress=False, **DEMO_RECIPE)
        torch.save(model.state_dict(), state)
    float_top1 = evaluate_top1(model, x_test, y_test)
    if not int8.exists():
        (work / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
        np.save(work / "calib.npy", x[:CALIBRATION])
        _side(
            "convert",
            *("--state", str(state), "--config", str(work / "config.json")),
            *("--calib", str(work / "calib.npy")),
            *("--out-float", str(work / "model_float.tflite"), "--out-int8", str(int8)),
        )
    return int8, float_top1


def _tflm(int8: Path, work: Path, x_test: np.ndarray) -> tuple[np.ndarray, dict]:
    out = work / "tflm.npz"
    if not out.exists():
        np.save(work / "test.npy", x_test)
        _side("tflm", "--tflite", str(int8), "--inputs", str(work / "test.npy"), "--out", str(out))
    return np.load(out)["tflm_int8"], json.loads(out.with_suffix(".json").read_text())


def _ours(int8: Path, work: Path, x_test, y_test) -> tuple[np.ndarray, dict, dict]:
    artifact = compile_model(int8, CompileOptions(board=BOARD))
    tar = artifact.write(work / "model.tar")
    project = create_project(work / "proj", tar, "baremetal", board=BOARD).root
    build_project(project)
    report = evaluate(project, x_test, y_test, progress=False)
    (outputs,) = report.pop("outputs").values()
    return outputs.reshape(len(outputs), -1), report, artifact.metadata


def _output_difference(int8: Path, ours: np.ndarray, our_scale: float, tflm: np.ndarray) -> dict:
    """Our int8 logits against TFLM's, in steps of the file's output scale (ours are symmetric
    with their own scale, so both are compared as the real values they stand for)."""
    import tflite

    sub = tflite.Model.GetRootAsModel(int8.read_bytes(), 0).Subgraphs(0)
    q = sub.Tensors(int(sub.OutputsAsNumpy()[0])).Quantization()
    scale, zp = float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])
    diff = np.abs(ours.astype(np.float64) * our_scale / scale - (tflm.astype(np.float64) - zp))
    return {
        "max_output_difference_steps": float(diff.max()),
        "mean_output_difference_steps": float(diff.mean()),
    }


def run_one(patch: int, x, y, x_test, y_test) -> dict:
    cfg = dataclasses.replace(DEMO_CONFIG, patch_size=patch)
    work = WORK / f"tokens{cfg.num_tokens}"
    if (work / "proj").exists():
        subprocess.run(["rm", "-rf", str(work / "proj")], check=True)
    work.mkdir(parents=True, exist_ok=True)
    int8, float_top1 = _tflite_files(cfg, work, x, y)
    tflm_out, tflm_arena = _tflm(int8, work, x_test)
    ours_out, report, metadata = _ours(int8, work, x_test, y_test)
    memory = metadata["memory"]
    lat = report["latency"]
    agree = ours_out.argmax(1) == tflm_out.argmax(1)
    return {
        "tokens": cfg.num_tokens,
        "config": dataclasses.asdict(cfg),
        "tflite_bytes": int8.stat().st_size,
        "macs": metadata["macs"],
        "float_top1": float_top1,
        "tflm": {
            "top1": float((tflm_out.argmax(1) == y_test).mean()),
            **tflm_arena,
        },
        "ours": {
            "device_top1": report["accuracy"]["device_top1"],
            "device_equals_host": report["accuracy"]["device_equals_host"],
            **{k: memory[k] for k in MEMORY_KEYS},
            "weight_bytes": memory["weight_bytes"],
            "flash_bytes": report["memory"]["flash_bytes"],
            "instructions_per_inference": lat.get("instructions_per_inference"),
            "instructions_per_mac": lat.get("instructions_per_mac"),
        },
        "top1_agreement": float(agree.mean()),
        **_output_difference(int8, ours_out, metadata["outputs"][0]["quant"]["scale"], tflm_out),
        "disagreements": int((~agree).sum()),
        "arena_ratio_ours_to_tflm_head": memory["planned_arena_bytes"] / tflm_arena["head_bytes"],
        "n_test": len(y_test),
    }


def main() -> None:
    torch.set_num_threads(1)
    x, y = load_split("mnist5k", "train")
    x_test, y_test = load_split("mnist5k", "test")
    rows = []
    for patch in (7, 4):
        rows.append(run_one(patch, x, y, x_test, y_test))
        print(json.dumps(rows[-1], indent=2), file=sys.stderr)
    write_results(RESULTS, {"board": BOARD, "rows": rows})
    print(render(RESULTS.stem))


if __name__ == "__main__":
    main()
