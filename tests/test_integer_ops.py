"""Integer operator library: TE builds (compiled for the host) vs numpy twins, and vs float.

Every integer op is compiled from its TE builder with ``te.create_prim_func`` +
``tvm.compile(..., llvm)`` and must equal its numpy twin BIT FOR BIT on random and
extreme int8 inputs. Row-wise ops get one tensor whose rows hold every case
(random, all −128, all 127, alternating extremes, zeros, constant, one-hot
extreme, narrow range), so one compiled function covers them.

Measured errors against float (asserted below with a small margin):

* exp_int vs math.exp·2^15 (scale 0.003–1): max relative error 0.72% where
  exp ≥ 2^-8, max absolute 3.7 Q15 units.
* softmax_int vs 128·softmax of the dequantised input: max |error| 0.4999 units
  (correctly rounded on this data); vs softmax_float: identical here (asserted ≤ 1).
* gelu_int vs the real x·σ(1.702x): ≤ 0.5 units (only the final rounding); vs the
  erf GeLU: ≤ 0.5 + 0.0204/out_scale units (max 2.42 at out_scale 0.01); vs
  gelu_float ≤ 1 unit (2 at out_scale 0.01).
* layernorm_int vs the exact LayerNorm (output units, out_scale 0.04): max |error|
  13.3, 2.29, 2.21, 2.21, 2.21 for iterations 1..5 (non-increasing); 1.18 on
  random full-range rows with 3 iterations; vs layernorm_float ≤ 2 units.
* add_int, mean_int: within 0.5 units of the exact real result (one rounding).

Whole file: about 20 s on 2 cores (each compile is ~0.05–0.3 s).
"""

from __future__ import annotations

import ctypes
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import tvm
from tvm import relax, te, tirx, topi

from tvm_mcuformer.codegen.tir_to_c import emit_c
from tvm_mcuformer.lowering import get_pipeline
from tvm_mcuformer.lowering.kernels import lower_kernels
from tvm_mcuformer.ops import (
    SOFTMAX_OUT_SCALE,
    add_int,
    add_int_ref,
    clip_int,
    clip_int_ref,
    conv2d_int_ref,
    exp_int,
    exp_int_ref,
    gelu_float,
    gelu_float_ref,
    gelu_int,
    gelu_int_ref,
    hardswish_int,
    hardswish_int_ref,
    int8_table,
    layernorm_float,
    layernorm_float_ref,
    layernorm_int,
    layernorm_int_params,
    layernorm_int_ref,
    lookup_int8,
    lookup_int8_ref,
    matmul_int,
    matmul_int_ref,
    mean_int,
    mean_int_ref,
    quantize_multiplier,
    quantize_multipliers,
    requantize,
    requantize_ref,
    softmax_float,
    softmax_float_ref,
    softmax_int,
    softmax_int_ref,
)
from tvm_mcuformer.ops.layernorm import _isqrt_ref, affine_fits_int32, z_bound

from .conftest import load_c_kernels

TARGET = tvm.target.Target({"kind": "llvm"})


def conv2d_legalized(x: te.Tensor, w: te.Tensor, stride, padding) -> te.Tensor:
    """The int8 conv2d into int32 that ``relax.nn.conv2d`` legalizes to (TOPI)."""
    pad = padding if len(padding) == 4 else (padding[0], padding[1], padding[0], padding[1])
    return topi.nn.conv2d_nchw(x, w, stride, pad, 1, out_dtype="int32")


SCALES = (0.02, 0.05, 0.1)


def build(builder: Callable, inputs: list[np.ndarray], *args, **kwargs) -> Callable:
    """Compile ``builder(placeholders..., *args)`` for the host; return ``run(*arrays)``."""
    phs = [te.placeholder(a.shape, str(a.dtype), name=f"in{i}") for i, a in enumerate(inputs)]
    out = builder(*phs, *args, **kwargs)
    lib = tvm.compile(te.create_prim_func([*phs, out]), target=TARGET)
    shape = tuple(int(d) for d in out.shape)

    def run(*arrays: np.ndarray) -> np.ndarray:
        res = tvm.runtime.tensor(np.zeros(shape, str(out.dtype)))
        lib(*[tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays], res)
        return res.numpy()

    return run


