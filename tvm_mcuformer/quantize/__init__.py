"""Post-training quantization to an integer-only int8 Relax module.

``ImportedModel`` (float) ─recognize─▶ composites ─calibrate─▶ ranges
─integerize─▶ ``ImportedModel`` (int8 in, int8 out, integer kernels only).
"""

from __future__ import annotations

import numpy as np

from ..frontend.model import ImportedModel
from ..tensor_spec import TensorSpec
from .config import QuantConfig
from .passes import QuantizeInt8, io_scales

__all__ = ["QuantConfig", "QuantizeInt8", "int8_specs", "quantize_model"]


def int8_specs(model: ImportedModel, mod) -> ImportedModel:
    """``model`` with ``mod`` (quantized by :func:`QuantizeInt8`) and int8 I/O specs with scales."""
    in_scales, out_scales = io_scales(mod)

    def specs(tensors, scales):
        return [
            TensorSpec(t.name, t.shape, "int8", s, 0) for t, s in zip(tensors, scales, strict=True)
        ]

    return ImportedModel(
        mod, specs(model.inputs, in_scales), specs(model.outputs, out_scales), model.source
    )


def check_calibration(model: ImportedModel, samples: np.ndarray) -> np.ndarray:
    """``samples`` as model inputs stacked on axis 0, or a ``ValueError`` saying what is wrong."""
    if len(model.inputs) != 1:
        raise ValueError("quantization supports models with one input")
    samples = np.asarray(samples, dtype=model.inputs[0].dtype)
    expected = model.inputs[0].shape
    if samples.shape[1:] != expected:
        samples = samples.reshape((-1, *expected)) if samples[0].size == np.prod(expected) else None
        if samples is None:
            raise ValueError(
                f"calibration samples do not match the model input {list(expected)}: "
                "use data of the same image size and channels the model was trained on"
            )
    return samples


def quantize_model(
    model: ImportedModel,
    samples: np.ndarray,
    config: QuantConfig | None = None,
    progress: bool = True,
) -> ImportedModel:
    """Calibrate ``model`` on ``samples`` (inputs stacked on axis 0) and make it int8."""
    samples = check_calibration(model, samples)
    return int8_specs(model, QuantizeInt8(samples, config, progress)(model.mod))
