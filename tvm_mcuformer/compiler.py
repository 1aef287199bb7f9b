"""``compile``: a model file to a runtime-free C artifact with a static arena.

Data flow (one object per stage)::

    path ─frontend─▶ ImportedModel ─quantize (int8, default)─▶ ImportedModel
         ─lowering─▶ KernelProgram ─planner─▶ ArenaPlan
         ─codegen─▶ Artifact (C sources + metadata.json) ─write─▶ ARTIFACT.tar

A model that cannot fit the board's SRAM or flash budget raises
:class:`BudgetError` before anything is written; for int8 the check runs first
on the model's integer layout (placeholder scales, the same memory), so an
over-budget model is refused before calibration, naming its largest layers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import tvm

from .artifact import Artifact, model_metadata
from .boards import DEFAULT_BOARD, DEFAULT_STACK_RESERVE, Board, get_board
from .codegen.driver import emit_driver, emit_header, layout_weights
from .codegen.tir_to_c import emit_c
from .frontend import ImportedModel, import_model
from .lowering import KernelProgram, TensorKind, get_pipeline, lower
from .lowering.macs import count_macs
from .lowering.pipeline import ATTENTION_MODES, DEFAULT_PATCH_FIELD, QUANTIZE_MODES
from .planner import ALGORITHMS, ArenaPlan, plan_arena
from .planner.baselines import paper_m_bytes, tvm_static_plan_bytes
from .planner.timeline import plot_memory_timeline
from .quantize import QuantConfig, check_calibration, int8_specs
from .quantize.passes import INPUT_SCALES_ATTR

# SRAM the firmware needs beside the arena and the stack: the I/O frames.
FRAME_OVERHEAD = 256
# Flash beside the weights: startup, the C library and the protocol core, plus per kernel
# call its share of the kernels and of the driver (measured: 38.5 KB of code for a
# 13-layer ViT with 318 calls, about 12 KB for the 2-layer demo ViT).
CODE_RESERVE = 16 * 1024
CODE_PER_CALL = 96
TOP_LAYERS = 3
"""How many of the largest layers (by live bytes, by weight bytes) a budget refusal names."""


def code_bytes(program: KernelProgram) -> int:
    """Flash the compiler reserves for the code of ``program`` (an upper estimate)."""
    return CODE_RESERVE + CODE_PER_CALL * len(program.calls)


class BudgetError(ValueError):
    """The model needs more SRAM or flash than the budget allows."""


@dataclass
class CompileOptions:
    """Target and budget of one compilation (``None`` budgets take the board's)."""

    board: str = DEFAULT_BOARD
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    planner: str = "best"
    stack_reserve_bytes: int = DEFAULT_STACK_RESERVE
    token_overwrite: bool = True
    decompose_patch: bool = True
    patch_field: int = DEFAULT_PATCH_FIELD
    attention: str = "rowwise"  # one of lowering.pipeline.ATTENTION_MODES
    io_in_arena: bool = True  # the model input and output are arena tensors
    schedule_kernels: bool = True  # tiled dual-MAC schedules of the int8 dense kernels
    quantize: str = "int8"  # one of lowering.pipeline.QUANTIZE_MODES
    calibration: np.ndarray | None = None  # int8: model inputs stacked on axis 0
    quant: QuantConfig = field(default_factory=QuantConfig)

    def validate(self, model: ImportedModel) -> None:
        """Raise ``ValueError`` for an option no compilation of ``model`` could use (checked
        before any work). Without calibration data, int8 needs ``model`` to carry its file's
        ranges (a fully-int8 ``.tflite``)."""
        get_board(self.board)
        if self.planner not in ALGORITHMS:
            raise ValueError(
                f"unknown planner {self.planner!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"--attention must be one of {', '.join(ATTENTION_MODES)}")
        if self.quantize not in QUANTIZE_MODES:
            raise ValueError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}")
        if self.quantize == "int8" and self.calibration is None and not model.has_file_ranges:
            raise ValueError(
                "int8 quantization needs calibration data: pass --calib DATASET "
                "(digits, mnist5k, imagefolder:PATH or FILE.npz), give a fully-int8 .tflite, "
                "or --quantize none to keep float"
            )

    def pipeline(self, progress: bool = False):
        """The ``mcuformer`` Relax pipeline these options select (no VM build)."""
        return get_pipeline(
            quantize=self.quantize,
            calibration=self.calibration,
            quant_config=self.quant,
            token_overwrite=self.token_overwrite,
            decompose_patch=self.decompose_patch,
            patch_field=self.patch_field,
            schedule_kernels=self.schedule_kernels,
            build_vm=False,
            progress=progress,
            attention=self.attention,
        )

    def resolve(self) -> tuple[Board, int, int]:
        board = get_board(self.board)
        return (
            board,
            self.sram_bytes or board.sram_bytes,
            self.flash_bytes or board.flash_bytes,
        )


def _runtime_file(name: str) -> str:
    return resources.files("tvm_mcuformer.codegen.runtime").joinpath(name).read_text()


def _memory_report(
    lowered: tvm.IRModule, program: KernelProgram, plan: ArenaPlan, opts: CompileOptions
) -> dict:
    """The ``memory`` section of metadata.json: the plan, its baselines and the budget.

    Baselines of the planned arena: ``lower_bound_bytes`` (most bytes live at
    one call), ``naive_bytes`` (every arena tensor in its own buffer),
    ``tvm_static_plan_bytes`` (TVM's StaticPlanBlockMemory on the same lowered
    module; it leaves out kernel workspaces) and ``paper_m_bytes`` (MCUFormer's
    M, which counts a layer's weights as SRAM); see :mod:`.planner.baselines`.
    """
    board, sram, flash = opts.resolve()
    outside = [t for t in (*program.inputs, *program.outputs) if t.root not in plan.offsets]
    io_bytes = sum(t.nbytes for t in outside) + FRAME_OVERHEAD
    required_sram = plan.arena_bytes + io_bytes + opts.stack_reserve_bytes
    return {
        "planned_arena_bytes": plan.arena_bytes,
        "lower_bound_bytes": plan.lower_bound_bytes,
        "naive_bytes": plan.model.naive_bytes,
        "tvm_static_plan_bytes": tvm_static_plan_bytes(lowered),
        "paper_m_bytes": paper_m_bytes(program),
        "planner": plan.algorithm,
        "alignment": plan.alignment,
        "token_overwrite_layers": [p.output.name for p in plan.inplace],
        "tensors": _tensors_report(plan),
        "patch_decomposition_field": opts.patch_field if opts.decompose_patch else None,
        "weight_bytes": program.weight_bytes,
        "io_in_arena": opts.io_in_arena,
        "io_bytes": io_bytes,
        "stack_reserve_bytes": opts.stack_reserve_bytes,
        "required_sram_bytes": required_sram,
        "code_reserve_bytes": code_bytes(program),
        "required_flash_bytes": program.weight_bytes + code_bytes(program),
        "budget": {"sram_bytes": sram, "flash_bytes": flash},
    }


def _tensors_report(plan: ArenaPlan) -> list[dict]:
    """Every arena tensor (storage root): name, kind, bytes, offset and live calls."""
    return [
        {
            "name": t.name,
            "kind": t.kind.value,
            "bytes": t.nbytes,
            "offset": plan.offsets[t],
            "calls": list(plan.model.lifetimes[t]),
        }
        for t in sorted(plan.model.lifetimes, key=lambda t: (plan.model.lifetimes[t], t.index))
    ]


def _largest(ops: list[dict], key: str) -> str:
    top = sorted(ops, key=lambda op: -op[key])[:TOP_LAYERS]
    return ", ".join(f"{op['kernel']} -> {'/'.join(op['outputs'])} {op[key]} B" for op in top)


def _check_budget(memory: dict, board: Board, ops: list[dict]) -> None:
    """Raise :class:`BudgetError` when ``memory`` exceeds its budget, naming the largest layers
    (``ops`` is :func:`_ops_report`'s list)."""
    budget = memory["budget"]
    layers = (
        f"; largest layers by live bytes: {_largest(ops, 'live_bytes')}; "
        f"by weight bytes: {_largest(ops, 'weight_bytes')}"
    )
    if memory["required_sram_bytes"] > budget["sram_bytes"]:
        raise BudgetError(
            f"model does not fit the SRAM budget of {board.name}: it needs "
            f"{memory['required_sram_bytes']} bytes (arena {memory['planned_arena_bytes']} + "
            f"I/O {memory['io_bytes']} + stack {memory['stack_reserve_bytes']}) but the budget "
            f"is {budget['sram_bytes']} bytes; shrink the model or raise --sram{layers}"
        )
    if memory["required_flash_bytes"] > budget["flash_bytes"]:
        raise BudgetError(
            f"model does not fit the flash budget of {board.name}: it needs at least "
            f"{memory['required_flash_bytes']} bytes (weights {memory['weight_bytes']} + code "
            f"{memory['code_reserve_bytes']}) but the budget is {budget['flash_bytes']} bytes; "
            f"shrink the model or raise --flash{layers}"
        )


def _ops_report(program: KernelProgram, plan: ArenaPlan) -> list[dict]:
    live = plan.model.live_bytes_per_call()
    ops = []
    for i, call in enumerate(program.calls):
        ops.append(
            {
                "kernel": call.kernel.name,
                "outputs": [t.name for t in call.outputs],
                "output_bytes": sum(t.nbytes for t in call.outputs),
                "workspace_bytes": sum(t.nbytes for t in call.workspaces),
                "weight_bytes": sum(
                    t.nbytes for t in call.inputs if t.root.kind == TensorKind.CONSTANT
                ),
                "live_bytes": live[i],
            }
        )
    return ops


def _quant_report(opts: CompileOptions) -> dict | None:
    if opts.quantize == "none":
        return None
    q = opts.quant
    return {
        "scheme": "int8 symmetric: per-output-channel weights, per-tensor activations",
        "calibration": q.calibration if opts.calibration is not None else "model file",
        "calibration_samples": 0 if opts.calibration is None else len(opts.calibration),
        "gelu": q.gelu,
        "layernorm": q.layernorm,
        "softmax": q.softmax,
        "layernorm_iterations": q.ln_iterations,
        "integer_only": q.integer_only,
    }


@tvm.instrument.pass_instrument
class _KeepQuantized:
    """Keeps the module right after quantization (the artifact's ``src/relax_int8.txt``)."""

    def __init__(self) -> None:
        self.mod: tvm.IRModule | None = None

    def run_after_pass(self, mod: tvm.IRModule, info: tvm.transform.PassInfo) -> None:
        main = mod["main"] if "main" in [g.name_hint for g in mod.get_global_vars()] else None
        if self.mod is None and main is not None and main.attrs and INPUT_SCALES_ATTR in main.attrs:
            self.mod = mod


@dataclass
class PlannedModel:
    """A model as the compiler lays it out: lowered Relax, kernel calls, arena plan, report.

    ``quantized`` is the Relax module right after quantization (``None`` when
    the pipeline did not quantize).
    """

    lowered: tvm.IRModule
    program: KernelProgram
    plan: ArenaPlan
    memory: dict
    quantized: tvm.IRModule | None = None


def plan_model(
    model: ImportedModel, options: CompileOptions | None = None, progress: bool = False
) -> PlannedModel:
    """Run the ``mcuformer`` pipeline of ``options`` on ``model``, lower and plan, emit no C.

    ``memory`` is the report of :func:`compile_model`'s metadata, budget check not
    applied: the architecture search asks this (``quantize="int8-layout"``) for
    the memory of candidates.
    """
    opts = options or CompileOptions()
    board, _, _ = opts.resolve()
    keep = _KeepQuantized()
    with tvm.transform.PassContext(instruments=[keep]):
        lowered, program = lower(model, opts.pipeline(progress))
    plan = plan_arena(
        program,
        opts.planner,
        alignment=board.arena_alignment,
        token_overwrite=opts.token_overwrite,
        io_in_arena=opts.io_in_arena,
    )
    memory = _memory_report(lowered, program, plan, opts)
    return PlannedModel(lowered, program, plan, memory, keep.mod)


def check_budget(model: ImportedModel, options: CompileOptions | None = None) -> dict:
    """Plan float ``model`` as ``options`` would compile it (int8: its integer layout, no
    calibration) and raise :class:`BudgetError` if it does not fit; return the memory report.

    Seconds even at 224 px: no calibration, no C. The memory equals the calibrated
    model's (it does not depend on the scales).
    """
    opts = options or CompileOptions()
    if opts.quantize == "int8":
        opts = replace(opts, quantize="int8-layout", calibration=None)
    planned = plan_model(model, opts)
    _check_budget(planned.memory, opts.resolve()[0], _ops_report(planned.program, planned.plan))
    return planned.memory


def compile_model(
    model: ImportedModel | str | Path, options: CompileOptions | None = None
) -> Artifact:
    """Compile ``model`` (an :class:`ImportedModel` or a model file) into an :class:`Artifact`."""
    opts = options or CompileOptions()
    float_model = model if isinstance(model, ImportedModel) else import_model(model)
    opts.validate(float_model)
    board, _, _ = opts.resolve()
    if opts.quantize == "int8" and opts.calibration is not None:
        opts.calibration = check_calibration(float_model, opts.calibration)
        check_budget(float_model, opts)  # refuse before calibration, the costly part
    planned = plan_model(float_model, opts, progress=True)
    lowered, program, plan, memory = planned.lowered, planned.program, planned.plan, planned.memory
    ops = _ops_report(program, plan)
    _check_budget(memory, board, ops)
    quantized = planned.quantized
    deployed = float_model if quantized is None else int8_specs(float_model, quantized)

    with tempfile.TemporaryDirectory(prefix="mcuformer-plot-") as tmp:
        png = Path(tmp) / "memory_timeline.png"
        plot_memory_timeline(program, plan, memory["budget"]["sram_bytes"], png)
        timeline_png = png.read_bytes()
    weights = layout_weights(program)
    files = {
        "codegen/host/include/mcuformer_model.h": emit_header(program, plan, len(weights.blob)),
        "codegen/host/include/mcuformer_math.h": _runtime_file("mcuformer_math.h"),
        "codegen/host/include/mcuformer_simd.h": _runtime_file("mcuformer_simd.h"),
        "codegen/host/src/mcuformer_model.c": emit_driver(program, plan, weights),
        "codegen/host/src/mcuformer_kernels.c": emit_c(program.kernels),
        "codegen/host/src/mcuformer_math.c": _runtime_file("mcuformer_math.c"),
        "src/relax.txt": float_model.mod.script(),
        **({"src/relax_int8.txt": deployed.mod.script()} if deployed is not float_model else {}),
        "src/lowered.txt": lowered.script(),
        "memory_timeline.png": timeline_png,
    }
    metadata = model_metadata(
        float_model.source,
        board.name,
        deployed.inputs,
        deployed.outputs,
        memory,
        macs=count_macs(float_model.mod),
        quantization=_quant_report(opts),
        ops=ops,
    )
    return Artifact(metadata, files)
