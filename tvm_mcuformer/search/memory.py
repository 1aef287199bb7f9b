"""The memory of a subnet as the deployed engine needs it: the compiler's own planner.

The search constrains peak SRAM, so it asks the compiler, not a formula:
each candidate is extracted from a supernet, exported with ``torch.export``,
imported into Relax, and run through the same ``mcuformer`` pipeline as
``tvm-mcuformer compile`` with ``quantize="int8-layout"`` (integer-only with
placeholder scales: memory does not depend on the scales), lowered and planned
exactly as ``compile`` would
(token overwrite and patch decomposition on). ``peak_sram_bytes`` is the
compile budget check's figure: arena + I/O frames + stack reserve; ``flash_bytes``
is weights + code reserve. Results are cached per architecture (≈1 s each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..compiler import CompileOptions, plan_model
from ..frontend.model import ImportedModel
from .space import SearchSpace, SubnetConfig
from .supernet import Supernet


@dataclass(frozen=True)
class SubnetMemory:
    """SRAM and flash a subnet needs on the board, and its planned arena."""

    peak_sram_bytes: int
    flash_bytes: int
    arena_bytes: int

    def fits(self, sram_bytes: int, flash_bytes: int) -> bool:
        return self.peak_sram_bytes <= sram_bytes and self.flash_bytes <= flash_bytes


class PlannerMemory:
    """Callable ``(SubnetConfig) -> SubnetMemory`` for the subnets of ``space``."""

    def __init__(self, space: SearchSpace, board: str = "mps2-an500") -> None:
        self.space = space
        self.options = CompileOptions(board=board, quantize="int8-layout")
        self._supernet = Supernet(space, svd_init=False).eval()  # weights: no effect on memory
        self._cache: dict[SubnetConfig, SubnetMemory] = {}

    def __call__(self, cfg: SubnetConfig) -> SubnetMemory:
        if cfg not in self._cache:
            self._cache[cfg] = self._plan(cfg)
        return self._cache[cfg]

    def _plan(self, cfg: SubnetConfig) -> SubnetMemory:
        from tvm.relax.frontend.torch import from_exported_program

        self.space.check(cfg)
        shape = (1, self.space.in_chans, self.space.img_size, self.space.img_size)
        with torch.no_grad():
            program = torch.export.export(self._supernet.extract(cfg).eval(), (torch.zeros(shape),))
        model = ImportedModel.from_module(
            from_exported_program(program, keep_params_as_input=False)
        )
        memory = plan_model(model, self.options).memory
        return SubnetMemory(
            memory["required_sram_bytes"],
            memory["required_flash_bytes"],
            memory["planned_arena_bytes"],
        )
