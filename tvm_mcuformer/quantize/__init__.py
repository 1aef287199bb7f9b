"""Post-training quantization to an integer-only int8 Relax module.

``ImportedModel`` (float) ─recognize─▶ composites ─calibrate─▶ ranges
─integerize─▶ ``ImportedModel`` (int8 in, int8 out, integer kernels only).
"""

from __future__ import annotations

import numpy as np

from ..frontend.model import ImportedModel
from ..relax_passes.recognize import recognize_all
from ..tensor_spec import TensorSpec
from .calibrate import calibrate
from .config import QuantConfig
from .integerize import integerize

__all__ = ["QuantConfig", "integer_layout", "quantize_model"]


def _int8_model(
    model: ImportedModel, mod, in_scales: list[float], out_scales: list[float]
) -> ImportedModel:
    """The integer module with int8 I/O specs carrying their scales."""

    def specs(tensors, scales):
        return [
            TensorSpec(t.name, t.shape, "int8", s, 0) for t, s in zip(tensors, scales, strict=True)
        ]

    return ImportedModel(
        mod, specs(model.inputs, in_scales), specs(model.outputs, out_scales), model.source
    )


def quantize_model(
    model: ImportedModel,
    samples: np.ndarray,
    config: QuantConfig | None = None,
    progress: bool = True,
) -> ImportedModel:
    """Calibrate ``model`` on ``samples`` (inputs stacked on axis 0) and make it int8."""
    config = config or QuantConfig()
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
    recognized = recognize_all(model.mod)
    ranges = calibrate(recognized, samples, config.calibration, progress=progress)
    return _int8_model(model, *integerize(recognized, ranges, config))


class _UnitRanges(dict):
    def __missing__(self, key: int) -> float:
        return 1.0


def integer_layout(model: ImportedModel, config: QuantConfig | None = None) -> ImportedModel:
    """``model``'s integer-only module with placeholder scales (every range 1.0).

    Its outputs are meaningless, but its tensors, kernels and therefore its memory
    are exactly those of the calibrated model: memory planning (the architecture
    search) uses it to skip calibration.
    """
    return _int8_model(
        model, *integerize(recognize_all(model.mod), _UnitRanges(), config or QuantConfig())
    )