def run_te(builder: Callable, inputs: list[np.ndarray], *args, **kwargs) -> np.ndarray:
    return build(builder, inputs, *args, **kwargs)(*inputs)


def int8_rows(n: int, seed: int) -> np.ndarray:
    """``[rows, n]`` int8: random rows plus every extreme case, one per row."""
    rng = np.random.default_rng(seed)
    alternating = np.where(np.arange(n) % 2 == 0, -128, 127)
    one_hot = np.full(n, -128)
    one_hot[n // 2] = 127
    cases = [
        np.full(n, -128),
        np.full(n, 127),
        alternating,
        alternating[::-1],
        np.zeros(n),
        np.full(n, 37),
        one_hot,
        rng.integers(-3, 4, n),
        rng.integers(-40, 41, n),
    ]
    random = rng.integers(-128, 128, (12, n))
    return np.concatenate([np.stack(cases), random]).astype(np.int8)


def all_int8() -> np.ndarray:
    return np.arange(-128, 128, dtype=np.int8).reshape(4, 64)


# ---------------------------------------------------------------- fixed point


def test_quantize_multiplier_range_and_error():
    reals = [2.0**-32, 1e-9, 3.3e-5, 0.0123, 0.5, 0.999999999, 1.0, 1.5, 1234.5, 2.0**30 * 0.99]
    for real in reals:
        m, shift = quantize_multiplier(real)
        assert 2**30 <= m < 2**31 and 1 <= shift <= 62
        assert abs(m * 2.0**-shift - real) <= real * 2**-31
    m, s = quantize_multipliers(np.array(reals))
    assert m.dtype == np.int32 and s.dtype == np.int32
    assert [(int(a), int(b)) for a, b in zip(m, s, strict=True)] == [
        quantize_multiplier(r) for r in reals
    ]
    assert quantize_multiplier(1 - 2**-40) == (2**30, 30)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan, 2.0**31, 1e-12 * 2**-32])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(ValueError, match="multiplier"):
        quantize_multiplier(bad)
    with pytest.raises(ValueError, match="multiplier"):
        quantize_multipliers(np.array([0.5, bad]))


def int32_extremes() -> np.ndarray:
    rng = np.random.default_rng(1)
    edges = [-(2**31), -(2**31) + 1, -(2**30), -1000, -1, 0, 1, 1000, 2**30, 2**31 - 1]
    random = rng.integers(-(2**31), 2**31, 54)
    return np.concatenate([edges, random]).astype(np.int32).reshape(4, 16)


@pytest.mark.parametrize("out_dtype", ["int8", "int32"])
@pytest.mark.parametrize("real", [2.0**-31, 1.7e-4, 0.37, 1.0, 3.9])
def test_requantize_per_tensor(real, out_dtype):
    acc = int32_extremes()
    m, shift = quantize_multiplier(real)
    got = run_te(requantize, [acc], m, shift, out_dtype)
    ref = requantize_ref(acc, m, shift, out_dtype)
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == np.dtype(out_dtype)
    lo, hi = np.iinfo(out_dtype).min, np.iinfo(out_dtype).max
    exact = np.clip(np.floor(acc.astype(np.float64) * m * 2.0**-shift + 0.5), lo, hi)
    assert np.abs(ref - exact).max() <= 1


@pytest.mark.parametrize("out_dtype", ["int8", "int32"])
def test_requantize_per_channel(out_dtype):
    acc = int32_extremes()
    m, shift = quantize_multipliers(np.geomspace(1e-7, 2.5, 16))
    got = run_te(requantize, [acc, m, shift], out_dtype=out_dtype)
    np.testing.assert_array_equal(got, requantize_ref(acc, m, shift, out_dtype))


