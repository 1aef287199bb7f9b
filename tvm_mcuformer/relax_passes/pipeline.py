"""The ``mcuformer`` Relax pipeline: Relax graph → fused, scheduled TIR kernels.

After this pipeline ``main`` is a straight list of ``call_tir`` bindings plus
view reshapes; :mod:`tvm_mcuformer.lowering` reads that list. Registered under
``PIPELINE_NAME`` so ``tvm.compile(mod, target, relax_pipeline="mcuformer")``
runs the same kernels on the Relax VM (the host reference for debugging):
the registered pipeline is these passes followed by TVM's VM build passes.
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..codegen.tir_to_c import register_tir_pipeline
from ..schedules import AutoInline
from ..schedules.token_overwrite import TokenOverwrite
from .patch_embed import DecomposePatchEmbedding

PIPELINE_NAME = "mcuformer"


def lowering_passes(
    token_overwrite: bool = True, decompose_patch: bool = True, field: int = 4
) -> list[tvm.transform.Pass]:
    """The ordered passes: legalize, fuse, inline, and keep reshapes as views.

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


def _pipeline():
    @tvm.transform.module_pass(opt_level=0, name="mcuformer")
    def mcuformer_pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        passes = [*lowering_passes(), relax.pipeline.default_build_pipeline()]
        return tvm.transform.Sequential(passes)(mod)

    return mcuformer_pipeline


def register() -> None:
    """Register the Relax pipeline (and the plain-C TIR pipeline) with TVM (idempotent)."""
    register_tir_pipeline()
    if PIPELINE_NAME not in relax.pipeline.PIPELINE_MAP:
        relax.pipeline.register_pipeline(PIPELINE_NAME)(_pipeline)
