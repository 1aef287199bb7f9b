"""Multiply-accumulate count of a Relax graph (matmul and conv2d), for latency reports."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax


def _shape(expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def count_macs(mod: tvm.IRModule) -> int:
    """MACs of one run of ``main``: Σ output elements × reduction length."""
    total = 0
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            call = binding.value
            if not isinstance(call, relax.Call) or not hasattr(call.op, "name"):
                continue
            out = int(np.prod(_shape(binding.var)))
            if call.op.name == "relax.matmul":
                total += out * _shape(call.args[0])[-1]
            elif call.op.name == "relax.nn.conv2d":
                weight = _shape(call.args[1])  # OIHW
                total += out * weight[1] * weight[2] * weight[3]
    return total
