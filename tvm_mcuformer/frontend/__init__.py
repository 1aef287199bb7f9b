"""Import a trained model file into a Relax IRModule.

The frontend dispatches on the file type so that more formats can join:
``.pt2`` (``torch.export``), ``.onnx`` and ``.tflite`` (float or fully-int8, with the
file's own quantization ranges) today.
"""

from __future__ import annotations

from pathlib import Path

from .model import ImportedModel, TensorSpec

__all__ = ["ImportedModel", "TensorSpec", "import_model"]


def import_model(path: str | Path) -> ImportedModel:
    """Read ``path`` and return its Relax module with input/output specs.

    Raises ``ValueError`` for an unknown file type or a file that is not a model.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        from .torch_export import import_pt2

        mod = import_pt2(path)
    elif suffix == ".onnx":
        from .onnx import import_onnx

        mod = import_onnx(path)
    elif suffix == ".tflite":
        from .tflite import import_tflite

        mod = import_tflite(path)
    else:
        raise ValueError(
            f"cannot import {str(path)!r}: unknown model type {suffix!r}; "
            "give a torch.export program (.pt2), an ONNX model (.onnx) or a TFLite model (.tflite)"
        )
    return ImportedModel.from_module(mod, source=str(path))
