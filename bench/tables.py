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
    keys = ("planned_arena_bytes", "lower_bound_bytes", "io_bytes", "required_sram_bytes")
    keys += ("tvm_static_plan_bytes", "paper_m_bytes")
    rows = [
        [
            f"{r['model']} ({r['tokens']} tok)",
            r["variant"],
            *(_b(r[k]) for k in keys[:3]),
            f"**{_b(r['required_sram_bytes'])}**" if r["variant"] == "all on" else _b(r[keys[3]]),
            *(_b(r[k]) for k in keys[4:]),
        ]
        for r in d["rows"]
    ]
    header = ["model", "variant", "arena", "lower bound", "I/O outside arena + frames"]
    return _table([*header, "required SRAM", "TVM static plan", "paper M"], rows)


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


def kernels(d: dict) -> list[str]:
    """Instructions per MAC, scheduled beside unscheduled, per case and board."""
    per: dict[tuple[str, str], dict[str, dict]] = {}
    for r in d["rows"]:
        per.setdefault((r["case"], r["board"]), {})[r["schedule"]] = r
    rows = []
    for (case, board), runs in per.items():
        on, off = runs.get("scheduled"), runs.get("unscheduled")
        rows.append(
            [
                case,
                board,
                _b((on or off)["macs"]),
                f"**{on['instructions_per_mac']:.2f}**" if on else "—",
                f"{off['instructions_per_mac']:.2f}" if off else "—",
                str(all(r["device_equals_host"] for r in runs.values())).lower(),
            ]
        )
    header = ["case", "board", "MACs", "instr./MAC scheduled", "unscheduled", "device == host"]
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


def tflite_vs_tflm(d: dict) -> list[str]:
    rows = []
    for r in d["rows"]:
        t, o = r["tflm"], r["ours"]
        rows.append(
            [
                str(r["tokens"]),
                _b(t["head_bytes"]),
                f"{_b(t['total_bytes'])} / {_b(t['min_total_arena_bytes'])}",
                f"**{_b(o['planned_arena_bytes'])}**",
                f"{r['arena_ratio_ours_to_tflm_head']:.2f}",
                _b(o["lower_bound_bytes"]),
                _b(o["tvm_static_plan_bytes"]),
                _b(o["naive_bytes"]),
                _b(o["flash_bytes"]),
                f"{o['instructions_per_inference'] / 1e6:.1f} M",
                f"{o['instructions_per_mac']:.2f}",
                f"{t['top1']:.3f} / {o['device_top1']:.3f}",
                f"**{r['top1_agreement']:.3f}**",
                f"{r['max_output_difference_steps']:.0f} / {r['mean_output_difference_steps']:.1f}",
            ]
        )
    header = ["tokens", "TFLM non-persistent", "TFLM recorded / smallest total", "our arena"]
    header += ["ours / TFLM", "lower bound", "TVM static plan", "naive", "flash"]
    header += ["instr./inf.", "instr./MAC", "top-1 TFLM / ours", "top-1 agreement"]
    header += ["logit difference max / mean (TFLM steps)"]
    return _table(header, rows)


def paper_scale(d: dict) -> list[str]:
    def arch(a: dict) -> str:
        heads, mlp = sorted(set(a["num_heads"])), sorted(set(a["mlp_ratios"]))
        return (
            f"embed {a['embed_dim']}, depth {a['depth']}, heads {'/'.join(map(str, heads))}, "
            f"MLP {'/'.join(f'{m:g}' for m in mlp)}, ρ {a['rank_ratio']:g}, "
            f"patch {a['patch_size']}"
        )

    rows = [
        [
            f"{r['board']} ({r['qemu_machine']})",
            arch(r["architecture"]),
            _b(r["params"]),
            f"{r['macs'] / 1e6:.1f} M",
            f"{_b(r['planned_arena_bytes'])} / {_b(r['lower_bound_bytes'])}",
            f"{_b(r['measured_peak_sram_bytes'])} / {_b(r['budget']['sram_bytes'])}",
            f"{_b(r['flash_bytes'])} / {_b(r['budget']['flash_bytes'])}",
            f"{r['instructions_per_inference'] / 1e6:,.0f} M",
            str(r["device_equals_host"]).lower(),
            f"{r['search_s']:.0f} s / {r['compile_s']:.0f} s",
        ]
        for r in d["boards"]
    ]
    header = ["board (QEMU stand-in)", "architecture found", "params", "MACs"]
    header += ["arena / lower bound", "peak SRAM measured / board", "flash / board"]
    header += ["instr./inf.", "device == host", "search / compile"]
    refusal = d["over_budget_refusal"]
    note = (
        f"Over budget (`{refusal['command']}`): exit {refusal['exit_status']} after "
        f"{refusal['seconds']:.1f} s, artifact written: {str(refusal['artifact_written']).lower()}."
    )
    return [*_table(header, rows), "", note]


RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "demo": demo,
    "ablation_int8": ablation_int8,
    "memory_ablation": memory_ablation,
    "search_vs_baselines": search_vs_baselines,
    "any_vit": any_vit,
    "tflite_vs_tflm": tflite_vs_tflm,
    "paper_scale": paper_scale,
    "kernels": kernels,
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
