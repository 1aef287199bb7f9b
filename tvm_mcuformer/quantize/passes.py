"""Integer-only int8 quantization as one Relax module pass.

:func:`QuantizeInt8` runs fold → recognize → calibrate → integerize on ``main``:
what does not depend on the input (class tokens, position embeddings, masks)
becomes constants (:mod:`tvm_mcuformer.relax_passes.fold`), SDPA's masked-row
guard goes (:mod:`tvm_mcuformer.relax_passes.softmax_guard`), the float
patterns of GeLU/SiLU/hard-swish/LayerNorm/softmax become composites
(:mod:`tvm_mcuformer.relax_passes.recognize`), their tensors' ranges are
measured on calibration samples (or set to 1.0 without samples: the integer
*layout*, whose kernels and memory are those of the calibrated model), and the
graph is rewritten into int8 kernels. The pass records the real-value scales of
``main``'s int8 inputs and outputs as function attributes (:func:`io_scales`
reads them back), so later passes and the compiler need no side channel.
"""

from __future__ import annotations

import numpy as np
import tvm

from ..relax_passes.fold import FoldInputIndependent
from ..relax_passes.recognize import recognize_all
from ..relax_passes.softmax_guard import RemoveSoftmaxGuard
from .calibrate import calibrate
from .config import QuantConfig
from .integerize import integerize

INPUT_SCALES_ATTR = "mcuformer.input_scales"
OUTPUT_SCALES_ATTR = "mcuformer.output_scales"


class _UnitRanges(dict):
    def __missing__(self, key: int) -> float:
        return 1.0


def QuantizeInt8(  # noqa: N802 - named like TVM's pass constructors
    calibration: np.ndarray | None,
    config: QuantConfig | None = None,
    progress: bool = False,
) -> tvm.transform.Pass:
    """The quantization pass: float ``main`` → integer-only int8 ``main``.

    ``calibration``: model inputs stacked on axis 0, or ``None`` for the integer
    layout (every range 1.0; outputs meaningless, memory exact).
    """
    config = config or QuantConfig()

    @tvm.transform.module_pass(opt_level=0, name="mcuformer.QuantizeInt8")
    def quantize(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        recognized = recognize_all(RemoveSoftmaxGuard()(FoldInputIndependent()(mod)))
        if calibration is None:
            ranges = _UnitRanges()
        else:
            ranges = calibrate(recognized, calibration, config.calibration, progress=progress)
        out, in_scales, out_scales = integerize(recognized, ranges, config)
        main = out["main"].with_attr(INPUT_SCALES_ATTR, [float(s) for s in in_scales])
        out["main"] = main.with_attr(OUTPUT_SCALES_ATTR, [float(s) for s in out_scales])
        return out

    return quantize


def io_scales(mod: tvm.IRModule) -> tuple[list[float], list[float]] | None:
    """Scales :func:`QuantizeInt8` recorded on ``main`` (inputs, outputs), or ``None`` (float)."""
    attrs = mod["main"].attrs
    if attrs is None or INPUT_SCALES_ATTR not in attrs:
        return None
    return (
        [float(s) for s in attrs[INPUT_SCALES_ATTR]],
        [float(s) for s in attrs[OUTPUT_SCALES_ATTR]],
    )