# ---------------------------------------------------------------- exp


@pytest.mark.parametrize("scale", [0.003, 0.02, 0.05, 0.1, 1.702 * 0.1, 1.0])
def test_exp_int(scale):
    rng = np.random.default_rng(2)
    d = -np.concatenate([np.arange(4096), rng.integers(4096, 2**31, 4095), [2**31]])
    d = d.astype(np.int64).astype(np.int32).reshape(-1, 64)
    got = run_te(exp_int, [d], scale)
    ref = exp_int_ref(d, scale)
    np.testing.assert_array_equal(got, ref)
    exact = np.exp(scale * d.astype(np.float64)) * 2**15
    big = exact >= 2**7
    assert ref[d == 0].min() == 2**15
    assert (np.abs(ref[big] - exact[big]) / exact[big]).max() < 0.0075
    assert np.abs(ref - exact).max() < 4.5


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("n", [1, 16, 49, 197])
def test_softmax_int(n):
    x = int8_rows(n, seed=n).reshape(3, 7, n)
    for scale in SCALES:
        run = build(softmax_int, [x], scale)
        ref = softmax_int_ref(x, scale)
        np.testing.assert_array_equal(run(x), ref)
        v = scale * x.astype(np.float64)
        p = np.exp(v - v.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        assert np.abs(ref - np.minimum(p / SOFTMAX_OUT_SCALE, 127)).max() <= 0.5 + 1e-3
        assert np.abs(ref.astype(int) - softmax_float_ref(x, scale)).max() <= 1


@pytest.mark.parametrize("n", [1, 49])
def test_softmax_float(n):
    x = int8_rows(n, seed=10 + n)
    got = run_te(softmax_float, [x], 0.05)
    ref = softmax_float_ref(x, 0.05)
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


# ---------------------------------------------------------------- gelu


GELU_APPROX_ERROR = 0.0204  # max |erf-GeLU(v) - v·σ(1.702 v)| over all real v


def erf_gelu(v: np.ndarray) -> np.ndarray:
    return 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))


@pytest.mark.parametrize("in_scale", SCALES)
def test_gelu_int(in_scale):
    x = all_int8()
    for out_scale in (in_scale, in_scale / 2):
        got = run_te(gelu_int, [x], in_scale, out_scale)
        ref = gelu_int_ref(x, in_scale, out_scale)
        np.testing.assert_array_equal(got, ref)
        v = in_scale * x.astype(np.float64)
        sigmoid_form = np.clip(v / (1 + np.exp(-1.702 * v)) / out_scale, -128, 127)
        assert np.abs(ref - sigmoid_form).max() <= 0.5 + 1e-3
        exact = np.clip(erf_gelu(v) / out_scale, -128, 127)
        assert np.abs(ref - exact).max() <= 0.5 + GELU_APPROX_ERROR / out_scale
        float_ref = gelu_float_ref(x, in_scale, out_scale)
        assert np.abs(ref.astype(int) - float_ref).max() <= (1 if out_scale == in_scale else 2)


@pytest.mark.parametrize("in_scale", [0.02, 0.05])
def test_silu_is_gelu_int_with_slope_one(in_scale):
    x = all_int8()
    got = run_te(gelu_int, [x], in_scale, in_scale, 1.0)
    ref = gelu_int_ref(x, in_scale, in_scale, 1.0)
    np.testing.assert_array_equal(got, ref)
    v = in_scale * x.astype(np.float64)
    silu = np.clip(v / (1 + np.exp(-v)) / in_scale, -128, 127)
    assert np.abs(ref - silu).max() <= 0.5 + 1e-3


