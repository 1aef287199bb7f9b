"""Multiply-accumulate count of a Relax graph (matmul and conv2d), for latency reports."""

from __future__ import annotations

import numpy as np
import tvm


def _shape(expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def count_macs(mod: tvm.IRModule) -> int:
    """MACs of one run of ``main``: Σ output elements × reduction length."""
    total = 0
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            call = binding.value
            name = getattr(getattr(call, "op", None), "name", None)
            if name not in ("relax.matmul", "relax.nn.conv2d"):
                continue
            out = int(np.prod(_shape(binding.var)))
            if name == "relax.matmul":
                total += out * _shape(call.args[0])[-1]
            else:
                weight = _shape(call.args[1])  # OIHW
                total += out * weight[1] * weight[2] * weight[3]
    return total
