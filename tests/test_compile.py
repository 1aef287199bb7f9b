"""The compile path: Relax import → TIR → plain C with a static arena → artifact."""

from __future__ import annotations

import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
import tvm

import tvm_mcuformer
from tvm_mcuformer.boards import parse_size
from tvm_mcuformer.cli import main as cli_main
from tvm_mcuformer.compiler import BudgetError, CompileOptions, compile_model
from tvm_mcuformer.frontend import import_model
from tvm_mcuformer.models import build_vit
from tvm_mcuformer.training import export_pt2

from .conftest import TINY_VIT as TINY
from .conftest import host_run


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory):
    torch.manual_seed(0)
    model = build_vit(TINY).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.pt2"
    export_pt2(model, torch.zeros(1, 1, 8, 8), path)
    return path, model


@pytest.fixture(scope="module")
def tiny_artifact(tiny_pt2, tmp_path_factory):
    path, _ = tiny_pt2
    out = tmp_path_factory.mktemp("artifact") / "tiny.tar"
    compile_model(path, CompileOptions(board="mps2-an500", quantize="none")).write(out)
    return out


PLAIN_SCRIPT = """
import sys

import numpy as np
import torch
import tvm
import tvm_mcuformer  # registers the pipeline
from tvm.relax.pipeline import get_pipeline
from tvm_mcuformer.frontend import import_model

mod = import_model(sys.argv[1]).mod
xs = np.random.RandomState(0).randn(16, 1, 1, 8, 8).astype("float32")
target = tvm.target.Target({"kind": "llvm"})
pipe = get_pipeline("mcuformer", token_overwrite=False, quantize="none")
vm = tvm.relax.VirtualMachine(tvm.compile(mod, target, relax_pipeline=pipe), tvm.cpu())
np.save(sys.argv[2], vm["main"](tvm.runtime.tensor(xs[0]))[0].numpy())
pipe = get_pipeline("mcuformer", quantize="int8", calibration=xs, decompose_patch=False)
vm = tvm.relax.VirtualMachine(tvm.compile(mod, target, relax_pipeline=pipe), tvm.cpu())
q = np.clip(np.round(xs[0] / np.abs(xs).max() * 127), -128, 127).astype("int8")
out = vm["main"](tvm.runtime.tensor(q))
np.save(sys.argv[3], (out if hasattr(out, "numpy") else out[0]).numpy())
"""


def test_registered_pipeline_takes_options_in_a_plain_script(tiny_pt2, tmp_path):
    """``tvm.compile(mod, target, relax_pipeline=get_pipeline("mcuformer", **options))``."""
    path, model = tiny_pt2
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    float_out, int8_out = tmp_path / "float.npy", tmp_path / "int8.npy"
    subprocess.run(
        [sys.executable, str(script), str(path), str(float_out), str(int8_out)],
        check=True,
        timeout=600,
    )
    x = np.random.RandomState(0).randn(16, 1, 1, 8, 8).astype("float32")[0]
    ref = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.load(float_out), ref, atol=1e-5)
    int8 = np.load(int8_out)
    assert int8.dtype == np.int8 and int8.shape == ref.shape
    assert tvm.tirx.get_tir_pipeline("mcuformer_c") is not None
    assert tvm_mcuformer.__version__


def test_compile_runs_the_registered_pipeline_with_its_options(tiny_pt2, monkeypatch):
    from tvm_mcuformer import compiler
    from tvm_mcuformer.lowering import pipeline

    assert tvm.relax.pipeline.PIPELINE_MAP["mcuformer"] is pipeline.get_pipeline
    calls = []

    def spy(**kwargs):
        calls.append(kwargs)
        return pipeline.get_pipeline(**kwargs)

    monkeypatch.setattr(compiler, "get_pipeline", spy)
    opts = CompileOptions(quantize="none", token_overwrite=False, decompose_patch=False)
    art = compile_model(tiny_pt2[0], opts)
    assert [(c["quantize"], c["token_overwrite"], c["decompose_patch"]) for c in calls] == [
        ("none", False, False)
    ]
    assert art.metadata["memory"]["token_overwrite_layers"] == []


