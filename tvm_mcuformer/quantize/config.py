"""Options of post-training quantization."""

from __future__ import annotations

from dataclasses import dataclass

from .calibrate import METHODS

KINDS = ("int", "float")


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize: which approximations are integer, and how ranges are calibrated.

    ``gelu``/``layernorm``/``softmax``: ``"int"`` (the integer-only kernel) or
    ``"float"`` (dequantize → float op → quantize; for the ablation only, it puts
    float back on the device). ``ln_iterations``: Newton steps of the integer
    square root (the paper's 3). ``calibration``: ``"minmax"`` (max |x| over the
    calibration set, the default) or ``"percentile"`` (99.99th percentile of |x|).
    ``fuse_attention``: attention whose q, k, v are views of one qkv output
    becomes one fused kernel (:func:`~tvm_mcuformer.ops.attention.attention_int`)
    that reads them in place: no head-split or head-merge copies.
    ``tables``: the integer GeLU and SiLU run as 256-byte tables of their integer
    formula (:mod:`~tvm_mcuformer.ops.table`, one load per element, bit-identical);
    ``False`` computes the formula per element.
    """

    gelu: str = "int"
    layernorm: str = "int"
    softmax: str = "int"
    ln_iterations: int = 3
    calibration: str = "minmax"
    fuse_attention: bool = True
    tables: bool = True

    def __post_init__(self) -> None:
        for name in ("gelu", "layernorm", "softmax"):
            if getattr(self, name) not in KINDS:
                raise ValueError(f"QuantConfig.{name} must be one of {KINDS}")
        if not 1 <= self.ln_iterations <= 10:
            raise ValueError("QuantConfig.ln_iterations must be in 1..10")
        if self.calibration not in METHODS:
            raise ValueError(f"QuantConfig.calibration must be one of {METHODS}")

    @property
    def integer_only(self) -> bool:
        return self.gelu == self.layernorm == self.softmax == "int"
