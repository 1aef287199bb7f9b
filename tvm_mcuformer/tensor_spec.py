"""``TensorSpec``: one model input or output, as metadata.json describes it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DTYPE_BYTES = {"float32": 4, "int8": 1, "uint8": 1, "int16": 2, "int32": 4}


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype; ``scale``/``zero_point`` when the tensor is quantized
    (real = scale · (q − zero_point))."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]

    def to_json(self) -> dict:
        entry = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.scale is not None:
            entry["quant"] = {"scale": self.scale, "zero_point": self.zero_point or 0}
        return entry

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Real values → this tensor's integer dtype: round(x / scale) + zero point, clamped.

        Computed in float64 so that every user of the model (firmware host, tests,
        benchmarks) feeds the device exactly the same integers.
        """
        if self.scale is None:
            raise ValueError(f"tensor {self.name!r} has no quantization scale")
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(values, np.float64) / self.scale) + (self.zero_point or 0)
        return np.clip(q, info.min, info.max).astype(self.dtype)
