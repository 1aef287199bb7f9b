"""A picture of one inference's latency: the device counter per kernel call, as a PNG."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_TICK_LABELS = 40  # beyond this many calls, every Nth call is labelled


def plot_profile(latency: dict, path: str | Path) -> Path | None:
    """Write a bar chart of ``latency["per_op"]`` (one bar per kernel call, its share of the
    inference in the title) to ``path``; ``None`` (nothing written) without a per-op profile."""
    rows = latency.get("per_op") or []
    counter = latency.get("counter")
    if not rows or counter is None:
        return None
    counts = [r["count"] for r in rows]
    labels = [f"{r['call']} {r['kernel']}" for r in rows]
    fig = Figure(figsize=(max(6.0, 0.25 * len(rows) + 2.0), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(rows)), counts, color="tab:blue")
    step = max(1, -(-len(rows) // MAX_TICK_LABELS))
    ax.set_xticks(range(0, len(rows), step))
    ax.set_xticklabels(labels[::step], rotation=90, fontsize=7)
    ax.set_ylabel(f"{counter} per call")
    macs = latency.get("macs")
    per_mac = latency.get("instructions_per_mac")
    detail = f", {per_mac:.2f} per MAC over {macs:,} MACs" if per_mac and macs else ""
    ax.set_title(f"{sum(counts):,} {counter} per inference{detail}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
