"""Reference numbers the planned arena is compared with in the memory report.

- :func:`tvm_static_plan_bytes`: what TVM's own Relax memory planner
  (``StaticPlanBlockMemory``, the planner of TVM's VM build) allocates for the
  same lowered module.
- :func:`paper_m_bytes`: MCUFormer's peak-memory model ``M`` (the paper's
  token-overwriting formula, evaluated per kernel call).
"""

from __future__ import annotations

import tvm
from tvm import relax

from ..lowering.program import KernelCall, KernelProgram, Tensor, TensorKind

# The passes of ``relax.pipeline.default_build_pipeline`` that lead up to its
# memory planner, for a module that is already legalized and fused.
_PLANNING_PASSES = (
    relax.transform.ToNonDataflow,
    relax.transform.RemovePurityChecking,
    relax.transform.CallTIRRewrite,
    relax.transform.StaticPlanBlockMemory,
)


def tvm_static_plan_bytes(lowered: tvm.IRModule) -> int:
    """Bytes of storage TVM's ``StaticPlanBlockMemory`` plans for ``lowered``'s ``main``.

    ``lowered`` is the module :func:`tvm_mcuformer.lowering.lower` returns. The
    passes TVM's build pipeline runs before its planner (ToNonDataflow,
    RemovePurityChecking, CallTIRRewrite) are applied, then the planner; the
    result is the sum of the sizes of the ``R.memory.alloc_storage`` calls in
    ``main``, in bytes.

    What it counts, against the arena of :func:`tvm_mcuformer.planner.plan_arena`:

    - the same tensors as the arena's activations: the model input (a
      parameter) and the model output (returned, so TVM allocates it
      unplanned with ``R.builtin.alloc_tensor``) are outside both;
    - not the kernels' temporaries: TVM leaves them inside the kernels (on the
      stack), while our arena also holds them as workspaces;
    - whole storage tokens only: a token is reused, at offset 0, by a later
      tensor of the same dtype once its previous tensor is dead, and grows to
      the largest tensor it holds; there is no packing at offsets.

    Each token holds tensors of disjoint lifetimes and is as large as the
    largest of them, and tensors live at the same call hold distinct tokens, so::

        A = max over calls of the bytes of the activation tensors live at that call
        A <= tvm_static_plan_bytes(lowered) <= the bytes of all activation tensors

    where a tensor is live from the call that writes it to the last call that
    reads it, each counted whole (no token overwrite). The liveness lower
    bound of the plan also counts workspaces, so
    ``tvm_static_plan_bytes >= plan.lower_bound_bytes - (most workspace bytes
    of one call)``. Comparing it with the planned arena therefore favours TVM
    by up to the largest workspace of one call; what our arena gains beyond
    that comes from packing at offsets (and from token overwrite, where used).
    """
    planned = tvm.transform.Sequential([p() for p in _PLANNING_PASSES])(lowered)
    alloc_storage = tvm.ir.Op.get("relax.memory.alloc_storage")
    total = 0
    for block in planned["main"].body.blocks:
        for binding in block.bindings:
            call = binding.value
            if isinstance(call, relax.Call) and call.op.same_as(alloc_storage):
                (size,) = call.args[0].values
                total += int(size)
    return total


def _distinct_bytes(tensors: list[Tensor]) -> int:
    """Bytes of ``tensors``, counting each storage root once."""
    roots = {t.root: t.nbytes for t in tensors}
    return sum(roots.values())


def _call_m_bytes(call: KernelCall) -> int:
    weights = [t for t in call.inputs if t.root.kind == TensorKind.CONSTANT]
    activations = [t for t in call.inputs if t.root.kind != TensorKind.CONSTANT]
    return _distinct_bytes(weights) + max(
        _distinct_bytes(activations), _distinct_bytes(call.outputs)
    )


def paper_m_bytes(program: KernelProgram) -> int:
    """The paper's peak memory ``M`` of ``program``, in bytes.

    ``M = max over kernel calls of (weight bytes + max(activation input bytes,
    output bytes))`` (the token-overwriting formula ``sup_l [h_f w_f + max(h_i w_i, h_o w_o)]``):
    weights are the call's constant inputs, activation inputs its other inputs
    (the model input included), outputs its outputs (the model output
    included); a tensor passed twice counts once. It assumes token overwriting
    (a layer's output overwrites its input) and a layer's weights resident in
    SRAM while it runs; it ignores kernel workspaces and tensors that stay live
    across calls (the residual stream). Our deployment reads weights from
    flash, so the planned arena and ``M`` measure different things: ``M`` is
    the paper's yardstick, reported beside the arena.
    """
    return max((_call_m_bytes(call) for call in program.calls), default=0)
