"""A picture of the arena over time: live bytes at each kernel call, as a PNG."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..lowering.program import KernelProgram, TensorKind
from .plan import ArenaPlan

# At most this many call labels on the x axis; beyond it, every Nth call.
MAX_TICK_LABELS = 40
# A budget more than this many times the tallest bar is only named in the legend.
MAX_BUDGET_RATIO = 3.0
_LABEL_CHARS = 32
_UNITS = ((1024 * 1024, "MiB"), (1024, "KiB"), (1, "B"))


def _unit(top: int) -> tuple[int, str]:
    """The y-axis unit: the largest one that still shows at least 10 of it."""
    return next((u, name) for u, name in _UNITS if top >= 10 * u or u == 1)


def _short(name: str) -> str:
    """``name`` cut in the middle to at most ``_LABEL_CHARS`` characters."""
    if len(name) <= _LABEL_CHARS:
        return name
    half = (_LABEL_CHARS - 1) // 2
    return f"{name[:half]}…{name[-half:]}"


def plot_memory_timeline(
    program: KernelProgram, plan: ArenaPlan, budget_sram_bytes: int, path: str | Path
) -> Path:
    """Write a PNG of the arena's live bytes per kernel call to ``path``; return ``path``.

    One stacked bar per call of ``program``: the activation regions live at
    the call, then the call's workspaces (both by
    :meth:`~tvm_mcuformer.planner.buffers.BufferModel.live_bytes_per_call`, the bytes
    the tensors need, an in-place pair counted once); horizontal lines at the planned arena and the
    liveness lower bound. The SRAM budget is drawn as a line when it is within
    :data:`MAX_BUDGET_RATIO` times the tallest of these; otherwise only its
    value (and its ratio to the arena) is given, in the legend, so the bars stay
    readable. The y axis is in B, KiB or MiB, whichever shows at least 10
    units. The x axis names every call's kernel when there are at most
    :data:`MAX_TICK_LABELS` calls, else every Nth call. Rendered with the Agg
    backend on a standalone figure: no display, no pyplot global state.
    """
    path = Path(path)
    n = len(program.calls)
    activations = plan.model.live_bytes_per_call((TensorKind.ACTIVATION,))
    workspaces = plan.model.live_bytes_per_call((TensorKind.WORKSPACE,))
    top = max([plan.arena_bytes, *(a + w for a, w in zip(activations, workspaces, strict=True))])
    budget_drawn = budget_sram_bytes <= MAX_BUDGET_RATIO * top
    if budget_drawn:
        top = max(top, budget_sram_bytes)
    unit, unit_name = _unit(top)

    fig = Figure(figsize=(min(16.0, max(8.0, 4.0 + 0.2 * n)), 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    act = [a / unit for a in activations]
    handles = [
        ax.bar(range(n), act, width=0.8, color="#4c78a8", label="live activations"),
        ax.bar(
            range(n),
            [w / unit for w in workspaces],
            width=0.8,
            bottom=act,
            color="#f58518",
            label="workspaces of the call",
        ),
        ax.axhline(
            plan.arena_bytes / unit,
            color="#e45756",
            linewidth=2.0,
            label=f"planned arena {plan.arena_bytes:,} B ({plan.algorithm})",
        ),
        ax.axhline(
            plan.lower_bound_bytes / unit,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"liveness lower bound {plan.lower_bound_bytes:,} B",
        ),
    ]
    budget = f"SRAM budget {budget_sram_bytes:,} B"
    if budget_drawn:
        line = ax.axhline(
            budget_sram_bytes / unit, color="#54a24b", linestyle=":", linewidth=2.0, label=budget
        )
    else:
        ratio = budget_sram_bytes / plan.arena_bytes
        (line,) = ax.plot(
            [], [], "^", color="#54a24b", label=f"{budget} ({ratio:.0f}× the arena, off the scale)"
        )
    handles.append(line)
    ax.set_ylim(0, top * 1.08 / unit)
    ax.set_xlim(-0.6, n - 0.4)
    step = max(1, math.ceil(n / MAX_TICK_LABELS))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels(
        [f"{i} {_short(program.calls[i].kernel.name)}" for i in ticks], rotation=90, fontsize=6
    )
    ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("kernel call" if step == 1 else f"kernel call (one label every {step} calls)")
    ax.set_ylabel(f"arena live ({unit_name})")
    ax.set_title(f"Arena over {n} kernel calls")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(handles=handles, loc="outside upper center", ncols=3, fontsize=8, frameon=False)
    fig.savefig(path, format="png", dpi=120)
    return path
