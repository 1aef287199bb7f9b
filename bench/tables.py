"""README tables rendered from the results files: one source of truth per figure.

Each table in README.md sits between ``<!-- results:NAME -->`` and
``<!-- /results -->`` and is exactly what :data:`RENDERERS` makes of
``bench/results/NAME.json``, followed by the command, date and commit that
wrote that file. ``python bench/tables.py`` rewrites the blocks; ``--check``
exits 1 when the README and the results files disagree (the test suite runs
the same comparison).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results -->)", re.DOTALL)


def _b(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def demo(d: dict) -> list[str]:
    runs = d["runs"]
    header = [""] + [r["label"] for r in runs]
    keys: list[tuple[str, Callable[[dict], str]]] = [
        ("architecture", lambda r: r["architecture"]),
        ("float top-1 (PyTorch)", lambda r: f"{r['float_top1']:.3f}"),
        ("device top-1 (QEMU, 1,000 images)", lambda r: f"**{r['device_top1']:.3f}**"),
        ("device outputs == host build", lambda r: str(r["device_equals_host"]).lower()),
        ("planned arena", lambda r: f"{_b(r['planned_arena_bytes'])} B"),
        ("liveness lower bound", lambda r: f"{_b(r['lower_bound_bytes'])} B"),
        ("TVM's StaticPlanBlockMemory", lambda r: f"{_b(r['tvm_static_plan_bytes'])} B"),
        ("peak SRAM (.data+.bss + painted stack)", lambda r: f"{_b(r['peak_sram_bytes'])} B"),
        ("flash (.text+.rodata+.data)", lambda r: f"{_b(r['flash_bytes'])} B"),
        ("weights", lambda r: f"{_b(r['weight_bytes'])} B"),
        ("instructions / inference", lambda r: f"{r['instructions_per_inference'] / 1e6:.1f} M"),
        ("wall time", lambda r: f"{r['wall_seconds']:.0f} s"),
    ]
    return _table(header, [[name, *(f(r) for r in runs)] for name, f in keys])


def ablation_int8(d: dict) -> list[str]:
    base = d["top1"]["float (PyTorch)"]
    rows = [
        [name, f"{acc:.4f}", f"{100 * (acc - base):+.1f} pp"] for name, acc in d["top1"].items()
    ]
    return _table(["variant", "top-1", "Δ vs float"], rows)


def memory_ablation(d: dict) -> list[str]:
    keys = (
        "planned_arena_bytes",
        "lower_bound_bytes",
        "tvm_static_plan_bytes",
        "naive_bytes",
        "paper_m_bytes",
    )
    rows = [
        [
            str(r["tokens"]),
            "on" if r["decomposition"] else "off",
            "on" if r["token_overwrite"] else "off",
            *(_b(r[k]) for k in keys),
        ]
        for r in d["rows"]
    ]
    header = ["tokens", "decomposition", "token overwrite", "arena", "lower bound"]
    return _table([*header, "TVM static plan", "naive", "paper M"], rows)


def search_vs_baselines(d: dict) -> list[str]:
    rows = [
        [
            r["model"],
            _b(r["parameters"]),
            " ".join(f"{v:.3f}".lstrip("0") for v in r["device_top1_per_seed"]),
            f"{r['device_top1_mean']:.4f} ± {r['device_top1_std']:.4f}",
            f"{_b(r['peak_sram_bytes'])} / {_b(r['reserved_sram_bytes'])}",
            _b(r["planned_arena_bytes"]),
            _b(r["flash_bytes"]),
            f"{r['instructions_per_inference'] / 1e6:.1f} M",
        ]
        for r in d["rows"]
    ]
    header = ["model", "params", "device top-1 per seed", "mean ± std"]
    header += ["peak SRAM measured / reserved", "arena", "flash", "instr./inf."]
    return _table(header, rows)


def any_vit(d: dict) -> list[str]:
    rows = [
        [
            f"`{r['model']}`: {r['idioms']}",
            _b(r["parameters"]),
            f"{r['float_top1']:.4f}",
            f"{r['int8_top1']:.4f}",
            f"**{r['top1_agreement']:.4f}**",
            f"{r['logits_cosine']:.4f}",
            str(r["device_equals_host"]).lower(),
            _b(r["planned_arena_bytes"]),
            f"{r['instructions_per_inference'] / 1e6:.2f} M",
        ]
        for r in d["rows"]
    ]
    header = ["model", "params", "float top-1", "int8 top-1 (device)", "top-1 agreement"]
    header += ["logits cosine", "device == host", "arena", "instr./inf."]
    return _table(header, rows)


RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "demo": demo,
    "ablation_int8": ablation_int8,
    "memory_ablation": memory_ablation,
    "search_vs_baselines": search_vs_baselines,
    "any_vit": any_vit,
}


def render(name: str) -> str:
    """The README block of results file ``name``: the table, then where it came from."""
    data = json.loads((RESULTS / f"{name}.json").read_text())
    lines = RENDERERS[name](data)
    source = (
        f"`{data['command']}` → `bench/results/{name}.json` "
        f"({data['date']}, commit {data['commit'][:12]})"
    )
    return "\n".join([*lines, "", source, ""])


def rendered_readme(text: str) -> str:
    """``text`` with every results block replaced by its rendering."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group(2)) + m.group(4), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    text = README.read_text()
    new = rendered_readme(text)
    if args.check:
        if new != text:
            print(
                "README.md tables differ from bench/results: run bench/tables.py", file=sys.stderr
            )
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
