"""The ``mcuformer`` Relax pipeline: one configurable pass list from float Relax to TIR kernels.

``get_pipeline(**options)`` is registered with TVM under :data:`PIPELINE_NAME`,
so a plain script can run the same passes ``compile`` runs::

    import tvm, tvm_mcuformer
    from tvm.relax.pipeline import get_pipeline
    tvm.compile(mod, "llvm", relax_pipeline=get_pipeline("mcuformer", token_overwrite=False))

Phases, in order: quantization (:func:`~tvm_mcuformer.quantize.QuantizeInt8`,
when ``quantize`` is not ``"none"``), the patch-embedding decomposition,
legalization and fusion, the schedules (inlining, token overwrite), views kept
as views; then, with ``build_vm``, TVM's VM build passes (the host reference).
Without ``build_vm``, ``main`` is left as the straight list of ``call_tir``
bindings :func:`tvm_mcuformer.lowering.lower` reads.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tvm
from tvm import relax

from ..quantize import QuantConfig, QuantizeInt8
from ..quantize.passes import FROM_FILE
from ..relax_passes import DecomposePatchEmbedding
from ..schedules import AutoInline
from ..schedules.attention import RowwiseAttention, ScheduleAttention
from ..schedules.dense import ScheduleDense
from ..schedules.token_overwrite import TokenOverwrite
from .kernels import register_tir_pipeline

PIPELINE_NAME = "mcuformer"
QUANTIZE_MODES = ("none", "int8", "int8-layout")
# Attention: fused and one query row at a time; fused with every head's scores; head copies.
ATTENTION_MODES = ("rowwise", "all_heads", "unfused")
DEFAULT_PATCH_FIELD = 4


def lowering_passes(
    token_overwrite: bool = True,
    decompose_patch: bool = True,
    field: int = DEFAULT_PATCH_FIELD,
    schedule_kernels: bool = True,
    attention: str = "rowwise",
) -> list[tvm.transform.Pass]:
    """The passes after quantization: legalize, fuse, schedule, keep reshapes as views.

    ``token_overwrite`` schedules row-wise kernels with a one-row scratch so that
    the planner may write their outputs over their inputs. ``decompose_patch``
    first rewrites the int8 patch-embedding conv into ``field``×``field``
    sub-convolutions (:class:`DecomposePatchEmbedding`). ``schedule_kernels``
    gives the int8 dense kernels their tiled dual-MAC schedule
    (:class:`~tvm_mcuformer.schedules.dense.ScheduleDense`) and row-wise fused attention
    its micro-kernel matmuls (:class:`ScheduleAttention`), and the decomposed patch
    embedding its micro-kernel form; off, they stay plain loops.
    ``attention="rowwise"`` computes fused attention one query row and head at a
    time (:class:`RowwiseAttention`).
    """
    return [
        *([DecomposePatchEmbedding(field, schedule_kernels)] if decompose_patch else []),
        relax.transform.ConvertToDataflow(),
        relax.transform.DecomposeOpsForInference(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        *([ScheduleDense] if schedule_kernels else []),
        *([ScheduleAttention] if schedule_kernels and attention == "rowwise" else []),
        AutoInline,
        *([RowwiseAttention] if attention == "rowwise" else []),
        *([TokenOverwrite] if token_overwrite else []),
        relax.transform.RewriteDataflowReshape(),
        relax.transform.DeadCodeElimination(),
    ]


def get_pipeline(
    quantize: str = "none",
    calibration: np.ndarray | None = None,
    quant_config: QuantConfig | None = None,
    token_overwrite: bool = True,
    decompose_patch: bool = True,
    patch_field: int = DEFAULT_PATCH_FIELD,
    build_vm: bool = True,
    progress: bool = False,
    schedule_kernels: bool = True,
    attention: str = "rowwise",
) -> tvm.transform.Pass:
    """The ``mcuformer`` pipeline with these options (what ``compile`` runs, ``build_vm=False``).

    ``quantize``: ``"none"`` (the module as given: float, or already integer),
    ``"int8"`` (calibrate on ``calibration``, model inputs stacked on axis 0;
    ``None``: the ranges an int8 ``.tflite`` carries)
    or ``"int8-layout"`` (the integer kernels with placeholder scales: exact
    memory without calibration, for the architecture search).
    ``attention`` (one of :data:`ATTENTION_MODES`): ``"rowwise"`` fuses attention
    whose q, k, v are views of one qkv output into one kernel reading them in
    place, computed per query row; ``"all_heads"`` the same kernel keeping all
    heads' scores; ``"unfused"`` materialises the head split and merge.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, not {quantize!r}")
    if attention not in ATTENTION_MODES:
        raise ValueError(
            f"attention must be one of {', '.join(ATTENTION_MODES)}, not {attention!r}"
        )
    passes = []
    if quantize != "none":
        samples = calibration if quantize == "int8" else None
        if quantize == "int8" and calibration is None:
            samples = FROM_FILE  # the module must carry its file's ranges
        config = replace(quant_config or QuantConfig(), fuse_attention=attention != "unfused")
        passes.append(QuantizeInt8(samples, config, progress))
    # The dense schedule calls C micro-kernels (codegen/runtime/mcuformer_simd.h) that a
    # VM build cannot link: the VM runs the plain loops, which compute the same integers.
    schedule = schedule_kernels and not build_vm
    passes += lowering_passes(token_overwrite, decompose_patch, patch_field, schedule, attention)
    if build_vm:
        passes.append(relax.pipeline.default_build_pipeline())
    return tvm.transform.Sequential(passes, name=PIPELINE_NAME)


def register() -> None:
    """Register the Relax pipeline (and the plain-C TIR pipeline) with TVM (idempotent)."""
    register_tir_pipeline()
    if PIPELINE_NAME not in relax.pipeline.PIPELINE_MAP:
        relax.pipeline.register_pipeline(PIPELINE_NAME)(get_pipeline)
