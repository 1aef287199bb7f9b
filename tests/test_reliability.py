"""Hostile inputs and faults: one line, the right exit status, nothing half-written, no hang.

The case table (tests/hostile_cases.py) runs in-process through ``cli.main`` (fast: one
import of torch and TVM); the faults that need a signal or a device (noise on a serial
link, SIGINT/SIGTERM during ``run`` and ``--resume``) drive the CLI in subprocesses.
The frame reader is tested against fake devices on pipes, and fuzzed (seeded, time-bounded)
with the size parser, the artifact reader and the model loaders.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import hostile_cases as hc  # noqa: E402

from tvm_mcuformer.artifact import Artifact, ArtifactError  # noqa: E402
from tvm_mcuformer.boards import parse_size  # noqa: E402
from tvm_mcuformer.cli import main  # noqa: E402
from tvm_mcuformer.micro import MicroError  # noqa: E402
from tvm_mcuformer.micro import protocol as proto  # noqa: E402
from tvm_mcuformer.micro.evaluate import evaluate  # noqa: E402
from tvm_mcuformer.micro.transport import RESYNC_LIMIT, Session  # noqa: E402
from tvm_mcuformer.training import CheckpointError, load_checkpoint  # noqa: E402

FUZZ_SECONDS = 2.0  # budget of each fuzz test


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile")
    hc.make_files(path)
    return path


@pytest.mark.parametrize("case", hc.cases(), ids=lambda c: c.name)
def test_hostile_case(case, work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    capfd.readouterr()
    start = time.monotonic()
    status = main(case.argv)
    _, err = capfd.readouterr()
    outcome = hc.Outcome(status, err.splitlines(), time.monotonic() - start)
    assert hc.problems(case, outcome, work) == [], err


def test_one_case_through_a_subprocess(work):
    case = next(c for c in hc.cases() if c.name == "compile random .pt2")
    outcome = hc.run_cli(case.argv, work)
    assert hc.problems(case, outcome, work) == [], outcome.stderr
    assert "cannot read 'random.pt2' as a torch.export program" in outcome.stderr[0]


def test_dynamic_shape_is_named(work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    assert main(["compile", "dyn.onnx", "-o", "o.tar"]) == 2
    assert "input 'x' has dynamic shape (batch, 1, 4, 4)" in capfd.readouterr().err


def test_verbose_shows_the_traceback(work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    assert main(["--verbose", "compile", "empty.onnx", "-o", "o.tar"]) == 2
    err = capfd.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("tvm-mcuformer")


def test_budget_above_the_board_warns(work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    assert main(["compile", "good.pt2", "-o", "w.tar", "--quantize", "none", "--sram", "1GiB"]) == 0
    assert "SRAM budget 1073741824 B is above board mps2-an500's" in capfd.readouterr().err
    assert oct((work / "w.tar").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the frame reader against fake devices --------------------------------------------------


def _fake_link(feed, timeout: float) -> tuple[Session, threading.Event]:
    """A session whose device is ``feed(write_fd, stop_event)`` running in a thread."""
    device_r, host_w = os.pipe()  # requests (nobody reads them: they are small)
    host_r, device_w = os.pipe()
    stop = threading.Event()

    def run() -> None:
        try:
            feed(device_w, stop)
        except OSError:
            pass

    threading.Thread(target=run, daemon=True).start()
    session = Session("fake device", host_r, host_w, timeout=timeout)
    session._extra_fds = (device_r, device_w)
    return session, stop


def _close(session: Session, stop: threading.Event) -> None:
    stop.set()
    session.abort()
    for fd in session._extra_fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _noise(rate: float | None):
    def feed(fd: int, stop: threading.Event) -> None:
        os.set_blocking(fd, False)
        chunk = hc.NOISE[:128] if rate else hc.NOISE
        while not stop.is_set():
            try:
                os.write(fd, chunk)
            except BlockingIOError:
                time.sleep(0.001)
            if rate:
                time.sleep(len(chunk) / rate)

    return feed


def _then_silence(data: bytes):
    def feed(fd: int, stop: threading.Event) -> None:
        os.write(fd, data)
        stop.wait(30)

    return feed


def _info_reply(seq: int = 1) -> bytes:
    payload = proto.INFO_REPLY.pack(proto.VERSION, 64, 40, 1024, 8192, 1)
    return proto.encode_frame(proto.REQ_INFO | proto.REPLY_FLAG, seq, payload)


HUGE = proto.HEADER.pack(proto.MAGIC, proto.VERSION, 0x81, 0, 1, 0xFFFFFFF0)


@pytest.mark.parametrize(
    "feed, expect",
    [
        (_noise(None), "bytes without a frame start"),
        (_noise(20_000), "no reply within 1 s"),
        (_then_silence(HUGE), "announces a 4294967280-byte payload"),
        (_then_silence(_info_reply()[:-6]), "no reply within 1 s"),
        (_then_silence(b""), "no reply within 1 s"),
        (_then_silence(b"M" * 100 + b"MCU"), "no reply within 1 s"),
    ],
    ids=["fast noise", "slow noise", "huge length", "truncated frame", "nothing", "magic prefix"],
)
def test_frame_reader_ends_on_a_bad_link(feed, expect):
    session, stop = _fake_link(feed, timeout=1.0)
    start = time.monotonic()
    try:
        with pytest.raises(MicroError, match=expect):
            session.request_info()
    finally:
        _close(session, stop)
    assert time.monotonic() - start < 3.0


def test_frame_reader_skips_a_boot_banner():
    banner = b"booting mcuformer...\r\n" * 40 + b"MCU"
    session, stop = _fake_link(_then_silence(banner + _info_reply()), timeout=2.0)
    try:
        assert session.request_info().output_bytes == 40
    finally:
        _close(session, stop)
    assert len(banner) < RESYNC_LIMIT


def test_run_against_a_noisy_board_ends_in_time(work):
    outcome = hc.noise_run(work, timeout=5.0, bytes_per_second=5_000)
    assert outcome.status == 1 and len(outcome.stderr) == 1, outcome.stderr
    assert "no reply within 5 s" in outcome.stderr[0]
    # Interpreter start-up (torch and TVM imports) comes on top of the 5 s.
    assert outcome.seconds < 10 + 30
    assert not (work / "noise.json").exists() and not (work / "noise.json.partial").exists()


# -- interrupts and resume --------------------------------------------------------------------


def test_interrupted_run_resumes_to_the_same_report(work):
    project = hc.build_slow_project(work)
    inputs = hc.slow_inputs(work, n=60, spin=2_000_000)
    with np.load(inputs) as data:
        reference = evaluate(project, data["x"], data["labels"], progress=False)
    reference.pop("outputs")
    report = work / "slow.json"
    first, done1, left1 = hc.interrupted_run(work, project, inputs, report, signal.SIGINT)
    assert (first.status, first.stderr) == (130, ["tvm-mcuformer run: interrupted"]), (
        done1,
        first.seconds,
    )
    assert left1 == [] and not report.exists() and done1 >= 5
    second, done2, left2 = hc.interrupted_run(
        work, project, inputs, report, signal.SIGTERM, resume=True
    )
    if second.status == 0:  # finished before the signal: the resume still happened
        assert report.exists()
    else:
        assert (second.status, second.stderr) == (143, ["tvm-mcuformer run: interrupted (SIGTERM)"])
        assert left2 == [] and not report.exists() and done2 > done1
        third = hc.run_cli(
            ["run", str(project), "--inputs", str(inputs), "--report", str(report), "--resume"],
            work,
        )
        assert third.status == 0, third.stderr
    got = hc.load_report(report)
    for key in ("wall_seconds", "inferences_per_second_host"):
        reference["latency"].pop(key)
    assert hc.report_differences(got, reference) == []
    assert not report.with_name("slow.json.partial").exists()


def test_interrupted_main_restores_the_callers_signal_handlers(monkeypatch, capsys):
    """In-process ``main`` ignores a repeated signal during its interrupt cleanup, then gives
    the caller back its own handlers (else every later child would inherit an ignored SIGINT)."""
    import tvm_mcuformer.cli as cli

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_demo", interrupted)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["demo", "--out", "unused"]) == 130
    assert capsys.readouterr().err.strip() == "tvm-mcuformer demo: interrupted"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_existing_journal_needs_resume(work, capfd, monkeypatch):
    monkeypatch.chdir(work)
    project = hc.build_slow_project(work)
    (work / "j.json.partial").write_text('{"format": "mcuformer-run-journal/1"}\n')
    status = main(["run", str(project), "--inputs", "good_inputs.npz", "--report", "j.json"])
    assert status == 2
    assert "holds an interrupted run: pass --resume" in capfd.readouterr().err


# -- checkpoints ----------------------------------------------------------------------------


def test_garbage_checkpoint_is_one_clear_line(work):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(work / "garbage.pt")
    text = str(err.value)
    assert "garbage.pt is corrupt" in text and "weights_only" not in text and "\n" not in text


# -- fuzzing (seeded, time-bounded) ---------------------------------------------------------


def _mutations(seed: int, valid: list[bytes]):
    """Endless mutated byte strings: flips, truncations, splices and random bytes."""
    rng = np.random.default_rng(seed)
    while True:
        data = bytearray(valid[int(rng.integers(len(valid)))])
        kind = int(rng.integers(4))
        if kind == 0 and data:
            for _ in range(int(rng.integers(1, 8))):
                data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data = data[: int(rng.integers(len(data) + 1))]
        elif kind == 2:
            at = int(rng.integers(len(data) + 1))
            data[at:at] = rng.bytes(int(rng.integers(1, 64)))
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 256))))
        yield bytes(data)


def _fuzz(seed: int, valid: list[bytes], check) -> int:
    deadline = time.monotonic() + FUZZ_SECONDS
    count = 0
    for data in _mutations(seed, valid):
        check(data)
        count += 1
        if time.monotonic() > deadline:
            return count
    return count


def test_fuzz_frame_decoder():
    frames = [
        _info_reply(),
        proto.encode_frame(proto.REQ_INFER | proto.REPLY_FLAG, 2, bytes(56)),
        proto.encode_frame(proto.ERROR, 3, struct.pack("<I", 1)),
    ]

    def check(data: bytes) -> None:
        try:
            proto.decode_frame(data)
        except proto.ProtocolError:
            pass

    assert _fuzz(1, frames, check) > 100


def test_fuzz_frame_reader():
    frames = [_info_reply(), HUGE, hc.NOISE[:300] + _info_reply()]

    def check(data: bytes) -> None:
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)  # then EOF: the reader must end with a frame or a MicroError
        session = Session("fuzz", r, os.dup(r), timeout=1.0)
        session.max_payload = 4096
        start = time.monotonic()
        try:
            session._read_frame(time.monotonic() + 1.0, "fuzzing")
        except MicroError:
            pass
        finally:
            session.abort()
        assert time.monotonic() - start < 1.5

    assert _fuzz(2, frames, check) > 50


def test_fuzz_size_parser():
    rng = np.random.default_rng(3)
    alphabet = list("0123456789.kKmMgGiIbB -+e") + ["KiB", "MiB", "GiB"]
    deadline = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < deadline:
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 8))))
        try:
            value = parse_size(text)
        except ValueError as err:
            assert "\n" not in str(err)
        else:
            assert isinstance(value, int) and value > 0


def test_fuzz_artifact_reader(work, tmp_path):
    valid = (work / "toy.tar").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / "fuzz.tar"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            Artifact.read(path)
        except ArtifactError as err:
            assert str(path) in str(err)

    assert _fuzz(4, [valid, buf.getvalue()], check) > 20


@pytest.mark.parametrize("suffix", ["pt2", "onnx"])
def test_fuzz_model_loaders(work, tmp_path, suffix):
    from tvm_mcuformer.frontend import import_model

    valid = (work / f"good.{suffix}").read_bytes()
    path = tmp_path / f"fuzz.{suffix}"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            import_model(path)
        except ValueError as err:
            assert "\n" not in str(err)

    assert _fuzz(5, [valid], check) > 3
