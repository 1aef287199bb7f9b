"""Hostile inputs and faults for the command line, shared by tests/test_reliability.py and
bench/hostile_inputs.py.

:func:`make_files` writes, under one work folder, the bad files a hostile but realistic user
would hand the tools (empty, random, truncated and dynamic-shape models, bad data, a
directory where a file goes, a file where a directory goes, corrupt search state) plus a
created (not built) micro project. :func:`cases` lists the command lines to try on them;
each must end with its expected exit status, exactly one line on stderr, no traceback and
none of its outputs left behind (:func:`problems`). The special faults that need a device
or a signal (:func:`noise_run`, :func:`interrupted_run`) drive the CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from micro_fixture import N_OUT, make_artifact  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOISE = bytes(b for b in range(256) if b not in b"MCUF") * 64  # no frame magic anywhere


@dataclass(frozen=True)
class Case:
    """One command line and what must hold after it."""

    name: str
    argv: list[str]
    status: int = 2
    absent: tuple[str, ...] = ()  # paths (relative to the work folder) that must not exist
    says: str = ""  # text the error line must contain


@dataclass
class Outcome:
    """What a command did: exit status, stderr lines, and how long it took."""

    status: int
    stderr: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _tiny_modules():
    import torch

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(16, N_OUT)

        def forward(self, x):
            return self.fc(x.flatten(1))

    torch.manual_seed(0)
    return Flat().eval(), torch.randn(2, 1, 4, 4)


def make_files(work: Path) -> None:
    """Write every bad (and the few good) files the cases use into ``work``."""
    import torch

    work.mkdir(parents=True, exist_ok=True)
    model, x = _tiny_modules()
    torch.export.save(torch.export.export(model, (x[:1],)), work / "good.pt2")
    dyn = {0: torch.export.Dim("batch")}
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=(dyn,)), work / "dyn.pt2")
    onnx_args = {"dynamo": False, "opset_version": 17, "input_names": ["x"]}
    torch.onnx.export(model, (x[:1],), str(work / "good.onnx"), **onnx_args)
    torch.onnx.export(
        model, (x,), str(work / "dyn.onnx"), dynamic_axes={"x": {0: "batch"}}, **onnx_args
    )
    rng = np.random.default_rng(0)
    for suffix in ("pt2", "onnx", "tflite"):
        (work / f"empty.{suffix}").write_bytes(b"")
        (work / f"random.{suffix}").write_bytes(rng.bytes(4096))
    for suffix in ("pt2", "onnx"):
        data = (work / f"good.{suffix}").read_bytes()
        (work / f"truncated.{suffix}").write_bytes(data[: len(data) // 2])
    (work / "folder.pt2").mkdir(exist_ok=True)
    (work / "outdir").mkdir(exist_ok=True)
    (work / "plainfile").write_text("not a folder\n")
    (work / "text.npz").write_text("1 2 3\n")
    np.savez(work / "nan_calib.npz", x=np.full((4, 1, 4, 4), np.nan, np.float32))
    np.savez(work / "inf_calib.npz", x=np.full((4, 1, 4, 4), np.inf, np.float32))
    np.savez(work / "zero_calib.npz", x=np.zeros((4, 1, 4, 4), np.float32))
    np.savez(work / "empty_calib.npz", x=np.zeros((0, 1, 4, 4), np.float32))
    np.savez(work / "scalar_calib.npz", x=np.float32(1.0))
    np.savez(work / "shape_calib.npz", x=np.ones((4, 3, 3), np.float32))
    good = rng.normal(size=(6, 1, 4, 4)).astype(np.float32)
    bad = good.copy()
    bad[3, 0, 1, 1] = np.nan
    np.savez(work / "nan_inputs.npz", x=bad)
    np.savez(work / "bad_labels.npz", x=good, labels=np.array([0, 1, 2, 3, 4, 99]))
    np.savez(work / "good_inputs.npz", x=good, labels=np.arange(6) % N_OUT)
    search = work / "search_corrupt"
    search.mkdir(exist_ok=True)
    (search / "search_state.json").write_text('{"version": 1, "rounds": ')
    ckpt = work / "garbage.pt"
    ckpt.write_bytes(rng.bytes(2048))
    from tvm_mcuformer.micro import create_project

    artifact = make_artifact(work / "toy.tar")
    if not (work / "proj" / "project.json").exists():
        create_project(work / "proj", artifact, "baremetal")


def cases() -> list[Case]:
    """The command lines to try, relative to the work folder."""
    out: list[Case] = []
    for suffix in ("pt2", "onnx", "tflite"):
        for kind in ("empty", "random", "truncated"):
            if kind == "truncated" and suffix == "tflite":
                continue
            says = {
                "empty": "is empty",
                "pt2": "as a torch.export program",
                "onnx": "as an ONNX model",
                "tflite": "as a TFLite model",
            }["empty" if kind == "empty" else suffix]
            out.append(
                Case(
                    f"compile {kind} .{suffix}",
                    ["compile", f"{kind}.{suffix}", "-o", "out/a.tar"],
                    absent=("out",),
                    says=says,
                )
            )
    out += [
        Case(
            "compile dynamic .pt2",
            ["compile", "dyn.pt2", "-o", "o.tar"],
            absent=("o.tar",),
            says="has dynamic shape",
        ),
        Case(
            "compile dynamic .onnx",
            ["compile", "dyn.onnx", "-o", "o.tar"],
            absent=("o.tar",),
            says="has dynamic shape (batch, 1, 4, 4)",
        ),
        Case(
            "compile folder as model",
            ["compile", "folder.pt2", "-o", "o.tar"],
            says="is a directory",
        ),
        Case(
            "compile missing model",
            ["compile", "nope.pt2", "-o", "o.tar"],
            absent=("o.tar",),
            says="does not exist",
        ),
        Case("compile -o folder", ["compile", "good.pt2", "-o", "outdir"], says="is a directory"),
        Case(
            "compile -o under a file",
            ["compile", "good.pt2", "-o", "plainfile/a.tar"],
            says="is a file, not a directory",
        ),
        Case(
            "compile -o unwritable",
            ["compile", "good.pt2", "-o", "/proc/mcuformer.tar"],
            says="cannot write in /proc",
        ),
        Case(
            "compile bad --sram",
            ["compile", "good.pt2", "-o", "o.tar", "--sram", "lots"],
            says="cannot read size 'lots'",
        ),
        Case(
            "compile --sram 0",
            ["compile", "good.pt2", "-o", "o.tar", "--sram", "0"],
            says="must be a positive",
        ),
    ]
    calib_says = {
        "text": "is not a readable .npz",
        "nan_calib": "holds NaN or Inf",
        "inf_calib": "holds NaN or Inf",
        "zero_calib": "is all zeros",
        "empty_calib": "holds no samples",
        "scalar_calib": "holds no samples",
    }
    for name, says in calib_says.items():
        out.append(
            Case(
                f"compile --calib {name}.npz",
                ["compile", "good.pt2", "-o", "o.tar", "--calib", f"{name}.npz"],
                absent=("o.tar", "o.memory.png"),
                says=says,
            )
        )
    out.append(
        Case(
            "compile --calib wrong shape",
            ["compile", "good.pt2", "-o", "o.tar", "--calib", "shape_calib.npz"],
            absent=("o.tar",),
            says="has samples of shape [3, 3]",
        )
    )
    run = ["run", "proj", "--quiet"]
    out += [
        Case(
            "run --report folder",
            [*run, "--inputs", "good_inputs.npz", "--report", "outdir"],
            says="is a directory",
        ),
        Case(
            "run --report under a file",
            [*run, "--inputs", "good_inputs.npz", "--report", "plainfile/r.json"],
            says="is a file, not a directory",
        ),
        Case(
            "run --outputs folder",
            [*run, "--inputs", "good_inputs.npz", "--report", "r.json", "--outputs", "outdir"],
            absent=("r.json",),
            says="--outputs outdir is a directory",
        ),
        Case(
            "run --inputs text file",
            [*run, "--inputs", "text.npz", "--report", "r.json"],
            absent=("r.json", "r.json.partial"),
            says="is not a readable .npz",
        ),
        Case(
            "run --inputs folder",
            [*run, "--inputs", "outdir", "--report", "r.json"],
            absent=("r.json",),
            says="is a directory",
        ),
        Case(
            "run --inputs with NaN",
            [*run, "--inputs", "nan_inputs.npz", "--report", "r.json"],
            absent=("r.json", "r.json.partial"),
            says="sample 3 holds NaN or Inf",
        ),
        Case(
            "run labels out of range",
            [*run, "--inputs", "bad_labels.npz", "--report", "r.json"],
            absent=("r.json", "r.json.partial"),
            says="label 99 of sample 5 is outside",
        ),
        Case(
            "run unbuilt project",
            [*run, "--inputs", "good_inputs.npz", "--report", "r.json"],
            absent=("r.json", "r.json.partial"),
            says="run `tvm-mcuformer micro build` first",
        ),
        Case(
            "run --timeout 0",
            [*run, "--inputs", "good_inputs.npz", "--report", "r.json", "--timeout", "0"],
            says="not a positive finite number",
        ),
        Case(
            "run --timeout -1",
            [*run, "--inputs", "good_inputs.npz", "--report", "r.json", "--timeout", "-1"],
            says="not a positive finite number",
        ),
        Case(
            "run --limit 0",
            [*run, "--dataset", "digits", "--report", "r.json", "--limit", "0"],
            says="not a positive finite number",
        ),
        Case(
            "micro build -j -3",
            ["micro", "build", "proj", "-j", "-3"],
            says="not a positive finite number",
        ),
        Case(
            "micro build not a project", ["micro", "build", "outdir"], says="is not a micro project"
        ),
        Case(
            "micro create under a file",
            ["micro", "create", "plainfile/p", "toy.tar", "baremetal"],
            says="is a file, not a directory",
        ),
        Case(
            "micro create from a model",
            ["micro", "create", "p2", "good.pt2", "baremetal"],
            absent=("p2",),
            says="is not a readable tar file",
        ),
        Case(
            "search -o file",
            ["search", "--dataset", "digits", "-o", "plainfile", "--quick"],
            says="is a file, not a directory",
        ),
        Case(
            "search corrupt state",
            ["search", "--dataset", "digits", "-o", "search_corrupt", "--quick"],
            says="search_state.json is corrupt",
        ),
        Case(
            "search bad --sram",
            ["search", "--dataset", "digits", "-o", "s", "--sram", "-1"],
            says="cannot read size '-1'",
        ),
    ]
    return out


def problems(case: Case, outcome: Outcome, work: Path) -> list[str]:
    """What is wrong with ``outcome`` for ``case`` (empty: it behaved well)."""
    found = []
    if outcome.status != case.status:
        found.append(f"exit status {outcome.status}, expected {case.status}")
    if len(outcome.stderr) != 1:
        found.append(f"{len(outcome.stderr)} stderr lines, expected 1")
    if any("Traceback" in line for line in outcome.stderr):
        found.append("traceback on stderr")
    if case.says and not any(case.says in line for line in outcome.stderr):
        found.append(f"no {case.says!r} on stderr")
    for rel in case.absent:
        if (work / rel).exists():
            found.append(f"{rel} left behind")
    leftovers = [p.name for p in work.iterdir() if p.name.startswith(".") and ".tmp" in p.name]
    if leftovers:
        found.append(f"temporary files left: {leftovers}")
    return found


def cli_env(tmpdir: Path | None = None) -> dict[str, str]:
    """Environment for a CLI subprocess: this checkout first, a private TMPDIR if given."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def run_cli(argv: list[str], work: Path, timeout: float = 300) -> Outcome:
    """Run ``tvm-mcuformer ARGV`` in a subprocess in ``work``."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tvm_mcuformer.cli", *argv],
        cwd=work,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Outcome(result.returncode, result.stderr.splitlines(), time.monotonic() - start)


def zephyr_project_on_pty(work: Path) -> Path:
    """A Zephyr project whose build outputs exist (never run), for a board on a pty."""
    from tvm_mcuformer.micro import create_project

    root = work / "zproj"
    if not (root / "project.json").exists():
        create_project(root, make_artifact(work / "ztoy.tar"), "zephyr")
    (root / "build").mkdir(exist_ok=True)
    for name in ("firmware.elf", "host_runner"):
        (root / "build" / name).write_bytes(b"")
    return root


def noise_run(work: Path, timeout: float = 5.0, bytes_per_second: float | None = None) -> Outcome:
    """``run --port PTY --timeout T`` against a "board" that streams bytes without a frame.

    ``bytes_per_second`` None streams as fast as the pty takes (the resynchronization limit
    must end it); a rate keeps under that limit (the deadline must end it).
    """
    root = zephyr_project_on_pty(work)
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    stop = threading.Event()

    def stream() -> None:
        chunk = NOISE[:256] if bytes_per_second else NOISE
        pause = len(chunk) / bytes_per_second if bytes_per_second else 0.0
        while not stop.is_set():
            try:
                os.write(master, chunk)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                return
            if pause:
                time.sleep(pause)

    os.set_blocking(master, False)
    writer = threading.Thread(target=stream, daemon=True)
    writer.start()
    try:
        argv = ["run", str(root), "--inputs", "good_inputs.npz", "--report", "noise.json"]
        outcome = run_cli([*argv, "--port", port, "--timeout", str(timeout), "--quiet"], work)
    finally:
        stop.set()
        writer.join(timeout=5)
        os.close(master)
        os.close(slave)
    return outcome


def build_slow_project(work: Path) -> Path:
    """A built bare-metal project whose samples take a while each (spin loops)."""
    from tvm_mcuformer.micro import build_project, create_project

    root = work / "slow"
    if not (root / "build" / "firmware.elf").exists():
        create_project(root, make_artifact(work / "slow.tar"), "baremetal", force=True)
        build_project(root)
    return root


def slow_inputs(work: Path, n: int = 200, spin: int = 5_000_000) -> Path:
    """``n`` samples that each spin ``2 * spin`` instructions on the device."""
    x = np.random.default_rng(1).normal(size=(n, 1, 4, 4)).astype(np.float32)
    x[:, 0, 0, 0] = spin
    path = work / "slow_inputs.npz"
    np.savez(path, x=x, labels=np.arange(n) % N_OUT)
    return path


def interrupted_run(
    work: Path, project: Path, inputs: Path, report: Path, sig: int, resume: bool = False
) -> tuple[Outcome, int, list[str]]:
    """Start ``run``, send ``sig`` once a few samples are journaled, wait for it to end.

    Returns the outcome, the number of journaled samples when the signal was sent, and the
    temporary folders it left in its private TMPDIR.
    """
    tmpdir = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))
    argv = ["run", str(project), "--inputs", str(inputs), "--report", str(report), "--quiet"]
    if resume:
        argv.append("--resume")
    journal = report.with_name(report.name + ".partial")
    before = _journaled(journal)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tvm_mcuformer.cli", *argv],
        cwd=work,
        env=cli_env(tmpdir),
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background (``cmd &``) ignores SIGINT, and a child
        # inherits that: the CLI must see the signal the way a terminal user's would.
        preexec_fn=_default_signals,
    )
    done = before
    while proc.poll() is None and time.monotonic() - start < 240:
        done = _journaled(journal)
        if done >= before + 5:
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    outcome = Outcome(proc.returncode, err.splitlines(), time.monotonic() - start)
    left = [p.name for p in tmpdir.iterdir()]
    return outcome, done, left


def _default_signals() -> None:
    for sig in SIGNALS.values():
        signal.signal(sig, signal.SIG_DFL)


def _journaled(journal: Path) -> int:
    try:
        return max(0, len(journal.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def load_report(path: Path) -> dict:
    """The report at ``path`` without its wall-clock fields (which differ run to run)."""
    report = json.loads(path.read_text())
    for key in ("wall_seconds", "inferences_per_second_host"):
        report["latency"].pop(key)
    return report


def report_differences(got: dict, reference: dict) -> list[str]:
    """Where two reports (from :func:`load_report`) differ beyond the device counter's
    resolution: QEMU's timer ticks every 40 instructions, so a sample's count depends on the
    tick phase at its start, which a restarted firmware does not share."""
    got, reference = json.loads(json.dumps(got)), json.loads(json.dumps(reference))
    tolerance = reference["latency"].get("resolution_instructions") or 0
    out = []
    for key in set(got["latency"]) | set(reference["latency"]):
        a, b = got["latency"].get(key), reference["latency"].get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and key != "macs":
            limit = (
                tolerance / (reference["latency"].get("macs") or 1)
                if "per_mac" in key
                else tolerance
            )
            if abs(a - b) > limit:
                out.append(f"latency.{key}: {a} vs {b}")
        elif a != b and key != "per_op":
            out.append(f"latency.{key}: {a} vs {b}")
    got.pop("latency"), reference.pop("latency")
    out += [
        f"{key}: differs" for key in set(got) | set(reference) if got.get(key) != reference.get(key)
    ]
    return out


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
