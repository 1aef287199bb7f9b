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

    Raises ``ValueError`` (one line: the file and what to do) for a missing, empty or
    unreadable file, an unknown file type, a file that is not a model, or a model whose
    input shapes are not static.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"model path {str(path)!r} is a directory: give the model file")
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"cannot read model file {str(path)!r}: {err.strerror}") from None
    if size == 0:
        raise ValueError(f"model file {str(path)!r} is empty: export the model again")
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
    return ImportedModel.from_module(mod, source=repr(str(path)))
