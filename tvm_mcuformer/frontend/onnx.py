"""ONNX models into Relax."""

from __future__ import annotations

import contextlib
import io
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
        onnx.checker.check_model(model)
    except Exception as err:  # protobuf and the checker raise several types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot read {str(path)!r} as an ONNX model ({reason}): export it again "
            "(torch.onnx.export(..., opset_version=17))"
        ) from None
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            shown = ", ".join(
                d.dim_param or "?" if not d.HasField("dim_value") else str(d.dim_value)
                for d in dims
            )
            raise ValueError(
                f"{str(path)!r}: input {value.name!r} has dynamic shape ({shown}): export the "
                "model with a fixed input shape (no dynamic_axes)"
            )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # TVM prints the failing op's inputs
            return from_onnx(model, keep_params_in_input=False)
    except Exception as err:  # the converter raises several types on odd graphs
        reason = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(
            f"cannot import {str(path)!r} as an ONNX model ({type(err).__name__}: {reason[:200]}):"
            " export it again, or the graph uses an operator form the importer does not map"
        ) from None
