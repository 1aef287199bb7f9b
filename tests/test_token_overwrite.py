"""Token overwrite: row-wise kernels written over their own input, against numpy."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from torch import nn
from tvm import te

from tvm_mcuformer import ops
from tvm_mcuformer.codegen.tir_to_c import emit_c
from tvm_mcuformer.frontend.model import ImportedModel
from tvm_mcuformer.lowering import get_pipeline, lower
from tvm_mcuformer.lowering.kernels import lower_kernels
from tvm_mcuformer.planner import plan_arena
from tvm_mcuformer.quantize import quantize_model
from tvm_mcuformer.schedules import inline_elementwise
from tvm_mcuformer.schedules.token_overwrite import schedule_token_overwrite

ROWS = 16
M_MULT, SHIFT = 1 << 30, 38  # acc / 256, rounded


def _linear(k: int, m: int):
    x = te.placeholder((ROWS, k), "int8", name="x")
    w = te.placeholder((k, m), "int8", name="w")
    b = te.placeholder((m,), "int32", name="b")
    acc = ops.matmul_int(x, w)
    biased = te.compute(acc.shape, lambda i, j: acc[i, j] + b[j], name="bias")
    out = ops.requantize(biased, M_MULT, SHIFT)
    return inline_elementwise(te.create_prim_func([x, w, b, out]))


def _run_aliased(kernel, k: int, m: int, x, w, b, tmp_path) -> np.ndarray:
    """Call the C kernel with the output over the input, as the planner places them."""
    src = tmp_path / "k.c"
    src.write_text(emit_c({"k": kernel}))
    (tmp_path / "mcuformer_math.h").write_text("#include <math.h>\n")
    region, offset = max(ROWS * k, ROWS * m), max(0, ROWS * (m - k))
    ws = ", ".join(f"ws{i}" for i in range(len(kernel.workspaces)))
    decls = "".join(f"static int8_t ws{i}[{w.nbytes}];\n" for i, w in enumerate(kernel.workspaces))
    harness = tmp_path / "main.c"
    harness.write_text(
        "#include <stdio.h>\n#include <stdint.h>\n"
        f"void {kernel.symbol}({', '.join(['void*'] * (4 + len(kernel.workspaces)))});\n"
        f"static int8_t region[{region}]; static int8_t w[{k * m}]; static int32_t b[{m}];\n"
        + decls
        + "int main(void) {\n"
        f"  fread(region + {offset}, 1, {ROWS * k}, stdin); fread(w, 1, sizeof w, stdin);\n"
        "  fread(b, 1, sizeof b, stdin);\n"
        f"  {kernel.symbol}(region + {offset}, w, b, region{', ' if ws else ''}{ws});\n"
        f"  fwrite(region, 1, {ROWS * m}, stdout); return 0; }}\n"
    )
    exe = tmp_path / "k"
    subprocess.run(
        ["cc", "-O2", "-std=c11", f"-I{tmp_path}", str(src), str(harness), "-o", str(exe)],
        check=True,
    )
    data = x.tobytes() + w.tobytes() + b.tobytes()
    out = subprocess.run([str(exe)], input=data, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int8).reshape(ROWS, m)


@pytest.mark.parametrize(
    ("k", "m"), [(64, 32), (48, 48), (32, 96)], ids=["out<in", "out=in", "out>in"]
)
def test_row_wise_linear_written_over_its_input_matches_numpy(k, m, tmp_path):
    rng = np.random.RandomState(k + m)
    x = rng.randint(-128, 128, (ROWS, k)).astype(np.int8)
    x[0] = 127
    x[1] = -128
    w = rng.randint(-128, 128, (k, m)).astype(np.int8)
    b = rng.randint(-5000, 5000, (m,)).astype(np.int32)
    ref = ops.requantize_ref(ops.matmul_int_ref(x, w) + b, M_MULT, SHIFT)

    scheduled = schedule_token_overwrite(_linear(k, m))
    assert scheduled is not None
    kernel = lower_kernels({"k": scheduled})["k"]
    assert kernel.token_overwrite
    # One row of scratch (m int8) is all the extra memory the overwrite needs.
    assert m in [ws.nbytes for ws in kernel.workspaces]
    np.testing.assert_array_equal(_run_aliased(kernel, k, m, x, w, b, tmp_path), ref)


def test_without_the_row_scratch_overwriting_corrupts(tmp_path):
    """The schedule is what makes the overlay safe: the plain kernel gets it wrong."""
    k, m = 32, 96
    rng = np.random.RandomState(0)
    x = rng.randint(-128, 128, (ROWS, k)).astype(np.int8)
    w = rng.randint(-128, 128, (k, m)).astype(np.int8)
    b = np.zeros(m, np.int32)
    ref = ops.requantize_ref(ops.matmul_int_ref(x, w) + b, M_MULT, SHIFT)
    plain = lower_kernels({"k": _linear(k, m)})["k"]
    assert not plain.token_overwrite
    assert not np.array_equal(_run_aliased(plain, k, m, x, w, b, tmp_path), ref)


def test_non_row_wise_kernels_are_left_alone():
    a = te.placeholder((ROWS, 8), "int8", name="a")
    t = te.compute((8, ROWS), lambda i, j: a[j, i], name="transpose")
    assert schedule_token_overwrite(te.create_prim_func([a, t])) is None
    s = te.placeholder((ROWS, 8), "int8", name="s")
    shifted = te.compute((ROWS, 8), lambda i, j: s[(i + 1) % ROWS, j], name="roll")
    assert schedule_token_overwrite(te.create_prim_func([s, shifted])) is None


class TokenMLP(nn.Module):
    """LN → fc1 → GeLU → fc2 → LN on 16 tokens: the MLP holds the memory peak."""

    def __init__(self) -> None:
        super().__init__()
        self.ln, self.fc1, self.fc2 = nn.LayerNorm(32), nn.Linear(32, 128), nn.Linear(128, 32)
        self.act, self.out = nn.GELU(), nn.LayerNorm(32)

    def forward(self, x):
        return self.out(self.fc2(self.act(self.fc1(self.ln(x)))))


def test_token_overwrite_lowers_the_arena_of_an_mlp():
    from tvm.relax.frontend.torch import from_exported_program

    torch.manual_seed(0)
    ep = torch.export.export(TokenMLP().eval(), (torch.zeros(1, ROWS, 32),))
    model = ImportedModel.from_module(from_exported_program(ep, keep_params_as_input=False))
    samples = np.random.RandomState(0).randn(16, 1, ROWS, 32).astype("float32")
    q = quantize_model(model, samples, progress=False)
    arenas = {}
    for overwrite in (False, True):
        _, program = lower(q, get_pipeline(token_overwrite=overwrite, build_vm=False))
        plan = plan_arena(program, token_overwrite=overwrite)
        arenas[overwrite] = (plan.arena_bytes, plan.lower_bound_bytes)
    # Without: LN out + fc1 out + GeLU out live together; with: max(in, out) + a row.
    assert arenas[True][0] < 0.7 * arenas[False][0], arenas
    assert arenas[True][0] <= 1.05 * arenas[True][1]
