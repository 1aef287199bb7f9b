"""Integer-only int8 operator library for ViT inference.

Activations are symmetric per-tensor int8 (real = scale · q, zero point 0).
Every operator is a TE builder (``te.Tensor`` in, ``te.Tensor`` out, for
``relax.BlockBuilder.emit_te``) with a numpy twin ``<name>_ref`` taking the same
arguments. Integer operators use no float at run time (scales become integer
constants at build time) and their twins are bit-exact; the ``*_float`` operators
are the float references of the ablation (their twins agree within 1 unit).
Per-channel arrays are ``te.Tensor`` inputs; scalars are Python numbers.
"""

from .activation import clip_int, clip_int_ref, hardswish_int, hardswish_int_ref
from .attention import AttentionGeometry, attention_int, attention_int_ref
from .fixed_point import (
    HI_WORD_MIN_SHIFT,
    hi_word_rounding,
    quantize_multiplier,
    quantize_multipliers,
    requantize,
    requantize_expr,
    requantize_hi_word_expr,
    requantize_ref,
)
from .gelu import GELU_SIGMOID_SLOPE, gelu_float, gelu_float_ref, gelu_int, gelu_int_ref
from .int_exp import exp_int, exp_int_expr, exp_int_ref
from .layernorm import (
    layernorm_float,
    layernorm_float_ref,
    layernorm_int,
    layernorm_int_params,
    layernorm_int_ref,
)
from .linear import (
    add_int,
    add_int_ref,
    conv2d_int_ref,
    dense_int,
    dense_int_ref,
    matmul_int,
    matmul_int_ref,
    mean_int,
    mean_int_ref,
)
from .softmax import (
    SOFTMAX_OUT_SCALE,
    softmax_float,
    softmax_float_ref,
    softmax_int,
    softmax_int_ref,
)
from .table import int8_table, lookup_int8, lookup_int8_ref

__all__ = [
    "HI_WORD_MIN_SHIFT",
    "hi_word_rounding",
    "requantize_hi_word_expr",
    "GELU_SIGMOID_SLOPE",
    "int8_table",
    "lookup_int8",
    "lookup_int8_ref",
    "SOFTMAX_OUT_SCALE",
    "AttentionGeometry",
    "attention_int",
    "attention_int_ref",
    "add_int",
    "add_int_ref",
    "clip_int",
    "clip_int_ref",
    "conv2d_int_ref",
    "dense_int",
    "dense_int_ref",
    "exp_int",
    "exp_int_expr",
    "exp_int_ref",
    "gelu_float",
    "gelu_float_ref",
    "gelu_int",
    "gelu_int_ref",
    "hardswish_int",
    "hardswish_int_ref",
    "layernorm_float",
    "layernorm_float_ref",
    "layernorm_int",
    "layernorm_int_params",
    "layernorm_int_ref",
    "matmul_int",
    "matmul_int_ref",
    "mean_int",
    "mean_int_ref",
    "quantize_multiplier",
    "quantize_multipliers",
    "requantize",
    "requantize_expr",
    "requantize_ref",
    "softmax_float",
    "softmax_float_ref",
    "softmax_int",
    "softmax_int_ref",
]
