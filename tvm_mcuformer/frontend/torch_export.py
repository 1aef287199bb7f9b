"""``torch.export`` programs (``.pt2``) into Relax.

The import keeps where each tensor came from: ``main`` carries the attribute
:data:`SOURCE_ATTR`, a map from a Relax variable's name to the module path and
ATen operator of the exported node that produced it (``"blocks.0.mlp.1
(aten.tanh)"``, from ``torch.export``'s ``nn_module_stack`` metadata), so that
later stages can name the place in the user's model in their errors.
"""

from __future__ import annotations

from pathlib import Path

import tvm
from tvm import relax

SOURCE_ATTR = "mcuformer.source"


def _where(node) -> str | None:
    """``"module.path (aten.op)"`` of an FX node, or ``None`` when torch kept no module."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [path for path, _ in stack.values() if path]
    if not paths:
        return None
    return f"{paths[-1]} ({str(node.target).removesuffix('.default')})"


def _convert(program) -> tvm.IRModule:
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    importer = ExportedProgramImporter()
    mod = importer.from_exported_program(program.run_decompositions(), False, False, False, None)
    sources = {}
    for node, expr in importer.env.items():
        where = _where(node) if hasattr(node, "meta") else None
        if where is not None and isinstance(expr, relax.Var):
            sources[expr.name] = where
    out = tvm.IRModule(dict(mod.functions.items()))
    gv = out.get_global_var("main")
    out[gv] = mod["main"].with_attr(SOURCE_ATTR, sources)
    return out


def import_pt2(path: Path) -> tvm.IRModule:
    """Load a saved ``torch.export`` program and convert it with weights as constants."""
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as err:  # torch raises several unrelated types for bad files
        raise ValueError(
            f"cannot read {str(path)!r} as a torch.export program: {err}; "
            "save one with torch.export.save(torch.export.export(model, (example,)), path)"
        ) from err
    return _convert(program)
