"""``torch.export`` programs (``.pt2``) into Relax."""

from __future__ import annotations

from pathlib import Path

import tvm


def import_pt2(path: Path) -> tvm.IRModule:
    """Load a saved ``torch.export`` program and convert it with weights as constants."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    try:
        program = torch.export.load(str(path))
    except Exception as err:  # torch raises several unrelated types for bad files
        raise ValueError(
            f"cannot read {str(path)!r} as a torch.export program: {err}; "
            "save one with torch.export.save(torch.export.export(model, (example,)), path)"
        ) from err
    return from_exported_program(program, keep_params_as_input=False)
