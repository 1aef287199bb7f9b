"""The scheduled int8 dense kernel and its dual-MAC micro-kernels.

* the portable C definitions of SXTB16/SMLAD/PKHBT/PKHTB (``mcuformer_simd.h``, the
  host path) equal the instructions' semantics on random words;
* dense + bias + requantization through the pipeline (tiled schedule, micro-kernel
  calls, accumulators on the stack) built as plain C on the host equals the numpy
  twins bit for bit, for every tile width (2 rows × 2 or 1 columns, odd and even M),
  K step (16, 8, 4) and requantization path;
* the high-word requantization equals the twin on int32 extremes;
* on QEMU (Cortex-M7, the ACLE path) a scheduled linear (odd M) equals the host build bit
  for bit and retires far fewer instructions than the unscheduled one.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tvm import relax, te, tirx

import tvm_mcuformer.codegen
from tvm_mcuformer.codegen.tir_to_c import emit_c
from tvm_mcuformer.lowering import get_pipeline
from tvm_mcuformer.lowering.kernels import lower_kernels
from tvm_mcuformer.ops import (
    dense_int,
    dense_int_ref,
    quantize_multipliers,
    requantize,
    requantize_ref,
)
from tvm_mcuformer.ops.fixed_point import (
    HI_WORD_MIN_SHIFT,
    hi_word_rounding,
    requantize_hi_word_expr,
)
from tvm_mcuformer.schedules.dense import micro_kernel_name

from .conftest import import_bench, load_c_kernels
from .test_integer_ops import int8_rows, int32_extremes, run_te

RUNTIME = Path(tvm_mcuformer.codegen.__file__).parent / "runtime"
REPO = Path(__file__).resolve().parents[1]

_SIMD_PROBE = """
#include <stdio.h>
#include "mcuformer_simd.h"
int main(void) {
  int32_t x, y, acc;
  while (scanf("%d %d %d", &x, &y, &acc) == 3)
    printf("%d %d %d %d %d %d\\n", mcuformer_sxtb16(x), mcuformer_sxtb16_ror8(x),
           mcuformer_smlad(x, y, acc), MCUFORMER_ACLE, mcuformer_pack_lo(x, y),
           mcuformer_pack_hi(x, y));
  return 0;
}
"""


def _acle_sxtb16(x: np.ndarray) -> np.ndarray:
    """ARM SXTB16: bytes 0 and 2 sign-extended into the low and high halfwords."""
    u = x.astype(np.int64) & 0xFFFFFFFF
    lo = ((u & 0xFF) ^ 0x80) - 0x80
    hi = (((u >> 16) & 0xFF) ^ 0x80) - 0x80
    return ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).astype(np.uint32).view(np.int32)


def _acle_smlad(x: np.ndarray, y: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """ARM SMLAD: acc + x.lo·y.lo + x.hi·y.hi on signed halfwords, modulo 2^32."""

    def half(v, k):
        return (((v.astype(np.int64) >> (16 * k)) & 0xFFFF) ^ 0x8000) - 0x8000

    total = acc.astype(np.int64) + half(x, 0) * half(y, 0) + half(x, 1) * half(y, 1)
    return (total & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def test_portable_intrinsics_equal_acle_semantics(tmp_path):
    rng = np.random.default_rng(0)
    words = rng.integers(-(2**31), 2**31, (500, 3)).astype(np.int32)
    edges = np.array([-(2**31), -1, 0, 1, 2**31 - 1, 0x7F807F80, -0x7F7F7F80], np.int32)
    words = np.concatenate([words, np.stack([edges, edges[::-1], edges], axis=1)])
    src, exe = tmp_path / "probe.c", tmp_path / "probe"
    src.write_text(_SIMD_PROBE)
    subprocess.run(["cc", "-O2", "-std=c11", f"-I{RUNTIME}", str(src), "-o", str(exe)], check=True)
    stdin = "".join(f"{x} {y} {a}\n" for x, y, a in words)
    out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
    got = np.array([line.split() for line in out.stdout.splitlines()], np.int64)
    x, y, acc = words.T
    rot = ((x.astype(np.int64) & 0xFFFFFFFF) >> 8 | (x.astype(np.int64) & 0xFF) << 24).astype(
        np.uint32
    )
    np.testing.assert_array_equal(got[:, 3], 0)  # the host takes the portable path
    np.testing.assert_array_equal(got[:, 0], _acle_sxtb16(x))
    np.testing.assert_array_equal(got[:, 1], _acle_sxtb16(rot.view(np.int32)))
    np.testing.assert_array_equal(got[:, 2], _acle_smlad(x, y, acc))
    ux, uy = (v.astype(np.int64) & 0xFFFFFFFF for v in (x, y))
    pkhbt = (ux & 0xFFFF) | ((uy << 16) & 0xFFFF0000)  # PKHBT x, y, LSL #16
    pkhtb = (uy & 0xFFFF0000) | (ux >> 16)  # PKHTB y, x, ASR #16
    np.testing.assert_array_equal(got[:, 4], pkhbt.astype(np.uint32).view(np.int32))
    np.testing.assert_array_equal(got[:, 5], pkhtb.astype(np.uint32).view(np.int32))


@pytest.mark.parametrize("shift_floor", [HI_WORD_MIN_SHIFT, 1], ids=["hi-word", "int64"])
def test_high_word_requantization_equals_twin(shift_floor):
    acc = int32_extremes()
    reals = np.geomspace(1e-7, 0.2, 16) if shift_floor > 1 else np.geomspace(1e-7, 2.5, 16)
    m, shift = quantize_multipliers(reals)
    assert (int(shift.min()) >= HI_WORD_MIN_SHIFT) == (shift_floor > 1)
    got = run_te(requantize, [acc, m, shift], out_dtype="int8", min_shift=int(shift.min()))
    np.testing.assert_array_equal(got, requantize_ref(acc, m, shift, "int8"))


def test_stored_rounding_requantization_equals_twin():
    """The per-channel high-word path the quantizer emits (2^(shift − 33) stored, the shift
    from its leading zeros) equals the twin on int32 extremes, saturation included."""
    acc = int32_extremes()
    m, shift = quantize_multipliers(np.geomspace(1e-7, 0.2, 16))
    assert int(shift.min()) >= HI_WORD_MIN_SHIFT

    def op(a, mt, rt):
        return te.compute(
            a.shape, lambda i, j: requantize_hi_word_expr(a[i, j], mt[j], rt[j]), name="rq"
        )

    got = run_te(op, [acc, m, hi_word_rounding(shift)])
    np.testing.assert_array_equal(got, requantize_ref(acc, m, shift, "int8"))
    assert {-128, 127} <= set(np.unique(got).tolist())  # the clamp is there
    with pytest.raises(ValueError, match="high-word shifts"):
        hi_word_rounding(np.array([32]))


# tiles of 2, 4 and 1 output channels; K steps of 16, 8 and 4
@pytest.mark.parametrize(("n", "k"), [(6, 64), (12, 56), (5, 60)])
@pytest.mark.parametrize("reals", [(1e-5, 0.1), (1e-3, 2.0)], ids=["hi-word", "int64"])
def test_scheduled_dense_c_equals_numpy(n, k, reals, tmp_path):
    rng = np.random.default_rng(n)
    x = int8_rows(k, seed=n)  # every extreme row, then random ones
    x = x[: len(x) - len(x) % 2 + n % 2]  # 2-row tiles; n odd: an odd M (a clamped last pair)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    w[0] = -128
    b = rng.integers(-20000, 20000, n).astype(np.int32)
    m, shift = quantize_multipliers(np.geomspace(*reals, n))

    hi_word = int(shift.min()) >= HI_WORD_MIN_SHIFT  # as the quantizer emits it

    def linear(xt, wt, bt, mt, st):
        acc = dense_int(xt, wt)
        biased = te.compute(acc.shape, lambda i, j: acc[i, j] + bt[j], name="bias")
        if hi_word:  # st holds 2^(shift − 33)
            rq = requantize_hi_word_expr
            return te.compute(acc.shape, lambda i, j: rq(biased[i, j], mt[j], st[j]), name="rq")
        return requantize(biased, mt, st, "int8", min_shift=int(shift.min()))

    inputs = [x, w, b, m, hi_word_rounding(shift) if hi_word else shift]
    bb = relax.BlockBuilder()
    params = [
        relax.Var(f"p{i}", relax.TensorType(a.shape, str(a.dtype))) for i, a in enumerate(inputs)
    ]
    with bb.function("main", params):
        bb.emit_func_output(bb.emit_te(linear, *params))
    lowered = get_pipeline(build_vm=False, token_overwrite=False)(bb.get())
    funcs = {gv.name_hint: f for gv, f in lowered.functions.items() if isinstance(f, tirx.PrimFunc)}
    kernels = lower_kernels(funcs)
    (kernel,) = kernels.values()
    assert kernel.workspaces == ()  # the accumulator tile is a C local
    source = emit_c(kernels)
    cols = 2 if n % 2 == 0 else 1
    k_step = 16 if k % 16 == 0 else 8 if k % 8 == 0 else 4
    assert f"{micro_kernel_name(cols, rows=2, k_step=k_step)}(" in source
    lib = load_c_kernels(source, tmp_path, "dense")
    out = np.zeros((len(x), n), np.int8)
    arrays = [np.ascontiguousarray(a) for a in inputs] + [out]
    getattr(lib, kernel.symbol)(*[a.ctypes.data_as(ctypes.c_void_p) for a in arrays])
    ref = requantize_ref(dense_int_ref(x, w) + b, m, shift, "int8")
    np.testing.assert_array_equal(out, ref)
    assert np.unique(ref).size > 16  # mostly unsaturated: the test can see a wrong sum


def test_scheduled_linear_on_qemu_equals_host_and_is_faster():
    bench = import_bench("kernel_speed")  # the same compile → QEMU path as the bench
    torch.manual_seed(0)
    model, shape = bench.Linear(64, 32), (1, 7, 64)  # odd M: 2-row tiles and a clamped last pair
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduled in (True, False):
            rows[scheduled] = bench.measure(
                "linear", model, shape, "mps2-an500", Path(tmp) / str(scheduled), scheduled
            )
    assert rows[True]["device_equals_host"] and rows[False]["device_equals_host"]
    # The per-op profile: one row per kernel call, summing to (almost) the whole inference.
    per_op = rows[True]["per_op"]
    assert [r["call"] for r in per_op] == list(range(len(per_op))) and len(per_op) >= 2
    assert any("dense_int" in r["kernel"] for r in per_op)
    total = sum(r["count"] for r in per_op)
    assert 0.95 * rows[True]["instructions_per_inference"] <= total
    assert total <= rows[True]["instructions_per_inference"]
    assert rows[True]["instructions_per_mac"] < 0.5 * rows[False]["instructions_per_mac"]
