"""Try the command line as a hostile but realistic user would; count who behaves well.

Every case of tests/hostile_cases.py runs through the real CLI (one subprocess each), plus
the slow faults: a board streaming noise (fast and slow) with ``--timeout 5``, ``run``
interrupted by SIGINT and by SIGTERM then ``--resume``d (the report must equal an
uninterrupted run's), and Ctrl-C during ``compile``, ``micro build`` and ``search``.
Behaving well: the expected exit status, exactly one line on stderr, no traceback, nothing
half-written, no temporary folder left. Writes bench/results/hostile_inputs.json.

    .venv/bin/python bench/hostile_inputs.py [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import hostile_cases as hc  # noqa: E402
from provenance import write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "hostile_inputs.json"


def _record(name: str, outcome: hc.Outcome, found: list[str], **extra) -> dict:
    return {
        "case": name,
        "ok": not found,
        "problems": found,
        "status": outcome.status,
        "stderr": outcome.stderr[-3:],
        "seconds": round(outcome.seconds, 1),
        **extra,
    }


def _table(work: Path, only: str) -> list[dict]:
    out = []
    for case in hc.cases():
        if only not in case.name:
            continue
        outcome = hc.run_cli(case.argv, work)
        out.append(_record(case.name, outcome, hc.problems(case, outcome, work)))
        print(f"{'ok ' if out[-1]['ok'] else 'BAD'} {case.name}: {outcome.stderr[-1:]}", flush=True)
    return out


def _noise(work: Path) -> list[dict]:
    out = []
    startup = hc.run_cli(["--help"], work).seconds  # interpreter + imports, before any work
    for label, rate in (("fast", None), ("slow", 5_000)):
        outcome = hc.noise_run(work, timeout=5.0, bytes_per_second=rate)
        found = []
        if outcome.status != 1 or len(outcome.stderr) != 1:
            found.append(f"status {outcome.status}, stderr {outcome.stderr}")
        if outcome.seconds - startup > 10:
            found.append(f"took {outcome.seconds - startup:.1f} s after start-up")
        out.append(
            _record(
                f"run --timeout 5 against a board streaming {label} noise",
                outcome,
                found,
                seconds_after_startup=round(outcome.seconds - startup, 1),
            )
        )
    return out


def _interrupts(work: Path) -> list[dict]:
    project = hc.build_slow_project(work)
    inputs = hc.slow_inputs(work, n=200, spin=2_000_000)
    from tvm_mcuformer.micro.evaluate import evaluate

    with np.load(inputs) as data:
        reference = evaluate(project, data["x"], data["labels"], progress=False)
    reference.pop("outputs")
    for key in ("wall_seconds", "inferences_per_second_host"):
        reference["latency"].pop(key)
    reference = json.loads(json.dumps(reference))
    report = work / "interrupted.json"
    out = []
    for i, (name, sig, status) in enumerate(
        (("SIGINT", signal.SIGINT, 130), ("SIGTERM", signal.SIGTERM, 143))
    ):
        outcome, done, left = hc.interrupted_run(work, project, inputs, report, sig, resume=i > 0)
        found = []
        if outcome.status != status or len(outcome.stderr) != 1:
            found.append(f"status {outcome.status}, stderr {outcome.stderr}")
        if left:
            found.append(f"temporary folders left: {left}")
        if report.exists():
            found.append("report written by an interrupted run")
        out.append(_record(f"run interrupted by {name}", outcome, found, samples_done=done))
    outcome = hc.run_cli(
        ["run", str(project), "--inputs", str(inputs), "--report", str(report), "--resume"], work
    )
    found = [] if outcome.status == 0 else [f"status {outcome.status}: {outcome.stderr}"]
    if not found:
        found += hc.report_differences(hc.load_report(report), reference)
    if report.with_name(report.name + ".partial").exists():
        found.append("journal left after the report was written")
    out.append(_record("run --resume completes with the uninterrupted report", outcome, found))
    return out


def _ctrl_c(work: Path, name: str, argv: list[str], ready) -> dict:
    """Start ``argv``, send SIGINT once ``ready(elapsed)`` is true, check the ending."""
    tmpdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tvm_mcuformer.cli", *argv],
        cwd=work,
        env=hc.cli_env(tmpdir),
        stderr=subprocess.PIPE,
        text=True,
    )
    while proc.poll() is None and not ready(time.monotonic() - start):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    outcome = hc.Outcome(proc.returncode, err.splitlines(), time.monotonic() - start)
    found = []
    if outcome.status != 130:
        found.append(f"status {outcome.status}")
    if not outcome.stderr or outcome.stderr[-1] != f"tvm-mcuformer {argv[0]}: interrupted":
        found.append(f"last stderr line {outcome.stderr[-1:]}")
    if any("Traceback" in line for line in outcome.stderr):
        found.append("traceback on stderr")
    if list(tmpdir.iterdir()):
        found.append(f"temporary files left: {[p.name for p in tmpdir.iterdir()]}")
    return _record(f"Ctrl-C during {name}", outcome, found)


def _interrupt_commands(work: Path) -> list[dict]:
    from tvm_mcuformer.micro import create_project

    startup = hc.run_cli(["--help"], work).seconds
    out = [
        _ctrl_c(
            work,
            "compile",
            ["compile", "good.pt2", "-o", "ctrl_c.tar", "--quantize", "none"],
            lambda t: t > startup + 1.0,
        )
    ]
    out[-1]["problems"] += ["artifact left"] if (work / "ctrl_c.tar").exists() else []
    root = work / "ctrl_c_proj"
    create_project(root, work / "toy.tar", "baremetal", force=True)
    out.append(
        _ctrl_c(
            work,
            "micro build",
            ["micro", "build", str(root), "-j", "1"],
            lambda t: any((root / "build").glob("**/*.o")),
        )
    )
    log = work / "search_ctrl_c"
    out.append(
        _ctrl_c(
            work,
            "search",
            ["search", "--dataset", "digits", "-o", str(log), "--quick"],
            lambda t: any(log.glob("**/supernet_epoch1.pt")),
        )
    )
    for record in out:
        record["ok"] = not record["problems"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only table cases whose name has this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        work = Path(tmp)
        hc.make_files(work)
        records = _table(work, args.only)
        if not args.only:
            for part in (_noise, _interrupts, _interrupt_commands):
                for record in part(work):
                    records.append(record)
                    print(f"{'ok ' if record['ok'] else 'BAD'} {record['case']}", flush=True)
    good = sum(r["ok"] for r in records)
    path = write_results(
        RESULTS,
        {"cases": len(records), "behaved_well": good, "results": records},
    )
    print(f"{good}/{len(records)} cases behaved well; wrote {path}")


if __name__ == "__main__":
    main()