def test_host_build_of_generated_c_matches_relax_vm(tiny_pt2, tiny_artifact, tmp_path):
    path, _ = tiny_pt2
    xs = np.random.RandomState(1).randn(8, 1, 1, 8, 8).astype("float32")
    host = host_run(tiny_artifact, tmp_path, xs, np.float32)
    exe = tvm.compile(
        import_model(path).mod, tvm.target.Target({"kind": "llvm"}), relax_pipeline="mcuformer"
    )
    vm = tvm.relax.VirtualMachine(exe, tvm.cpu())
    ref = np.stack([vm["main"](tvm.runtime.tensor(x))[0].numpy().ravel() for x in xs])
    np.testing.assert_allclose(host, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(host).max() > 0


def test_artifact_layout_and_metadata(tiny_artifact):
    with tarfile.open(tiny_artifact) as tar:
        names = set(tar.getnames())
        meta = __import__("json").loads(tar.extractfile("metadata.json").read())
        kernels = tar.extractfile("codegen/host/src/mcuformer_kernels.c").read().decode()
    assert {
        "metadata.json",
        "codegen/host/include/mcuformer_model.h",
        "codegen/host/src/mcuformer_model.c",
        "codegen/host/src/mcuformer_kernels.c",
        "src/relax.txt",
    } <= names
    assert meta["inputs"] == [{"name": "x", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert meta["outputs"][0]["shape"] == [1, 10]
    mem = meta["memory"]
    assert 0 < mem["lower_bound_bytes"] <= mem["planned_arena_bytes"] <= mem["naive_bytes"]
    params = sum(p.numel() for p in build_vit(TINY).parameters())
    assert params * 4 <= mem["weight_bytes"] < params * 4 + 16 * len(meta["ops"]) * 3
    assert meta["macs"] > 0 and len(meta["ops"]) > 5
    for forbidden in ("TVMFFI", "__tvm_ffi", "tvm/runtime", "TVMBackend"):
        assert forbidden not in kernels


def test_generated_c_cross_compiles_for_cortex_m(tiny_artifact, tmp_path):
    with tarfile.open(tiny_artifact) as tar:
        tar.extractall(tmp_path, filter="data")
    sources = sorted((tmp_path / "codegen/host/src").glob("*.c"))
    assert len(sources) >= 3, sources  # kernels, driver, math
    for src in sources:
        subprocess.run(
            [
                "arm-none-eabi-gcc",
                "-mcpu=cortex-m7",
                "-mthumb",
                "-mfpu=fpv5-sp-d16",
                "-mfloat-abi=hard",
                "-O2",
                "-std=c11",
                "-Wall",
                "-Werror",
                f"-I{tmp_path}/codegen/host/include",
                "-c",
                str(src),
                "-o",
                str(src) + ".o",
            ],
            check=True,
        )


def test_over_budget_model_fails_with_budget_message_and_no_artifact(tiny_pt2, tmp_path, capsys):
    out = tmp_path / "too_big.tar"
    code = cli_main(
        ["compile", str(tiny_pt2[0]), "-o", str(out), "--sram", "2KiB", "--quantize", "none"]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "budget" in err and "2048" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(BudgetError, match="flash budget"):
        compile_model(tiny_pt2[0], CompileOptions(flash_bytes=1024, quantize="none"))


def test_bad_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.txt"
    bad.write_text("not a model")
    assert cli_main(["compile", str(bad), "-o", str(tmp_path / "a.tar")]) == 2
    assert "unknown model type" in capsys.readouterr().err
    broken = tmp_path / "model.pt2"
    broken.write_bytes(b"garbage")
    assert cli_main(["compile", str(broken), "-o", str(tmp_path / "a.tar")]) == 2
    assert "torch.export" in capsys.readouterr().err
    assert not (tmp_path / "a.tar").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("320KiB", 327680), ("1MiB", 1048576), ("4096", 4096), ("8k", 8192)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError, match="320KiB"):
        parse_size("lots")


def test_tensor_names_in_metadata_are_unique_and_stable(tiny_pt2):
    """Names are call index + op kind, the same on every compile, never Relax's ``lv``."""
    arts = [compile_model(tiny_pt2[0], CompileOptions(quantize="none")).metadata for _ in range(2)]
    meta = arts[0]
    arena = [t["name"] for t in meta["memory"]["tensors"]]
    outputs = [name for op in meta["ops"] for name in op["outputs"]]
    io = [t["name"] for t in (*meta["inputs"], *meta["outputs"])]
    for names in (arena, outputs, io, meta["memory"]["token_overwrite_layers"]):
        assert len(names) == len(set(names)), names
    assert arena and not any(n.startswith("lv") for n in arena + outputs)
    assert all(n.startswith(f"c{i}.") for i, n in enumerate(outputs))
    assert arts[1]["memory"]["tensors"] == meta["memory"]["tensors"]