@pytest.mark.parametrize(("lo", "hi"), [(0, None), (0, 50), (None, 3), (-200, 300)])
def test_clip_int(lo, hi):
    x = all_int8()
    got = run_te(clip_int, [x], lo, hi)
    np.testing.assert_array_equal(got, clip_int_ref(x, lo, hi))
    expect = np.clip(x.astype(int), -128 if lo is None else lo, 127 if hi is None else hi)
    np.testing.assert_array_equal(got, np.clip(expect, -128, 127))


@pytest.mark.parametrize("in_scale", [0.02, 0.05])
def test_hardswish_int(in_scale):
    """``x · clamp(x + 3, 0, 6) / 6`` (the /6 as the output scale) within one rounding."""
    x = all_int8()
    offset, lo, hi = round(3 / in_scale), 0, round(6 / in_scale)
    out_scale = 6 * in_scale / 2  # the product's real scale before the free division by 6
    got = run_te(hardswish_int, [x], offset, lo, hi, in_scale, out_scale)
    ref = hardswish_int_ref(x, offset, lo, hi, in_scale, out_scale)
    np.testing.assert_array_equal(got, ref)
    v = in_scale * x.astype(np.float64)
    exact = np.clip(v * np.clip(v + 3, 0, 6) / out_scale, -128, 127)
    # One output rounding, plus the gate's bounds rounded to the input grid (≤ half a step).
    gate_error = np.abs(v).max() * 0.5 * in_scale / out_scale
    assert np.abs(ref - exact).max() <= 0.5 + gate_error + 1e-3


@pytest.mark.parametrize("slope", [1.702, 1.0], ids=["gelu", "silu"])
def test_gelu_table_equals_the_integer_formula(slope):
    """The 256-byte table the quantizer emits (``QuantConfig.tables``) read by
    ``lookup_int8`` equals the per-element integer formula on every int8 input."""
    x = np.concatenate([all_int8().reshape(1, 256), int8_rows(256, seed=5)])  # every int8 value
    table = int8_table(gelu_int_ref, 0.04, 0.03, slope)
    got = run_te(lookup_int8, [x, table])
    np.testing.assert_array_equal(got, run_te(gelu_int, [x], 0.04, 0.03, slope))
    np.testing.assert_array_equal(got, gelu_int_ref(x, 0.04, 0.03, slope))
    np.testing.assert_array_equal(lookup_int8_ref(x, table), got)
    with pytest.raises(ValueError, match="256 int8"):
        int8_table(lambda v: v.astype(np.int32))


def test_gelu_int_shapes():
    x = int8_rows(49, seed=3).reshape(3, 7, 49)
    np.testing.assert_array_equal(run_te(gelu_int, [x], 0.04, 0.03), gelu_int_ref(x, 0.04, 0.03))


def test_gelu_float():
    x = all_int8()
    got = run_te(gelu_float, [x], 0.05, 0.04)
    diff = np.abs(got.astype(int) - gelu_float_ref(x, 0.05, 0.04))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02


# ---------------------------------------------------------------- layernorm


LN_MAX_ERROR_3_ITERATIONS = 2.5  # output units; measured 2.21 (low-variance row, C = 16)


def ln_params(c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c)


def test_isqrt_newton():
    v = np.concatenate([np.arange(1, 70000), np.geomspace(7e4, 2**31 - 1, 5000).astype(np.int64)])
    v = v.astype(np.int32)
    exact = np.array([math.isqrt(int(a)) for a in v])
    previous = None
    for iterations in range(0, 8):
        k = _isqrt_ref(v, iterations)
        assert (k >= exact).all()
        if previous is not None:
            assert (k <= previous).all()
        previous = k
    assert (previous == exact).all()
    bound = np.maximum(exact + 1, np.sqrt(v) * (1 + 3e-4))
    assert (_isqrt_ref(v, 3) <= bound).all()


