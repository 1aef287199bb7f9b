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

import numpy as np
import tvm
from tvm import relax

from ..quantize import QuantConfig, QuantizeInt8
from ..relax_passes import DecomposePatchEmbedding
from ..schedules import AutoInline
from ..schedules.token_overwrite import TokenOverwrite
from .kernels import register_tir_pipeline

PIPELINE_NAME = "mcuformer"
QUANTIZE_MODES = ("none", "int8", "int8-layout")
DEFAULT_PATCH_FIELD = 4


def lowering_passes(
    token_overwrite: bool = True, decompose_patch: bool = True, field: int = DEFAULT_PATCH_FIELD
) -> list[tvm.transform.Pass]:
    """The passes after quantization: legalize, fuse, schedule, keep reshapes as views.

    ``token_overwrite`` schedules row-wise kernels with a one-row scratch so that
    the planner may write their outputs over their inputs. ``decompose_patch``
    first rewrites the int8 patch-embedding conv into ``field``×``field``
    sub-convolutions (:class:`DecomposePatchEmbedding`).
    """
    return [
        *([DecomposePatchEmbedding(field)] if decompose_patch else []),
        relax.transform.ConvertToDataflow(),
        relax.transform.DecomposeOpsForInference(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        AutoInline,
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
) -> tvm.transform.Pass:
    """The ``mcuformer`` pipeline with these options (what ``compile`` runs, ``build_vm=False``).

    ``quantize``: ``"none"`` (the module as given: float, or already integer),
    ``"int8"`` (calibrate on ``calibration``, model inputs stacked on axis 0)
    or ``"int8-layout"`` (the integer kernels with placeholder scales: exact
    memory without calibration, for the architecture search).
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, not {quantize!r}")
    if quantize == "int8" and calibration is None:
        raise ValueError("quantize='int8' needs calibration samples")
    passes = []
    if quantize != "none":
        samples = calibration if quantize == "int8" else None
        passes.append(QuantizeInt8(samples, quant_config, progress))
    passes += lowering_passes(token_overwrite, decompose_patch, patch_field)
    if build_vm:
        passes.append(relax.pipeline.default_build_pipeline())
    return tvm.transform.Sequential(passes, name=PIPELINE_NAME)


def register() -> None:
    """Register the Relax pipeline (and the plain-C TIR pipeline) with TVM (idempotent)."""
    register_tir_pipeline()
    if PIPELINE_NAME not in relax.pipeline.PIPELINE_MAP:
        relax.pipeline.register_pipeline(PIPELINE_NAME)(get_pipeline)
