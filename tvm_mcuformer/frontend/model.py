"""The object the frontend hands on: a Relax module plus its I/O description."""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax

from ..tensor_spec import TensorSpec

TENSOR_RANGES_ATTR = "mcuformer.tensor_ranges"
"""Attribute of ``main`` set by a frontend whose file carries its own quantization (an int8
``.tflite``): ``{relax.Var: max |x|}`` for the tensors the file quantizes. Quantization uses
these ranges instead of calibration."""


def _tensor_spec(name: str, ty, where: str) -> TensorSpec:
    """The spec of a static-shape tensor; ``ValueError`` naming ``where`` otherwise."""
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise ValueError(f"{where} is {ty}; only tensors of static shape are supported")
    dims = list(ty.shape.values)
    if not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
        raise ValueError(
            f"{where} has dynamic shape ({', '.join(str(d) for d in dims)}): export the model "
            "with a fixed input shape (batch 1, no dynamic_shapes / dynamic_axes)"
        )
    return TensorSpec(name, tuple(int(d) for d in dims), str(ty.dtype))


@dataclass
class ImportedModel:
    """A Relax ``IRModule`` whose ``main`` takes and returns static-shape tensors."""

    mod: tvm.IRModule
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    source: str

    @classmethod
    def from_module(cls, mod: tvm.IRModule, source: str = "<memory>") -> ImportedModel:
        names = [gv.name_hint for gv in mod.get_global_vars()]
        if "main" not in names:
            raise ValueError(f"{source}: the Relax module has no 'main' function")
        main = mod["main"]
        inputs = [_tensor_spec(p.name, p.ty, f"{source}: input {p.name!r}") for p in main.params]
        ret = main.ret_ty
        rets = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
        outputs = [
            _tensor_spec(f"output{i}", t, f"{source}: output {i}") for i, t in enumerate(rets)
        ]
        return cls(mod, inputs, outputs, source)

    @property
    def has_file_ranges(self) -> bool:
        """Whether the model file gave the ranges of its tensors (:data:`TENSOR_RANGES_ATTR`)."""
        attrs = self.mod["main"].attrs
        return attrs is not None and TENSOR_RANGES_ATTR in attrs