@pytest.mark.parametrize("c", [16, 64, 192])
def test_layernorm_int(c):
    x = int8_rows(c, seed=c).reshape(3, 7, c)
    gamma, beta = ln_params(c, seed=c)
    eps, out_scale = 1e-6, 0.04
    g, b = layernorm_int_params(gamma, beta, out_scale)
    for in_scale in SCALES:
        compiled = range(1, 6) if in_scale == 0.05 else (3,)
        for iterations in compiled:
            run = build(layernorm_int, [x, g, b], eps, in_scale, iterations=iterations)
            ref = layernorm_int_ref(x, g, b, eps, in_scale, iterations=iterations)
            np.testing.assert_array_equal(run(x, g, b), ref)
        v = in_scale * x.astype(np.float64)
        exact = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + eps)
        exact = np.clip((exact * gamma + beta) / out_scale, -128, 127)
        errors = [
            np.abs(layernorm_int_ref(x, g, b, eps, in_scale, iterations=it) - exact).max()
            for it in range(1, 6)
        ]
        assert all(e2 <= e1 + 0.25 for e1, e2 in itertools.pairwise(errors)), errors
        assert errors[2] < LN_MAX_ERROR_3_ITERATIONS
        ref = layernorm_int_ref(x, g, b, eps, in_scale)
        float_ref = layernorm_float_ref(x, gamma, beta, eps, in_scale, out_scale)
        assert np.abs(ref.astype(int) - float_ref).max() <= 2
        assert np.abs(float_ref - exact).max() < 0.6


