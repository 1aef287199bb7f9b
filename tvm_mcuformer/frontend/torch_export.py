"""``torch.export`` programs (``.pt2``) into Relax.

The import keeps where each tensor came from: ``main`` carries the attribute
:data:`SOURCE_ATTR`, a map from a Relax variable's name to the module path and
ATen operator of the exported node that produced it (``"blocks.0.mlp.1
(aten.tanh)"``, from ``torch.export``'s ``nn_module_stack`` metadata), so that
later stages can name the place in the user's model in their errors.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
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
    mod = importer.from_exported_program(
        program.run_decompositions(),
        keep_params_as_input=False,
        unwrap_unit_return_tuple=False,
        no_bind_return_tuple=False,
        custom_convert_map=None,
    )
    sources = {}
    for node, expr in importer.env.items():
        where = _where(node) if hasattr(node, "meta") else None
        if where is not None and isinstance(expr, relax.Var):
            sources[expr.name] = where
    out = tvm.IRModule(dict(mod.functions.items()))
    gv = out.get_global_var("main")
    out[gv] = mod["main"].with_attr(SOURCE_ATTR, sources)
    return out


@contextlib.contextmanager
def captured_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """Keep the records of logger ``name`` (and its children) off stderr; yield them.

    torch logs a whole traceback as a warning before raising on a corrupt file; the
    caller turns the failure into one line instead.
    """
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(name)
    saved = (logger.handlers[:], logger.propagate)
    logger.handlers[:] = [_Keep()]
    logger.propagate = False
    try:
        yield records
    finally:
        logger.handlers[:], logger.propagate = saved


def import_pt2(path: Path) -> tvm.IRModule:
    """Load a saved ``torch.export`` program and convert it with weights as constants."""
    import torch

    try:
        with captured_logs("torch.export"):
            program = torch.export.load(str(path))
    except Exception as err:  # torch raises several unrelated types for bad files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"cannot read {str(path)!r} as a torch.export program ({reason}): save one with "
            "torch.export.save(torch.export.export(model, (example,)), path)"
        ) from None
    _check_static(program, path)
    return _convert(program)


def _check_static(program, path: Path) -> None:
    """Refuse a program whose user inputs have symbolic dimensions, naming them."""
    import torch

    for spec, node in zip(
        program.graph_signature.input_specs,
        [n for n in program.graph.nodes if n.op == "placeholder"],
        strict=False,
    ):
        value = node.meta.get("val")
        if spec.kind.name != "USER_INPUT" or not isinstance(value, torch.Tensor):
            continue
        if not all(isinstance(d, int) for d in value.shape):
            raise ValueError(
                f"{str(path)!r}: input {node.name!r} has dynamic shape {tuple(value.shape)}: "
                "export the model with a fixed input shape (no dynamic_shapes)"
            )
