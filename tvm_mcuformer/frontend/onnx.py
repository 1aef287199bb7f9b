"""ONNX models into Relax."""

from __future__ import annotations

from pathlib import Path

import tvm


def import_onnx(path: Path) -> tvm.IRModule:
    """Load an ONNX model with static input shapes."""
    try:
        import onnx
    except ImportError as err:
        raise ValueError("importing .onnx needs the 'onnx' package: pip install onnx") from err
    from tvm.relax.frontend.onnx import from_onnx

    try:
        model = onnx.load(str(path))
    except Exception as err:
        raise ValueError(f"cannot read {str(path)!r} as an ONNX model: {err}") from err
    return from_onnx(model, keep_params_in_input=False)