@pytest.mark.parametrize("c", [3, 16, 64, 192])
def test_layernorm_int32_affine_equals_int64(c):
    """With ``affine_bounds`` the affine step runs in int32 when ``z_bound(c)`` proves it
    cannot overflow: equal to the int64 twin on extreme rows with G just under that limit
    (a wrong bound would overflow and differ), and int64 just over it."""
    x = int8_rows(c, seed=c + 1)
    rng = np.random.default_rng(c)
    eps, in_scale = 1e-6, 0.05
    g_max = (2**31 - 2**15) // z_bound(c) - 1
    for g_top, wide in ((g_max, False), (g_max + 2, True)):
        g = np.where(rng.random(c) < 0.5, -1, 1) * rng.integers(g_top // 2, g_top, c)
        g[0] = g_top
        g = g.astype(np.int32)
        b = rng.integers(-300, 300, c).astype(np.int32)
        bounds = (int(np.abs(g).max()), int(np.abs(b).max()))
        assert affine_fits_int32(c, *bounds) != wide
        got = run_te(layernorm_int, [x, g, b], eps, in_scale, iterations=3, affine_bounds=bounds)
        np.testing.assert_array_equal(got, layernorm_int_ref(x, g, b, eps, in_scale))
        assert 0 < np.mean(np.abs(got) < 127)  # not all saturated


def test_layernorm_int_rejects():
    g, b = layernorm_int_params(np.ones(4), np.zeros(4), 0.05)
    x = te.placeholder((2, 4), "int8")
    with pytest.raises(ValueError, match="iterations"):
        layernorm_int(
            x,
            te.placeholder((4,), "int32"),
            te.placeholder((4,), "int32"),
            1e-5,
            0.1,
            iterations=-1,
        )
    with pytest.raises(ValueError, match="overflows"):
        layernorm_int_ref(np.zeros((2, 4), np.int8), g, b, 1.0, 1e-6)
    with pytest.raises(ValueError, match="overflows int32"):
        layernorm_int_params(np.full(4, 1e6), np.zeros(4), 1e-3)


def test_layernorm_float():
    x = int8_rows(64, seed=5)
    gamma, beta = ln_params(64, seed=5)
    args = (1e-6, 0.05, 0.04)
    got = run_te(layernorm_float, [x, gamma.astype(np.float32), beta.astype(np.float32)], *args)
    diff = np.abs(got.astype(int) - layernorm_float_ref(x, gamma, beta, *args))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


# ---------------------------------------------------------------- linear


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((16, 48), (48, 24)),
        ((2, 49, 64), (64, 32)),
        ((2, 3, 17, 16), (2, 3, 16, 17)),
        ((1, 3, 5, 8), (2, 1, 8, 4)),
        ((4, 1, 192), (192, 1)),
    ],
)
def test_matmul_int(a_shape, b_shape):
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, a_shape).astype(np.int8)
    b = rng.integers(-128, 128, b_shape).astype(np.int8)
    run = build(matmul_int, [a, b])
    np.testing.assert_array_equal(run(a, b), matmul_int_ref(a, b))
    for fill_a, fill_b in ((-128, -128), (127, -128), (127, 127)):
        fa, fb = np.full(a_shape, fill_a, np.int8), np.full(b_shape, fill_b, np.int8)
        np.testing.assert_array_equal(run(fa, fb), matmul_int_ref(fa, fb))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding"),
    [
        ((1, 3, 16, 16), (8, 3, 4, 4), (4, 4), (0, 0)),
        ((2, 4, 9, 7), (5, 4, 3, 3), (1, 1), (1, 1)),
        ((1, 2, 10, 11), (3, 2, 3, 2), (2, 3), (0, 1, 2, 0)),
    ],
)
def test_int8_conv2d_as_tvm_legalizes_it(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, x_shape).astype(np.int8)
    w = rng.integers(-128, 128, w_shape).astype(np.int8)
    run = build(conv2d_legalized, [x, w], stride, padding)
    np.testing.assert_array_equal(run(x, w), conv2d_int_ref(x, w, stride, padding))
    x_min, w_min = np.full(x_shape, -128, np.int8), np.full(w_shape, -128, np.int8)
    np.testing.assert_array_equal(run(x_min, w_min), conv2d_int_ref(x_min, w_min, stride, padding))


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "scales"),
    [
        ((3, 49, 16), (3, 49, 16), (0.05, 0.03, 0.06)),
        ((2, 1, 16), (5, 16), (0.1, 0.1, 0.02)),
        ((16,), (4, 16), (0.02, 0.08, 0.1)),
        ((2, 8, 16), (2, 8, 16), (0.4, 0.03, 0.0005)),  # 128·(Ma + Mb) ≥ 2^31: the int64 sum
    ],
)
def test_add_int(a_shape, b_shape, scales):
    rng = np.random.default_rng(9)
    a = rng.integers(-128, 128, a_shape).astype(np.int8)
    b = rng.integers(-128, 128, b_shape).astype(np.int8)
    run = build(add_int, [a, b], *scales)
    ref = add_int_ref(a, b, *scales)
    np.testing.assert_array_equal(run(a, b), ref)
    exact = np.clip((scales[0] * a.astype(float) + scales[1] * b) / scales[2], -128, 127)
    assert np.abs(ref - exact).max() <= 0.5 + 1e-3
    for fa, fb in ((-128, -128), (127, 127), (127, -128)):
        ea, eb = np.full(a_shape, fa, np.int8), np.full(b_shape, fb, np.int8)
        np.testing.assert_array_equal(run(ea, eb), add_int_ref(ea, eb, *scales))


@pytest.mark.parametrize(("shape", "axis"), [((2, 49, 16), 1), ((3, 64), -1), ((1, 1, 192), 1)])
def test_mean_int(shape, axis):
    x = np.random.default_rng(10).integers(-128, 128, shape).astype(np.int8)
    for fill in (None, -128, 127):
        data = x if fill is None else np.full(shape, fill, np.int8)
        for in_scale, out_scale in ((0.05, 0.05), (0.1, 0.01)):
            got = run_te(mean_int, [data], axis, in_scale, out_scale)
            ref = mean_int_ref(data, axis, in_scale, out_scale)
            np.testing.assert_array_equal(got, ref)
            exact = data.astype(float).mean(axis) * in_scale / out_scale
            assert np.abs(ref - np.clip(exact, -128, 127)).max() <= 0.5 + 1e-6


# ---------------------------------------------------------------- integration


