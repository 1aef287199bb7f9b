"""Kernels of the lowered program: scheduled TIR PrimFuncs as runtime-free C functions.

TVM 0.27's C backend only emits TVM-FFI packed wrappers (``MakePackedAPI``),
which need the TVM runtime. :func:`lower_kernels` runs the S-TIR lowering
passes (registered as the TIR pipeline ``mcuformer_c``) without the
packed-API/host-device passes and rewrites every function so that

* each buffer parameter becomes a plain typed pointer (``float* A``), and
* each allocation the kernel makes (reduction temporaries and the like) larger
  than :data:`STACK_ALLOC_LIMIT` bytes is lifted into an extra pointer
  parameter, a *workspace* the planner places in the arena: a microcontroller
  stack cannot hold them. Smaller ones (a scalar accumulator, a register tile)
  stay C locals, which the C compiler keeps in registers; they cost at most
  that many bytes of stack per kernel, inside the stack reserve the compiler
  budgets and the firmware measures (painted stack);
* every int32 → int8 clamp ``T.Cast("int8", T.min(T.max(x, -128), 127))``
  becomes a call of ``mcuformer_ssat8(x)`` (``codegen/runtime/mcuformer_simd.h``:
  one SSAT instruction on Cortex-M4/M7, the same clamp in portable C elsewhere),
  which the C compiler does not select by itself; ``T.clz(x)`` (which TVM's C target
  cannot lower) becomes ``mcuformer_clz(x)`` (one CLZ).

The rewrite goes through TVMScript (print, edit the signature and allocation
statements, parse back): TVM 0.27 exposes no TIR mutator to Python. A kernel
whose script does not have the expected form fails loudly rather than
producing wrong C. Turning the result into C text is :mod:`tvm_mcuformer.codegen`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import tvm
import tvm.script
from tvm import s_tir, tirx

from ..schedules.token_overwrite import TOKEN_OVERWRITE_ATTR

KERNEL_PREFIX = "mcuformer_k_"
STACK_ALLOC_LIMIT = 64  # bytes: kernel-local allocations up to this size stay on the stack


@dataclass(frozen=True)
class Workspace:
    """A kernel-local buffer lifted to a parameter (placed in the arena by the planner)."""

    name: str
    dtype: str
    elements: int

    @property
    def nbytes(self) -> int:
        return self.elements * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class CKernel:
    """One lowered kernel: its C symbol, its parameter dtypes and its workspaces.

    The C signature is ``void symbol(T0* p0, ..., Tn* pn, W0* w0, ...)``: the
    PrimFunc's parameters in order, then one pointer per workspace.
    """

    name: str
    symbol: str
    param_dtypes: tuple[str, ...]
    workspaces: tuple[Workspace, ...]
    func: tirx.PrimFunc
    token_overwrite: bool = False  # row-wise: may write its output over its first input


TIR_PIPELINE_NAME = "mcuformer_c"


def _lowering_passes() -> list[tvm.transform.Pass]:
    return [
        s_tir.transform.CanonicalizeLoop(),
        s_tir.transform.LowerInitBlock(),
        s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(),
        s_tir.transform.CompactBufferAllocation(),
        s_tir.transform.LowerMatchBuffer(),
        s_tir.transform.StmtSimplify(),
        s_tir.transform.LowerOpaqueBlock(),
        tirx.transform.FlattenBuffer(),
        tirx.transform.NarrowDataType(32),
        s_tir.transform.LoopPartition(),
        tirx.transform.StorageRewrite(),
        tirx.transform.UnrollLoop(),
        tirx.transform.StmtSimplify(),
        tirx.transform.RemoveNoOp(),
        tirx.transform.CommonSubexprElim(),
    ]


def unpacked_c_pipeline() -> tvm.transform.Pass:
    """The TIR pipeline registered as ``mcuformer_c``: S-TIR lowering, no packed API."""
    return tvm.transform.Sequential(_lowering_passes(), name=TIR_PIPELINE_NAME)


def register_tir_pipeline() -> None:
    """Make the pipeline available as ``tvm.tirx.get_tir_pipeline("mcuformer_c")``."""
    tirx.register_tir_pipeline(TIR_PIPELINE_NAME, unpacked_c_pipeline)


_ALLOC_RE = re.compile(r"^(\s*)(\w+) = T\.alloc_(?:buffer|local)\((\([^)]*\))(.*)\)$")
_DTYPE_RE = re.compile(r'^\s*,\s*(?:dtype=)?"([^"]+)"|dtype="([^"]+)"')
_C_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "float32", "bool")
TVMSCRIPT_DEFAULT_DTYPE = "float32"  # what ``T.alloc_buffer(shape)`` without a dtype means
_VIEW_RE = re.compile(r"^(\s*)(\w+) = (\w+)\.view\(([^()]*|\([^()]*\))\)$")


_DIM_RE = re.compile(r"T\.int\d+\((\d+)\)|(?<![\w.])(\d+)(?![\w(])")


def _shape_elements(shape_text: str) -> int:
    """Elements of a TVMScript shape such as ``(T.int64(16), 4)``: 64 (dtype widths skipped)."""
    dims = [int(a or b) for a, b in _DIM_RE.findall(shape_text)]
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


SATURATE_INT8 = "mcuformer_ssat8"
_CLZ_CALL = 'T.call_extern("int32", "mcuformer_clz", '
_CLAMP_HEAD = 'T.Cast("int8", T.min(T.max('
_CLAMP_TAIL = ", -128), 127))"  # bare literals: the clamped value is int32


def _saturating_casts(line: str) -> str:
    """``line`` with each int32 → int8 clamp written as a call of :data:`SATURATE_INT8`."""
    out, at = [], 0
    while (head := line.find(_CLAMP_HEAD, at)) >= 0:
        start = end = head + len(_CLAMP_HEAD)
        depth = 0
        while end < len(line) and not (depth == 0 and line[end] in ",)]"):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(line[end], 0)
            end += 1
        if not line.startswith(_CLAMP_TAIL, end):
            out.append(line[at:start])
            at = start
            continue
        value = line[start:end]
        out.append(f'{line[at:head]}T.call_extern("int8", "{SATURATE_INT8}", {value})')
        at = end + len(_CLAMP_TAIL)
    return "".join(out) + line[at:]


def _unpack(name: str, symbol: str, func: tirx.PrimFunc) -> CKernel:
    """Rewrite a lowered PrimFunc with buffer params into pointer params + workspaces."""
    script = func.script()
    lines = script.split("\n")
    try:
        def_at = next(i for i, line in enumerate(lines) if line.startswith("def "))
    except StopIteration:
        raise RuntimeError(f"kernel {name}: unexpected TVMScript form") from None
    params = [(p.name, str(p.ty.dtype)) for p in func.params]
    dtypes = dict(params)
    workspaces: list[Workspace] = []
    body: list[str] = []
    for line in lines[def_at + 1 :]:
        match = _ALLOC_RE.match(line)
        if match:
            indent, buf, shape, rest = match.groups()
            dtype_match = _DTYPE_RE.match(rest)
            dtype_match = dtype_match or _DTYPE_RE.search(rest)
            dtype = next((g for g in dtype_match.groups() if g), None) if dtype_match else None
            dtype = dtype or TVMSCRIPT_DEFAULT_DTYPE
            if dtype not in _C_DTYPES:
                raise RuntimeError(
                    f"kernel {name}: allocation {buf} of dtype {dtype!r} ({line.strip()!r}) "
                    f"cannot be a workspace; supported: {', '.join(_C_DTYPES)}"
                )
            ws = Workspace(f"{buf}_ws", dtype, _shape_elements(shape))
            if ws.nbytes <= STACK_ALLOC_LIMIT:  # a C local array (the C target knows no scopes)
                body.append(f'{indent}{buf} = T.alloc_buffer(({ws.elements},), "{dtype}")')
                # Zeroed first: the kernel's own init sits behind a loop test the C compiler
                # cannot see through (a -Wmaybe-uninitialized false positive otherwise).
                zero = "T.bool(False)" if dtype == "bool" else f'T.Cast("{dtype}", 0)'
                body.append(f"{indent}for {buf}_z in range({ws.elements}):")
                body.append(f"{indent}    {buf}[{buf}_z] = {zero}")
                continue
            workspaces.append(ws)
            line = f'{indent}{buf} = T.decl_buffer({shape}, "{dtype}", data={ws.name})'
        view = _VIEW_RE.match(line)
        if view and view.group(3) in dtypes:  # ``x_1 = x.view(512)``: a flat view of a param
            indent, buf, param, shape = view.groups()
            shape = shape if shape.startswith("(") else f"({shape},)"
            line = f'{indent}{buf} = T.decl_buffer({shape}, "{dtypes[param]}", data={param})'
        for pname, _ in params:
            line = re.sub(rf"\b{re.escape(pname)}\.data\b", pname, line)
        body.append(_saturating_casts(line).replace("T.clz(", _CLZ_CALL))
    signature = [f'{p}: T.handle("{d}")' for p, d in params]
    signature += [f'{w.name}: T.handle("{w.dtype}")' for w in workspaces]
    text = "\n".join([*lines[:def_at], f"def {symbol}({', '.join(signature)}):", *body])
    try:
        unpacked = tvm.script.from_source(text)
    except Exception as err:
        raise RuntimeError(f"kernel {name}: cannot rewrite to pointer parameters: {err}") from err
    overwrite = bool(func.attrs is not None and TOKEN_OVERWRITE_ATTR in func.attrs)
    return CKernel(
        name, symbol, tuple(d for _, d in params), tuple(workspaces), unpacked, overwrite
    )


def lower_kernels(prim_funcs: dict[str, tirx.PrimFunc]) -> dict[str, CKernel]:
    """Lower each named PrimFunc to a :class:`CKernel` (not yet C text)."""
    kernels = {}
    for name, func in prim_funcs.items():
        symbol = KERNEL_PREFIX + name
        mod = tvm.IRModule({symbol: func.with_attr("global_symbol", symbol)})
        mod = tirx.get_tir_pipeline(TIR_PIPELINE_NAME)(mod)
        kernels[name] = _unpack(name, symbol, mod[symbol])
    return kernels
