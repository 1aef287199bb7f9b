"""Recognise the float patterns of GeLU, LayerNorm and softmax as composite functions.

Each pass groups one float pattern into a Relax function tagged
``Composite = "mcuformer.<op>"`` (``FuseOpsByPattern``), so that the integer
rewrite (:mod:`tvm_mcuformer.quantize.integerize`) can replace the whole pattern
by one fused integer operator that lowers to one TIR kernel:

* GeLU: ``nn.gelu``, ``nn.gelu_tanh``; the erf form ``x·(erf(x/√2)+1)·0.5`` as
  ONNX writes it; QuickGELU ``x·sigmoid(1.702·x)`` (all onto one integer GeLU).
* SiLU: ``nn.silu``, ``x·sigmoid(x)``.
* hard-swish product: ``x·clip(x+a, lo, hi)`` (torch's Hardswish is this with
  ``a, lo, hi = 3, 0, 6``, then ``/6``, which stays outside: a free rescale).
* LayerNorm: ``nn.layer_norm``; the decomposed form
  ``(x−mean)·rsqrt(var+eps)·γ+β`` (``var`` as ``mean((x−mean)²)``).
* softmax: ``nn.softmax``.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

GELU, LAYER_NORM, SOFTMAX = "mcuformer.gelu", "mcuformer.layer_norm", "mcuformer.softmax"
SILU, HARDSWISH = "mcuformer.silu", "mcuformer.hardswish"


def _either(op: str, a, b):
    return is_op(op)(a, b) | is_op(op)(b, a)


def gelu_patterns() -> list:
    x = wildcard()
    quick = _either(
        "relax.multiply", x, is_op("relax.sigmoid")(_either("relax.multiply", x, is_const()))
    )
    scaled = is_op("relax.divide")(x, is_const()) | _either("relax.multiply", x, is_const())
    erf_plus_one = _either("relax.add", is_op("relax.erf")(scaled), is_const())
    erf_form = _either("relax.multiply", _either("relax.multiply", x, erf_plus_one), is_const())
    tanh = is_op("relax.nn.gelu_tanh")(wildcard())
    return [is_op("relax.nn.gelu")(wildcard()), tanh, quick, erf_form]


def silu_patterns() -> list:
    x = wildcard()
    return [
        is_op("relax.nn.silu")(wildcard()),
        _either("relax.multiply", x, is_op("relax.sigmoid")(x)),
    ]


def hardswish_patterns() -> list:
    x = wildcard()
    shifted = _either("relax.add", x, is_const())
    clip = is_op("relax.clip")(shifted, wildcard(), wildcard())
    clip = clip | is_op("relax.clip")(clip, wildcard(), wildcard())
    return [_either("relax.multiply", x, clip)]


def layer_norm_patterns() -> list:
    x = wildcard()
    mean = is_op("relax.mean")(x)
    centred = is_op("relax.subtract")(x, mean)
    square = is_op("relax.power")(centred, is_const()) | is_op("relax.multiply")(centred, centred)
    var_eps = _either("relax.add", is_op("relax.mean")(square), is_const())
    normed = _either("relax.multiply", centred, is_op("relax.rsqrt")(var_eps)) | is_op(
        "relax.divide"
    )(centred, is_op("relax.sqrt")(var_eps))
    affine = _either("relax.add", _either("relax.multiply", normed, is_const()), is_const())
    fused = is_op("relax.nn.layer_norm")(wildcard(), is_const(), is_const())
    return [fused, affine]


def softmax_patterns() -> list:
    return [is_op("relax.nn.softmax")(wildcard())]


def _recognize(name: str, patterns: list) -> tvm.transform.Pass:
    return relax.transform.FuseOpsByPattern(
        [(name, p) for p in patterns], bind_constants=False, annotate_codegen=False
    )


def RecognizeGelu() -> tvm.transform.Pass:  # noqa: N802 - TVM pass naming
    return _recognize(GELU, gelu_patterns())


def RecognizeLayerNorm() -> tvm.transform.Pass:  # noqa: N802
    return _recognize(LAYER_NORM, layer_norm_patterns())


def RecognizeSoftmax() -> tvm.transform.Pass:  # noqa: N802
    return _recognize(SOFTMAX, softmax_patterns())


def RecognizeSilu() -> tvm.transform.Pass:  # noqa: N802
    return _recognize(SILU, silu_patterns())


def RecognizeHardswish() -> tvm.transform.Pass:  # noqa: N802
    return _recognize(HARDSWISH, hardswish_patterns())


def recognize_all(mod: tvm.IRModule) -> tvm.IRModule:
    """Run the recognisers (LayerNorm first: its pattern is the largest; GeLU before SiLU)."""
    seq = [
        RecognizeLayerNorm(),
        RecognizeGelu(),
        RecognizeSilu(),
        RecognizeHardswish(),
        RecognizeSoftmax(),
    ]
    return tvm.transform.Sequential(seq)(mod)