def test_emit_te_int64_shapes():
    """Through Relax ``emit_te`` (int64 shapes, per-channel Relax constants)."""
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (1, 5, 16)).astype(np.int8)
    w = rng.integers(-128, 128, (16, 16)).astype(np.int8)
    g, b = layernorm_int_params(*ln_params(16, 11), 0.04)
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType((1, 5, 16), "int8"))
    with bb.function("main", [xv]):
        y = bb.emit_te(layernorm_int, xv, relax.const(g), relax.const(b), 1e-6, 0.05)
        y = bb.emit_te(softmax_int, y, 0.04)
        y = bb.emit_te(gelu_int, y, 1 / 128, 1 / 128)
        y = bb.emit_te(matmul_int, y, relax.const(w))
        bb.emit_func_output(y)
    ex = tvm.compile(bb.get(), target=TARGET)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    ref = layernorm_int_ref(x, g, b, 1e-6, 0.05)
    ref = matmul_int_ref(gelu_int_ref(softmax_int_ref(ref, 0.04), 1 / 128, 1 / 128), w)
    np.testing.assert_array_equal(got, ref)


def test_plain_c_kernels_bit_exact(tmp_path):
    """The project's C path (Relax lowering → plain C → host cc) matches the numpy twins."""
    rng = np.random.default_rng(12)
    x = int8_rows(49, seed=12).reshape(3, 7, 49)
    acc = int32_extremes()
    m, shift = quantize_multipliers(np.geomspace(1e-6, 2.0, 16))
    g, b = layernorm_int_params(*ln_params(49, 12), 0.04)
    img = rng.integers(-128, 128, (1, 3, 9, 9)).astype(np.int8)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
    cases = {
        "softmax_int": (softmax_int, [x], (0.05,), softmax_int_ref),
        "gelu_int": (gelu_int, [x], (0.05, 0.04), gelu_int_ref),
        "layernorm_int": (layernorm_int, [x, g, b], (1e-6, 0.05), layernorm_int_ref),
        "add_int": (add_int, [x, x[:1]], (0.05, 0.03, 0.07), add_int_ref),
        "mean_int": (mean_int, [x], (1, 0.05, 0.02), mean_int_ref),
        "requantize": (requantize, [acc, m, shift], ("int8",), requantize_ref),
        "conv2d_legalized": (conv2d_legalized, [img, w], ((2, 2), (1, 1)), conv2d_int_ref),
        "matmul_int": (matmul_int, [x, np.ascontiguousarray(x[0].T)], (), matmul_int_ref),
    }
    bb = relax.BlockBuilder()
    params = {
        name: [
            relax.Var(f"{name}{i}", relax.TensorType(a.shape, str(a.dtype)))
            for i, a in enumerate(inputs)
        ]
        for name, (_, inputs, _, _) in cases.items()
    }
    with bb.function("main", [p for ps in params.values() for p in ps]):
        outs = [bb.emit_te(op, *params[name], *args) for name, (op, _, args, _) in cases.items()]
        bb.emit_func_output(relax.Tuple(outs))
    lowered = get_pipeline(build_vm=False)(bb.get())
    funcs = {gv.name_hint: f for gv, f in lowered.functions.items() if isinstance(f, tirx.PrimFunc)}
    assert set(funcs) == set(cases)
    kernels = lower_kernels(funcs)
    source = emit_c(kernels)
    assert "float" not in source and "double" not in source
    lib = load_c_kernels(source, tmp_path, "ops")
    for name, (_, inputs, args, ref_fn) in cases.items():
        ref = ref_fn(*inputs, *args)
        out = np.zeros(ref.shape, ref.dtype)
        work = [np.zeros(ws.elements, ws.dtype) for ws in kernels[name].workspaces]
        arrays = [np.ascontiguousarray(a) for a in inputs] + [out, *work]
        getattr(lib, kernels[name].symbol)(*[a.ctypes.data_as(ctypes.c_void_p) for a in arrays])
        np.testing.assert_array_equal(out, ref, err_msg=name)
