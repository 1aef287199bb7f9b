"""Imports run down the pipeline: no stage imports a later one (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tvm_mcuformer"

# Stage of every top-level module or subpackage, in pipeline order; a module may import
# its own stage and earlier ones only. Shared leaves (specs, boards, file I/O, integer
# operators, data, torch models and training) are stage 0.
STAGES = {
    **dict.fromkeys(("tensor_spec", "boards", "fileio", "ops", "data", "models", "training"), 0),
    "frontend": 1,
    "schedules": 2,  # TIR kernels and schedules; Relax passes insert and schedule them
    "relax_passes": 3,
    "quantize": 4,
    "lowering": 5,
    "planner": 6,
    "codegen": 7,
    "artifact": 8,
    "compiler": 9,
    "micro": 10,
    "search": 11,
    "demo": 12,
    "cli": 13,
}


def _stage_of(parts: list[str]) -> str:
    """The stage key of a module path inside the package (``['lowering', 'lower']``)."""
    return parts[0]


def imported_stages(path: Path, text: str | None = None) -> list[tuple[str, int]]:
    """``(stage, line)`` of every package-internal import in the module at ``path``."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    package = list(rel[:-1]) if path.name != "__init__.py" else list(rel[:-1])
    tree = ast.parse(text if text is not None else path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # ``from .. import x``: x names the module
                    target = [node.names[0].name]
            elif node.module and node.module.split(".")[0] == "tvm_mcuformer":
                target = node.module.split(".")[1:] or [node.names[0].name]
            else:
                continue
            found.append((_stage_of(target), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tvm_mcuformer" and len(parts) > 1:
                    found.append((_stage_of(parts[1:]), node.lineno))
    return found


def upward_imports(path: Path, text: str | None = None) -> list[str]:
    """Imports in ``path`` of a later stage than its own, as ``file:line: a -> b`` lines."""
    own = _stage_of(list(path.relative_to(PACKAGE).with_suffix("").parts))
    return [
        f"{path.relative_to(PACKAGE)}:{line}: {own} imports {stage}"
        for stage, line in imported_stages(path, text)
        if stage != own and STAGES[stage] > STAGES[own]
    ]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_has_a_stage():
    stages = {_stage_of(list(p.relative_to(PACKAGE).with_suffix("").parts)) for p in _modules()}
    assert stages <= set(STAGES), stages - set(STAGES)
    assert len(_modules()) > 40


def test_no_stage_imports_a_later_one():
    violations = [v for p in _modules() for v in upward_imports(p)]
    assert violations == []


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("lowering/lower.py", "from ..codegen.tir_to_c import emit_c"),
        ("schedules/inline.py", "from tvm_mcuformer.codegen import tir_to_c"),
        ("planner/plan.py", "import tvm_mcuformer.compiler"),
        ("quantize/calibrate.py", "def f():\n    from ..lowering import lower"),
    ],
)
def test_an_added_upward_import_is_caught(module, line):
    path = PACKAGE / module
    assert upward_imports(path, path.read_text() + "\n" + line + "\n")
