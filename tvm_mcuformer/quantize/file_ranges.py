"""Ranges a model file gives (an int8 ``.tflite``), carried onto the recognised module.

The frontend stores ``{var: max |x|}`` on ``main`` (``TENSOR_RANGES_ATTR``).
Recognition (:func:`tvm_mcuformer.relax_passes.recognize.recognize_all`) keeps
every binding it does not group, but the output of a grouped pattern (a
LayerNorm, a GeLU, a softmax) becomes a new variable: it takes the range of the
variable it replaces, found where a kept binding used the old one; an alias
(``gv = lv``) takes the range of what it names.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..frontend.model import TENSOR_RANGES_ATTR


def _key(expr) -> int:
    return expr.__chandle__()


def _bindings(func: relax.Function) -> list:
    return [b for block in func.body.blocks for b in block.bindings]


def _operands(value) -> list:
    if isinstance(value, relax.Call):
        return list(value.args)
    if isinstance(value, relax.Tuple):
        return list(value.fields)
    return [value]


class FileRanges(dict):
    """``{var key: range}``; a tensor the file gives no range for is a one-line error."""

    def __missing__(self, key: int) -> float:
        raise ValueError(
            "the model file gives no quantization range for a tensor the integer rewrite "
            "needs; quantize the model fully to int8 (every activation with a scale)"
        )


def file_ranges(original: tvm.IRModule, recognized: tvm.IRModule) -> FileRanges | None:
    """The file's ranges keyed by ``recognized``'s variables, or ``None`` (no ranges given)."""
    attrs = original["main"].attrs
    if attrs is None or TENSOR_RANGES_ATTR not in attrs:
        return None
    given = {_key(v): float(r) for v, r in attrs[TENSOR_RANGES_ATTR].items()}
    ranges = FileRanges(given)
    old = {_key(b.var): b.value for b in _bindings(original["main"])}
    for b in _bindings(recognized["main"]):
        if isinstance(b.value, relax.Var) and _key(b.value) in ranges:  # an alias: gv = lv
            ranges[_key(b.var)] = ranges[_key(b.value)]
        before = old.get(_key(b.var))
        if before is None:
            continue
        for new, was in zip(_operands(b.value), _operands(before), strict=False):
            if isinstance(new, relax.Var) and _key(new) != _key(was) and _key(was) in given:
                ranges[_key(new)] = given[_key(was)]
    return ranges
