"""The memory report: TVM's static plan and the paper's M as baselines, the arena timeline."""

from __future__ import annotations

import io
import json
import tarfile
from types import SimpleNamespace

import matplotlib.image
import pytest
import torch

from tvm_mcuformer import compiler
from tvm_mcuformer.artifact import Artifact
from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.compiler import CompileOptions, compile_model
from tvm_mcuformer.data import load_split
from tvm_mcuformer.lowering import KernelCall, KernelProgram, Tensor, TensorKind
from tvm_mcuformer.models import build_vit
from tvm_mcuformer.planner import plan_arena
from tvm_mcuformer.planner.baselines import paper_m_bytes, tvm_static_plan_bytes
from tvm_mcuformer.training import export_pt2

from .conftest import TINY_VIT as TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPORT_KEYS = {
    "planned arena": "planned_arena_bytes",
    "liveness lower bound": "lower_bound_bytes",
    "TVM static plan": "tvm_static_plan_bytes",
    "naive (no reuse)": "naive_bytes",
    "paper M": "paper_m_bytes",
    "weights (flash)": "weight_bytes",
}


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt2"
    return export_pt2(build_vit(TINY).eval(), torch.zeros(1, 1, 8, 8), path)


def _spy_on_lower(mp: pytest.MonkeyPatch) -> list:
    """Record what :func:`compile_model` lowers: a list that gets ``(lowered, program)``."""
    seen = []
    real = compiler.lower

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    mp.setattr(compiler, "lower", spy)
    return seen


@pytest.fixture(scope="module")
def tiny_cli(tiny_pt2, tmp_path_factory):
    """``tvm-mcuformer compile`` of the float tiny ViT: (artifact, stdout, (lowered, program))."""
    out = tmp_path_factory.mktemp("cli") / "tiny.tar"
    capture = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdout", capture)
        seen = _spy_on_lower(mp)
        code = cli_main(["compile", str(tiny_pt2), "-o", str(out), "--quantize", "none"])
    assert code == 0
    return out, capture.getvalue(), seen[0]


@pytest.fixture(scope="module")
def int8_compiled(digits_vit):
    """The int8 digits ViT compiled: (artifact, (lowered, program))."""
    x, _ = load_split("digits", "train")
    with pytest.MonkeyPatch.context() as mp:
        seen = _spy_on_lower(mp)
        artifact = compile_model(digits_vit.pt2, CompileOptions(calibration=x[:64, None]))
    return artifact, seen[0]


def _activation_peak(program: KernelProgram) -> int:
    """Most bytes of activation tensors live at one call, each tensor counted whole."""
    lifetime: dict[Tensor, list[int]] = {}
    for i, call in enumerate(program.calls):
        for t in call.args:
            if t.root.kind == TensorKind.ACTIVATION:
                lifetime.setdefault(t.root, [i, i])[1] = i
    return max(
        sum(t.nbytes for t, (s, e) in lifetime.items() if s <= i <= e)
        for i in range(len(program.calls))
    )


def _check_tvm_plan(lowered, program) -> None:
    """The documented relation between TVM's plan, our liveness and the lower bound."""
    plan = plan_arena(program)
    tvm_bytes = tvm_static_plan_bytes(lowered)
    activations = {t.root for t in program.tensors if t.root.kind == TensorKind.ACTIVATION}
    max_workspace = max(sum(w.nbytes for w in c.workspaces) for c in program.calls)
    peak = _activation_peak(program)
    assert 0 < peak <= tvm_bytes <= sum(t.nbytes for t in activations)
    assert tvm_bytes >= plan.lower_bound_bytes - max_workspace


def test_tvm_static_plan_bounds_float(tiny_cli):
    _check_tvm_plan(*tiny_cli[2])


def test_tvm_static_plan_bounds_int8(int8_compiled):
    _check_tvm_plan(*int8_compiled[1])


def _t(name: str, shape, kind: TensorKind, dtype="float32", view_of=None) -> Tensor:
    return Tensor(0, name, shape, dtype, kind, view_of)


