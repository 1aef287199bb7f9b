"""int8 → int8 functions as 256-entry tables (TFLite Micro's LUT activations).

An elementwise integer function of one int8 input has only 256 possible inputs,
so its integer kernel can be evaluated once per input at build time
(:func:`int8_table`, from the function's bit-exact numpy twin) and the device
reads ``table[x + 128]``: one load per element instead of the integer formula,
for 256 bytes of flash. :func:`lookup_int8` equals the tabulated function bit for
bit by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tvm import te

INT8_VALUES = np.arange(-128, 128, dtype=np.int8)  # table index i holds f(i - 128)
INT8_TABLE_BYTES = INT8_VALUES.size  # flash of one table


def int8_table(fn_ref: Callable[..., np.ndarray], *args: object) -> np.ndarray:
    """``fn_ref(x, *args)`` for every int8 ``x``, in :data:`INT8_VALUES` order (int8 [256])."""
    table = np.asarray(fn_ref(INT8_VALUES, *args))
    if table.shape != (256,) or table.dtype != np.int8:
        raise ValueError(f"an int8 table needs 256 int8 outputs, got {table.dtype} {table.shape}")
    return table


def lookup_int8(x: te.Tensor, table: te.Tensor, name: str = "lookup_int8") -> te.Tensor:
    """``table[x + 128]`` elementwise over int8 ``x``; ``table`` int8 [256]."""
    return te.compute(x.shape, lambda *i: table[x[i].astype("int32") + 128], name=name)


def lookup_int8_ref(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Numpy twin of :func:`lookup_int8`."""
    return np.asarray(table)[np.asarray(x).astype(np.int32) + 128]
