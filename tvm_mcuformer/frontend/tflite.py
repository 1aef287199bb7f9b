"""TFLite flatbuffers (``.tflite``, float or fully-int8) into Relax.

TVM's Relax TFLite frontend is extended through its converter hook
(``from_tflite(..., op_converter=...)``), not forked: :class:`_FileQuantConverter`
reads every int8 tensor *as the float it stands for* (weights and biases
dequantized with the file's per-channel or per-tensor scales, QUANTIZE and
DEQUANTIZE as identities), so the stock float converters build the graph, and
records the range each quantized activation covers in the file (its scale and
zero point, asymmetric included: the real interval ``scale·(−128−zp) ..
scale·(127−zp)``). Those ranges go on ``main`` as :data:`TENSOR_RANGES_ATTR` (variable
→ ``max |x|``), which :func:`tvm_mcuformer.quantize.QuantizeInt8` takes instead
of calibration, so an int8 file compiles with its own quantization and no data.

The converter also maps the file's layouts onto the integer path: convolutions
become NCHW (the patch embedding), and the decomposed LayerNorm that LiteRT
writes (MEAN, SQUARED_DIFFERENCE, MEAN, ADD ε, RSQRT, … , MUL γ, ADD β) becomes
one ``nn.layer_norm``. Only the operators a ViT needs are accepted; any other
is refused with its name and its index in the subgraph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.tflite import tflite_frontend as _tfl

from .model import TENSOR_RANGES_ATTR

SUPPORTED_OPS = frozenset(
    {
        "ADD",
        "BATCH_MATMUL",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEQUANTIZE",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "LOGISTIC",
        "MEAN",
        "MUL",
        "QUANTIZE",
        "RESHAPE",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SQRT",
        "SQUARED_DIFFERENCE",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "TRANSPOSE",
    }
)

# LiteRT's LayerNorm: y = x·r + (0 − mean·r), r = rsqrt(mean((x − mean)²) + ε), then ·γ + β.
_LN_OPS = ("MEAN", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT")
_LN_TAIL = ("MUL", "SUB", "MUL", "ADD")
_LN_SKIP = ("RESHAPE",)


def _int8_range(scale: float, zero_point: int) -> float:
    """``max |x|`` over the real values an int8 tensor with this scale and zero point holds."""
    return float(scale) * max(abs(-128 - zero_point), abs(127 - zero_point))


class _FileQuantConverter(_tfl.OperatorConverter):
    """The stock converter on the dequantized view of a (possibly int8) TFLite subgraph."""

    def __init__(self, model, subgraph, exp_tab, ctx, conversion_state=None):
        super().__init__(model, subgraph, exp_tab, ctx, conversion_state)
        self.file_quant: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self.ranges: dict[relax.Var, float] = {}
        # Stock converters type a constant by the file's tensor type (int32 for a bias);
        # in the dequantized view a float value is a float32 constant.
        new_const = exp_tab.new_const

        def float_aware_const(value, dtype=None, source_name=None):
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                dtype = "float32"
            return new_const(value, dtype=dtype, source_name=source_name)

        exp_tab.new_const = float_aware_const
        self.convert_map["QUANTIZE"] = self._identity
        self.convert_map["DEQUANTIZE"] = self._identity
        self.convert_map["CONV_2D"] = self._convert_conv_nchw
        self.convert_map["DEPTHWISE_CONV_2D"] = self._convert_conv_nchw

    # -- the dequantized view -------------------------------------------------
    def get_tensors(self, tensors_idx_list):
        wrappers = super().get_tensors(tensors_idx_list)
        for w in wrappers:
            if w.qnn_params is None:
                continue
            q = w.tensor.Quantization()
            self.file_quant[w.tensor_idx] = (
                q.ScaleAsNumpy().astype(np.float64),
                q.ZeroPointAsNumpy().astype(np.int64),
                int(q.QuantizedDimension()),
            )
            w.qnn_params = None
        return wrappers

    def _dequantized(self, wrapper) -> np.ndarray | None:
        if wrapper.tensor_idx not in self.file_quant:
            return None
        raw = super().get_tensor_value(wrapper).astype(np.float64)
        scale, zp, axis = self.file_quant[wrapper.tensor_idx]
        if scale.size > 1:
            shape = [1] * raw.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return ((raw - zp) * scale).astype(np.float32)

    def get_tensor_value(self, tensor_wrapper, is_sparse=False):
        value = self._dequantized(tensor_wrapper)
        return super().get_tensor_value(tensor_wrapper, is_sparse) if value is None else value

    def get_tensor_expr(self, tensor, is_sparse=False):
        if self.has_expr(tensor.tensor_idx):
            return self.get_expr(tensor.tensor_idx)
        value = self._dequantized(tensor)
        if value is None:
            return super().get_tensor_expr(tensor, is_sparse)
        return self.exp_tab.new_const(value, dtype="float32", source_name=tensor.tensor.Name())

    def get_tensor_type_str(self, tensor_type):
        from tflite.TensorType import TensorType

        if tensor_type in (TensorType.INT8, TensorType.UINT8):
            return "float32"  # every 8-bit tensor of a fully-int8 file is a quantized float
        return super().get_tensor_type_str(tensor_type)

    def _is_real(self, wrapper) -> bool:
        """A float tensor, or an integer one that quantizes a float (not a shape or an index)."""
        from tflite.TensorType import TensorType

        is_float = wrapper.tensor.Type() == TensorType.FLOAT32
        return is_float or wrapper.tensor_idx in self.file_quant

    def _identity(self, op):
        return self.get_tensor_expr(self.get_input_tensors(op)[0])

    # -- operators ------------------------------------------------------------
    def _convert_conv_nchw(self, op):
        """CONV_2D / DEPTHWISE_CONV_2D (one input channel) as an NCHW conv2d, VALID padding."""
        from tflite.Conv2DOptions import Conv2DOptions
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions
        from tflite.Padding import Padding

        name = self.get_op_code_str(op)
        options = Conv2DOptions() if name == "CONV_2D" else DepthwiseConv2DOptions()
        raw = op.BuiltinOptions()
        options.Init(raw.Bytes, raw.Pos)
        inputs = self.get_input_tensors(op)
        x, w = self.get_tensor_expr(inputs[0]), self.get_tensor_value(inputs[1])
        in_c = int(self.get_tensor_shape(inputs[0])[3])
        if name == "DEPTHWISE_CONV_2D" and in_c != 1:
            raise _Unsupported("a depthwise convolution over more than one channel")
        if options.Padding() != Padding.VALID or options.FusedActivationFunction() != 0:
            raise _Unsupported("a convolution with padding or a fused activation")
        if options.DilationHFactor() != 1 or options.DilationWFactor() != 1:
            raise _Unsupported("a dilated convolution")
        # CONV_2D weights are OHWI; a one-channel depthwise kernel is 1HWO: both → OIHW.
        oihw = w.transpose(0, 3, 1, 2) if name == "CONV_2D" else w.transpose(3, 0, 1, 2)
        nchw = self.bb.emit(relax.op.permute_dims(x, [0, 3, 1, 2]))
        y = relax.op.nn.conv2d(
            nchw,
            relax.const(np.ascontiguousarray(oihw), "float32"),
            strides=(options.StrideH(), options.StrideW()),
        )
        if len(inputs) > 2 and inputs[2].tensor_idx >= 0:
            bias = self.get_tensor_value(inputs[2]).astype(np.float32)
            y = relax.op.add(self.bb.emit(y), relax.const(bias.reshape(1, -1, 1, 1)))
        return relax.op.permute_dims(self.bb.emit(y), [0, 2, 3, 1])

    def _layer_norms(self) -> dict[int, tuple[int, int]]:
        """``{last op index: (first op index, input tensor index)}`` per LiteRT LayerNorm."""
        ops = [self.subgraph.Operators(i) for i in range(self.subgraph.OperatorsLength())]
        codes = [self.get_op_code_str(op) for op in ops]
        found = {}
        i = 0
        while i < len(ops):
            seq = [j for j in range(i, len(ops)) if codes[j] not in _LN_SKIP]
            head = [codes[j] for j in seq[: len(_LN_OPS) + len(_LN_TAIL)]]
            if tuple(head) != _LN_OPS + _LN_TAIL:
                i += 1
                continue
            last = seq[len(_LN_OPS) + len(_LN_TAIL) - 1]
            x = int(ops[i].InputsAsNumpy()[0])
            # the affine tail, when γ and β were not folded away: MUL by a constant, ADD one
            for kind in ("MUL", "ADD"):
                nxt = next((j for j in range(last + 1, len(ops)) if codes[j] not in _LN_SKIP), None)
                if nxt is None or codes[nxt] != kind or not self._has_const_input(ops[nxt]):
                    break
                last = nxt
            found[last] = (i, x)
            i = last + 1
        return found

    def _has_const_input(self, op) -> bool:
        return any(t.tensor_idx >= 0 and _is_const(t) for t in self.get_input_tensors(op))

    def _layer_norm(self, first: int, last: int, x_idx: int) -> relax.Expr:
        ops = [self.subgraph.Operators(i) for i in range(first, last + 1)]
        consts = []
        for op in ops:
            for t in self.get_input_tensors(op):
                if t.tensor_idx >= 0 and _is_const(t) and self._is_real(t):
                    consts.append((self.get_op_code_str(op), self.get_tensor_value(t)))
        x = self.get_tensor_expr(self.get_tensors([x_idx])[0])
        width = int(x.ty.shape[-1])
        eps = next(float(v.reshape(-1)[0]) for k, v in consts if k == "ADD" and v.size == 1)
        # γ multiplies, β adds, both one value per channel (ε is the scalar ADD)
        gamma = next((v for k, v in consts if k == "MUL" and v.size == width), np.ones(width))
        beta = next((v for k, v in consts if k == "ADD" and v.size == width), np.zeros(width))
        # An ε quantized to 0 (the file's scale 0) stands for PyTorch's default.
        eps = eps if eps > 0 else 1e-5
        return relax.op.nn.layer_norm(
            x,
            relax.const(gamma.reshape(width).astype(np.float32)),
            relax.const(beta.reshape(width).astype(np.float32)),
            axes=[-1],
            epsilon=eps,
        )

    # -- driver ---------------------------------------------------------------
    def check_unsupported_ops(self):
        for i in range(self.subgraph.OperatorsLength()):
            try:
                name = self.get_op_code_str(self.subgraph.Operators(i))
            except NotImplementedError:
                name = "a custom or unknown operator"
            if name not in SUPPORTED_OPS or name not in self.convert_map:
                raise _Unsupported("", index=i, op=name)

    def convert_op_to_relax(self):
        for t in self.get_tensors(self.subgraph.InputsAsNumpy()):
            self._record_range(t, self.get_tensor_expr(t))
        layer_norms = self._layer_norms()
        inside = {j for last, (first, _) in layer_norms.items() for j in range(first, last)}
        for i in range(self.subgraph.OperatorsLength()):
            if i in inside:
                continue
            op = self.subgraph.Operators(i)
            name = self.get_op_code_str(op)
            try:
                if i in layer_norms:
                    first, x_idx = layer_norms[i]
                    ret = self._layer_norm(first, i, x_idx)
                else:
                    ret = self.convert_map[name](op=op)
            except _Unsupported as err:
                raise _Unsupported(str(err), index=i, op=name) from None
            (out,) = self.get_output_tensors(op)
            ret = _drop_identity_reshape(self.bb.normalize(ret))
            var = ret if isinstance(ret, relax.Var) else self.bb.emit(ret)
            self.exp_tab.set_expr(_tfl.get_tensor_name(self.subgraph, out.tensor_idx), var)
            self._record_range(out, var)

    def _record_range(self, tensor, var: relax.Var) -> None:
        if tensor.tensor_idx in self.file_quant:
            scale, zp, _ = self.file_quant[tensor.tensor_idx]
            self.ranges[var] = _int8_range(scale[0], int(zp[0]))


def _drop_identity_reshape(expr: relax.Expr) -> relax.Expr:
    """``reshape(x, shape of x)`` → ``x`` (stock converters add one after LOGISTIC, which
    would hide QuickGELU's pattern)."""
    if isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.reshape":
        arg = expr.args[0]
        return arg if _shape(arg) == _shape(expr) else expr
    return expr


def _shape(expr: relax.Expr) -> list[int] | None:
    shape = getattr(expr.ty, "shape", None)
    return None if shape is None else [int(d) for d in shape.values]


def _is_const(wrapper) -> bool:
    return wrapper.buffer.DataLength() > 0


class _Unsupported(ValueError):
    """An operator (or a form of one) the frontend does not map; names its subgraph index."""

    def __init__(self, what: str, index: int | None = None, op: str | None = None):
        where = "" if index is None else f"operator {index} ({op})"
        super().__init__(": ".join(p for p in (where, what) if p))


def import_tflite(path: Path) -> tvm.IRModule:
    """Load a float or fully-int8 ``.tflite``; an int8 file's ranges go in ``TENSOR_RANGES_ATTR``.

    Raises ``ValueError`` (one line) for a file that is not a readable TFLite
    model or that uses an operator outside :data:`SUPPORTED_OPS`.
    """
    import tflite

    data = path.read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1 or model.Subgraphs(0).OperatorsLength() < 1:
            raise ValueError("it has no operators")
        inputs = model.Subgraphs(0).InputsAsNumpy()
        subgraph = model.Subgraphs(0)
        dtypes = {_tfl.get_tensor_name(subgraph, int(i)): "float32" for i in inputs}
    except Exception as err:  # flatbuffers raises several types on a damaged file
        raise ValueError(
            f"cannot read {str(path)!r} as a TFLite model ({err}); the file may be truncated"
        ) from None
    holder = {}

    def converter(*args, **kwargs):
        holder["c"] = _FileQuantConverter(*args, **kwargs)
        return holder["c"]

    try:
        mod = _tfl.from_tflite(model, dtype_dict=dtypes, op_converter=converter)
    except _Unsupported as err:
        raise ValueError(
            f"cannot import {str(path)!r}: {err} is not supported; "
            f"supported TFLite operators: {', '.join(sorted(SUPPORTED_OPS))}"
        ) from None
    except Exception as err:
        raise ValueError(
            f"cannot import {str(path)!r} as a TFLite model ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); the file may be truncated "
            "or use a form of an operator this frontend does not map"
        ) from None
    ranges = holder["c"].ranges
    main = mod["main"].without_attr("params") if "params" in mod["main"].attrs else mod["main"]
    if ranges:
        main = main.with_attr(TENSOR_RANGES_ATTR, {v: float(r) for v, r in ranges.items()})
    mod["main"] = main
    return mod
