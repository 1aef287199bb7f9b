"""Calibration: the range of every tensor of a float Relax ``main`` over sample inputs.

``main`` is rebuilt to return every bound tensor, compiled for the host with
TVM's default pipeline, and run on the calibration images. The result maps each
Relax variable (by object identity) to the absolute maximum its values reach
(``method="minmax"``) or to a high percentile of ``|x|`` (``"percentile"``,
robust to rare outliers).
"""

from __future__ import annotations

import sys

import numpy as np
import tvm
from tvm import relax

METHODS = ("minmax", "percentile")
PERCENTILE = 99.99


def _key(expr) -> int:
    return expr.__chandle__()


def _tensor_vars(main: relax.Function) -> list[relax.Var]:
    out = []
    for block in main.body.blocks:
        for b in block.bindings:
            if isinstance(b.var.ty, relax.TensorType) and isinstance(b.value, relax.Call):
                out.append(b.var)
    return out


def calibrate(
    mod: tvm.IRModule,
    samples: np.ndarray,
    method: str = "minmax",
    progress: bool = True,
) -> dict[int, float]:
    """Return ``{var key: range}`` for ``main``'s params and tensor bindings.

    ``samples`` is an array of model inputs stacked on a new leading axis.
    """
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {METHODS}")
    if len(samples) == 0:
        raise ValueError("calibration needs at least one sample")
    original = mod["main"]
    keys = [_key(v) for v in (*original.params, *_tensor_vars(original))]
    # Outside dataflow blocks every bound tensor can be returned; the binding order is
    # kept, so position i here is position i of the original ``main``.
    main = relax.transform.ToNonDataflow()(mod)["main"]
    tensors = [*main.params, *_tensor_vars(main)]
    assert len(tensors) == len(keys)
    probe = relax.Function(
        main.params,
        relax.SeqExpr(main.body.blocks, relax.Tuple(tensors)),
        ret_ty=relax.TupleType([t.ty for t in tensors]),
        attrs=main.attrs,
    )
    probe_mod = tvm.IRModule({"main": probe})
    for gv, func in mod.functions.items():
        if gv.name_hint != "main":
            probe_mod[gv] = func
    exe = tvm.compile(probe_mod, tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(exe, tvm.cpu())
    values: list[list[np.ndarray]] = [[] for _ in tensors]
    for i, sample in enumerate(samples):
        outs = vm["main"](tvm.runtime.tensor(np.ascontiguousarray(sample)))
        for j in range(len(tensors)):
            values[j].append(np.abs(outs[j].numpy()).ravel())
        if progress and (i + 1) % 64 == 0:
            print(f"calibrate: {i + 1}/{len(samples)} samples", file=sys.stderr, flush=True)
    ranges = {}
    for key, vals in zip(keys, values, strict=True):
        flat = np.concatenate(vals)
        amax = float(flat.max()) if method == "minmax" else float(np.percentile(flat, PERCENTILE))
        ranges[key] = max(amax, 1e-8)
    return ranges