def _call(args: list[Tensor]) -> KernelCall:
    return KernelCall(SimpleNamespace(name="k"), args, 1)


def _program(calls: list[KernelCall]) -> KernelProgram:
    return KernelProgram([], calls, [], [], {})


def test_paper_m_matches_hand_computation():
    x = _t("x", (1, 4, 8), TensorKind.INPUT)  # 128 B
    w1 = _t("w1", (8, 16), TensorKind.CONSTANT, "int8")  # 128 B
    b1 = _t("b1", (16,), TensorKind.CONSTANT, "int32")  # 64 B
    a = _t("a", (4, 16), TensorKind.ACTIVATION)  # 256 B
    sq = _t("sq", (4, 4), TensorKind.ACTIVATION)  # 64 B
    a_flat = _t("a_flat", (1, 64), TensorKind.ACTIVATION, view_of=a)  # a view: 256 B
    w2 = _t("w2", (64, 10), TensorKind.CONSTANT)  # 2560 B
    out = _t("out", (1, 10), TensorKind.OUTPUT)  # 40 B
    dense = _call([x, w1, b1, a])  # 192 + max(128, 256)
    square = _call([a, a, sq])  # 0 + max(256, 64): ``a`` passed twice counts once
    head = _call([a_flat, w2, out])  # 2560 + max(256, 40)
    assert paper_m_bytes(_program([dense])) == 192 + 256
    assert paper_m_bytes(_program([square])) == 256
    assert paper_m_bytes(_program([head])) == 2560 + 256
    assert paper_m_bytes(_program([dense, square, head])) == 2816
    assert paper_m_bytes(_program([])) == 0


def _check_png(data: bytes) -> None:
    assert data.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600


def test_cli_writes_timeline_in_and_beside_the_artifact(tiny_cli):
    out = tiny_cli[0]
    beside = out.with_name("tiny.memory.png")
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.memory.png", "tiny.tar"]
    artifact = Artifact.read(out)
    png = artifact.files["memory_timeline.png"]
    assert isinstance(png, bytes) and beside.read_bytes() == png
    assert isinstance(artifact.files["src/lowered.txt"], str)
    _check_png(png)


def test_metadata_and_cli_report_the_baselines(tiny_cli):
    out, stdout, (lowered, program) = tiny_cli
    with tarfile.open(out) as tar:
        mem = json.loads(tar.extractfile("metadata.json").read())["memory"]
    assert all(isinstance(mem[key], int) and mem[key] > 0 for key in REPORT_KEYS.values())
    assert mem["tvm_static_plan_bytes"] == tvm_static_plan_bytes(lowered)
    assert mem["paper_m_bytes"] == paper_m_bytes(program)
    lines = {line.strip().rsplit(" ", 2)[0].strip(): line for line in stdout.splitlines()}
    for label, key in REPORT_KEYS.items():
        assert lines[label].split()[-2:] == [str(mem[key]), "B"], (label, stdout)
    assert str(out.with_name("tiny.memory.png")) in stdout


def test_int8_artifact_reports_baselines_and_timeline(int8_compiled):
    artifact, (lowered, program) = int8_compiled
    mem = artifact.metadata["memory"]
    assert mem["tvm_static_plan_bytes"] == tvm_static_plan_bytes(lowered)
    assert mem["paper_m_bytes"] == paper_m_bytes(program)
    assert mem["tvm_static_plan_bytes"] >= mem["lower_bound_bytes"] - max(
        op["workspace_bytes"] for op in artifact.metadata["ops"]
    )
    _check_png(artifact.files["memory_timeline.png"])


def test_extract_is_atomic(tmp_path):
    artifact = Artifact({}, {"plot.png": PNG_MAGIC})
    blocked = tmp_path / "plot.png"
    blocked.mkdir()  # a directory where the file should go: the rename fails
    with pytest.raises(OSError):
        artifact.extract("plot.png", blocked)
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"] and blocked.is_dir()
    assert artifact.extract("plot.png", tmp_path / "ok.png").read_bytes() == PNG_MAGIC
