"""TFLite in: a fully-int8 .tflite from a standard converter, compiled with its own quantization.

The fixtures in tests/data come from ``bench/make_tflite.py --fixtures`` (the digits
ViT with QuickGELU, LiteRT + ai-edge-quantizer ``static_wi8_ai8``, and TFLite
Micro's outputs on a fixed slice of the digits test split), so these tests need
neither TensorFlow nor TFLM.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tflite
import torch
import tvm
from tvm import relax

from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.micro import build_project, create_project, evaluate
from tvm_mcuformer.micro.project import load_project

DATA = Path(__file__).parent / "data"
INT8, FLOAT = DATA / "digits_vit_int8.tflite", DATA / "digits_vit_float.tflite"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(DATA / "digits_vit_tflm.npz"))


def _tflm_output_quant(path: Path) -> tuple[float, int]:
    sub = tflite.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    q = sub.Tensors(int(sub.OutputsAsNumpy()[0])).Quantization()
    return float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])


def test_int8_tflite_runs_on_qemu_and_agrees_with_tflm(tmp_path, reference, capsys):
    torch.set_num_threads(1)
    tar = tmp_path / "m.tar"
    # No --calib: the file's own scales and zero points are the ranges.
    assert cli_main(["compile", str(INT8), "-o", str(tar), "--board", "mps2-an500"]) == 0
    assert "wrote" in capsys.readouterr().out
    project = create_project(tmp_path / "proj", tar, "baremetal", board="mps2-an500").root
    build_project(project)
    report = evaluate(project, reference["inputs"], reference["labels"], progress=False)
    acc = report["accuracy"]
    assert acc["device_equals_host"] is True
    (ours,) = report["outputs"].values()
    ours = ours.reshape(len(ours), -1).astype(np.float64)
    tflm = reference["tflm_int8"].astype(np.float64)
    agreement = float((ours.argmax(1) == tflm.argmax(1)).mean())
    # The same logits in real units: ours (symmetric) against TFLM's (asymmetric) int8.
    scale, zp = _tflm_output_quant(INT8)
    ours_real = ours * load_project(project).outputs[0].scale
    diff_lsb = np.abs(ours_real / scale - (tflm - zp)).max()
    print(f"top-1 agreement with TFLM {agreement:.3f}, max difference {diff_lsb:.1f} TFLM LSB")
    assert agreement >= 0.95
    # Both are int8 approximations of the same float model: ours is not the worse one.
    float_logits = reference["torch_logits"]
    ours_err = np.abs(ours_real - float_logits).mean()
    tflm_err = np.abs((tflm - zp) * scale - float_logits).mean()
    print(f"mean |int8 - float| logits: ours {ours_err:.3f}, TFLM {tflm_err:.3f}")
    assert ours_err <= 1.5 * tflm_err
    assert acc["device_top1"] >= float((tflm.argmax(1) == reference["labels"]).mean()) - 0.05
    # The same file's activations fit in less than TFLM's non-persistent arena.
    planned = load_project(project).metadata["memory"]["planned_arena_bytes"]
    assert planned <= int(reference["tflm_head_bytes"])


def test_float_tflite_imports_and_matches_torch(reference):
    model = import_model(FLOAT)
    assert not model.has_file_ranges and model.inputs[0].dtype == "float32"
    exe = tvm.compile(model.mod, tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(exe, tvm.cpu())
    x = reference["inputs"][:8]
    out = np.concatenate([vm["main"](tvm.runtime.tensor(s[None])).numpy() for s in x])
    np.testing.assert_allclose(out, reference["torch_logits"][:8], atol=1e-4)


def _with_opcode(src: Path, dst: Path, old: str, new: str) -> int:
    """Copy ``src`` with operator code ``old`` rewritten to ``new``; the first op using it."""
    from tflite.BuiltinOperator import BuiltinOperator

    data = bytearray(src.read_bytes())
    model = tflite.Model.GetRootAsModel(data, 0)
    old_code, new_code = getattr(BuiltinOperator, old), getattr(BuiltinOperator, new)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != old_code:
            continue
        tab = code._tab
        for field, fmt in ((4, "<b"), (10, "<i")):  # deprecated_builtin_code, builtin_code
            offset = tab.Offset(field)
            if offset:
                np_type = np.int8 if fmt == "<b" else np.int32
                data[tab.Pos + offset : tab.Pos + offset + np.dtype(np_type).itemsize] = np_type(
                    new_code
                ).tobytes()
        sub = model.Subgraphs(0)
        first = next(j for j in range(sub.OperatorsLength()) if sub.Operators(j).OpcodeIndex() == i)
        dst.write_bytes(bytes(data))
        return first
    raise AssertionError(f"{src} has no {old} operator")


def test_unsupported_op_is_one_line_naming_op_and_index(tmp_path, capsys):
    bad = tmp_path / "tanh.tflite"
    index = _with_opcode(INT8, bad, "LOGISTIC", "TANH")
    assert cli_main(["compile", str(bad), "-o", str(tmp_path / "m.tar")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"operator {index} (TANH) is not supported" in err
    assert not (tmp_path / "m.tar").exists()


def test_truncated_tflite_is_one_line(tmp_path, capsys):
    cut = tmp_path / "cut.tflite"
    shutil.copy(INT8, cut)
    cut.write_bytes(INT8.read_bytes()[: INT8.stat().st_size // 3])
    assert cli_main(["compile", str(cut), "-o", str(tmp_path / "m.tar")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TFLite" in err and "truncated" in err
    assert not (tmp_path / "m.tar").exists()
