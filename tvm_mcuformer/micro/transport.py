"""Talk the framed protocol to a running firmware: in QEMU, on the host, or on a board.

:class:`Session` sends requests and reads replies over a pair of file descriptors with
deadlines, and watches the process behind them (QEMU or the host runner) so a dead or hung
firmware gives a :class:`DeviceError` carrying its exit status and stderr instead of a hang.
Open one with :func:`start_qemu` (bare-metal image on a QEMU mps2 board, link = semihosting
file I/O on two named pipes), :func:`start_host` (``build/host_runner``, link = its
stdin/stdout) or :func:`open_serial` (a board's UART), or with :func:`open_device` for a
project's device.

QEMU runs with ``-icount shift=0``: each guest instruction takes 1 ns of virtual time, which
the firmware turns into a retired-instruction count (40 per 25 MHz timer tick; resolution 40
instructions).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import termios
import time
import tty
from pathlib import Path

from tvm_mcuformer.micro import MicroError
from tvm_mcuformer.micro import protocol as proto
from tvm_mcuformer.micro.project import Project

DEFAULT_TIMEOUT = 120.0  # seconds to wait for one reply
_POLL_SLICE = 0.05  # seconds between checks that the process is still alive
_STDERR_TAIL = 4000


class DeviceError(MicroError):
    """The firmware died, hung, or answered something unusable."""


class Session:
    """One conversation with a running firmware; close it (or use ``with``) when done.

    Any failed request aborts the session (the firmware is stopped): the link state is
    unknown after a timeout, a CRC error or an unexpected reply.
    """

    def __init__(
        self,
        name: str,
        read_fd: int,
        write_fd: int,
        process: subprocess.Popen | None = None,
        stderr_path: Path | None = None,
        workdir: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._process = process
        self._stderr_path = stderr_path
        self._workdir = workdir
        self._seq = 0
        self._closed = False
        self.info: proto.Info | None = None
        for fd in {read_fd, write_fd}:
            os.set_blocking(fd, False)

    # -- diagnostics -------------------------------------------------------------------
    def _stderr_tail(self) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        text = self._stderr_path.read_bytes()[-_STDERR_TAIL:].decode(errors="replace").strip()
        return f"\n--- {self.name} stderr ---\n{text}" if text else ""

    def _died(self, doing: str) -> DeviceError:
        code = self._process.poll() if self._process else None
        if code is None:
            return DeviceError(f"{self.name}: link closed while {doing}{self._stderr_tail()}")
        meaning = proto.EXIT_MEANINGS.get(code, "unexpected exit status")
        if code < 0:
            meaning = f"killed by signal {-code}"
        return DeviceError(
            f"{self.name} exited with status {code} ({meaning}) while {doing}{self._stderr_tail()}"
        )

    def _check_alive(self, doing: str) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise self._died(doing)

    # -- raw I/O -----------------------------------------------------------------------
    def _write_all(self, data: bytes, deadline: float, doing: str) -> None:
        view = memoryview(data)
        while view:
            self._check_alive(doing)
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.name}: timed out after {self.timeout:g} s {doing}")
            _, ready, _ = select.select([], [self._write_fd], [], _POLL_SLICE)
            if not ready:
                continue
            try:
                view = view[os.write(self._write_fd, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                raise self._died(doing) from None

    def _read_exact(self, n: int, deadline: float, doing: str) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            ready, _, _ = select.select([self._read_fd], [], [], _POLL_SLICE)
            if not ready:
                self._check_alive(doing)
                if time.monotonic() > deadline:
                    raise DeviceError(
                        f"{self.name}: no reply within {self.timeout:g} s while {doing} "
                        f"(firmware hung or too slow: raise the timeout){self._stderr_tail()}"
                    )
                continue
            try:
                data = os.read(self._read_fd, n - len(chunks))
            except BlockingIOError:
                continue
            if not data:
                if self._process is not None:
                    try:
                        self._process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                raise self._died(doing)
            chunks += data
        return bytes(chunks)

    def _read_frame(self, deadline: float, doing: str) -> proto.Frame:
        header = self._read_exact(proto.HEADER_BYTES, deadline, doing)
        while header[:4] != proto.MAGIC:
            # Slide to the next magic, as the firmware does (boot banners, line noise).
            header = header[1:] + self._read_exact(1, deadline, doing)
        _, _, length = proto.decode_header(header)
        payload = self._read_exact(length, deadline, doing)
        crc = self._read_exact(proto.CRC_BYTES, deadline, doing)
        return proto.check_frame(header, payload, crc)

    # -- requests ----------------------------------------------------------------------
    def send(self, frame_type: int, payload: bytes = b"") -> int:
        """Send one request; return its sequence number for :meth:`receive`."""
        if self._closed:
            raise DeviceError(f"{self.name}: session already closed")
        self._seq += 1
        deadline = time.monotonic() + self.timeout
        frame = proto.encode_frame(frame_type, self._seq, payload)
        try:
            self._write_all(frame, deadline, "sending")
        except BaseException:
            self.abort()
            raise
        return self._seq

    def receive(self, frame_type: int, seq: int) -> bytes:
        """Wait for the reply to request ``seq`` of type ``frame_type``; return its payload."""
        doing = f"waiting for the reply to request {seq}"
        try:
            frame = self._read_frame(time.monotonic() + self.timeout, doing)
            return proto.expect_reply(frame, frame_type, seq)
        except BaseException:
            self.abort()  # the link state is unknown: stop the firmware
            raise

    def request_info(self) -> proto.Info:
        """Ask the firmware what it runs (INFO); remember and return the answer."""
        self.info = proto.parse_info(self.receive(proto.REQ_INFO, self.send(proto.REQ_INFO)))
        if self.info.version != proto.VERSION:
            raise DeviceError(f"{self.name}: firmware protocol version {self.info.version}")
        return self.info

    def send_infer(self, data: bytes) -> int:
        """Send one input tensor (INFER); return the sequence number for :meth:`receive_infer`."""
        return self.send(proto.REQ_INFER, data)

    def receive_infer(self, seq: int) -> proto.InferResult:
        """Wait for the result of INFER request ``seq``."""
        if self.info is None:
            raise DeviceError(f"{self.name}: request INFO before running inferences")
        return proto.parse_infer(self.receive(proto.REQ_INFER, seq), self.info.output_bytes)

    def request_profile(self) -> list[int]:
        """The counter after each kernel call of the last inference (PROFILE), cumulative."""
        return proto.parse_profile(self.receive(proto.REQ_PROFILE, self.send(proto.REQ_PROFILE)))

    def infer(self, data: bytes) -> proto.InferResult:
        """Run one inference and return its result."""
        return self.receive_infer(self.send_infer(data))

    def close(self) -> None:
        """Send EXIT, wait for the firmware to exit cleanly, release everything."""
        if self._closed:
            return
        try:
            self.receive(proto.REQ_EXIT, self.send(proto.REQ_EXIT))
            if self._process is not None:
                try:
                    code = self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    raise DeviceError(f"{self.name}: did not exit after EXIT") from None
                if code != proto.EXIT_OK:
                    raise self._died("exiting")
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the firmware without the EXIT handshake and release everything."""
        if self._closed:
            return
        self._closed = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for fd in {self._read_fd, self._write_fd}:
            os.close(fd)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def qemu_command(machine: str, elf: Path) -> list[str]:
    """The QEMU command line that runs ``elf`` on ``machine`` as the transport expects."""
    return [
        "qemu-system-arm",
        "-M",
        machine,
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "null",
        "-kernel",
        str(elf.resolve()),
    ]


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise MicroError(f"{what} {path} not found: run `tvm-mcuformer micro build` first")


def start_qemu(elf: Path, machine: str, timeout: float = DEFAULT_TIMEOUT) -> Session:
    """Boot ``elf`` on QEMU board ``machine`` and return a session (INFO already answered)."""
    _require_file(elf, "firmware")
    if shutil.which("qemu-system-arm") is None:
        raise MicroError("qemu-system-arm not found: install it (apt-get install qemu-system-arm)")
    workdir = Path(tempfile.mkdtemp(prefix="mcuformer-qemu-"))
    try:
        for name in ("req.fifo", "resp.fifo"):
            os.mkfifo(workdir / name)
        # O_RDWR: neither side blocks in open(); we hold both ends, so QEMU's death shows up
        # through the process, not as EOF.
        req = os.open(workdir / "req.fifo", os.O_RDWR | os.O_NONBLOCK)
        resp = os.open(workdir / "resp.fifo", os.O_RDWR | os.O_NONBLOCK)
        stderr_path = workdir / "qemu.log"
        with open(stderr_path, "wb") as log:
            process = subprocess.Popen(
                qemu_command(machine, elf),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    session = Session(f"QEMU {machine}", resp, req, process, stderr_path, workdir, timeout)
    return _handshake(session)


def start_host(runner: Path, timeout: float = DEFAULT_TIMEOUT) -> Session:
    """Start the host reference runner and return a session (INFO already answered)."""
    _require_file(runner, "host runner")
    workdir = Path(tempfile.mkdtemp(prefix="mcuformer-host-"))
    stderr_path = workdir / "stderr.log"
    with open(stderr_path, "wb") as log:
        process = subprocess.Popen(
            [str(runner.resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
    read_fd, write_fd = os.dup(process.stdout.fileno()), os.dup(process.stdin.fileno())
    process.stdout.close()
    process.stdin.close()
    session = Session("host runner", read_fd, write_fd, process, stderr_path, workdir, timeout)
    return _handshake(session)


def open_serial(port: str, baud: int = 115200, timeout: float = DEFAULT_TIMEOUT) -> Session:
    """Open a board's UART (raw 8N1 at ``baud``) and return a session (INFO already answered)."""
    speed = getattr(termios, f"B{baud}", None)
    if speed is None:
        raise MicroError(f"unsupported baud rate {baud}: use e.g. 115200 or 921600")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise MicroError(f"cannot open serial port {port}: {e.strerror}") from None
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[2] |= termios.CLOCAL | termios.CREAD
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        termios.tcflush(fd, termios.TCIOFLUSH)
    except termios.error as e:
        os.close(fd)
        raise MicroError(f"{port} is not a serial port ({e})") from None
    return _handshake(Session(f"board on {port}", fd, os.dup(fd), timeout=timeout))


def _handshake(session: Session) -> Session:
    try:
        session.request_info()
    except BaseException:
        session.abort()
        raise
    return session


def open_device(
    project: Project, port: str | None = None, baud: int = 115200, timeout: float = DEFAULT_TIMEOUT
) -> Session:
    """Open the device of ``project``: QEMU for bare metal, the board on ``port`` for Zephyr."""
    if project.platform == "baremetal":
        return start_qemu(project.firmware, project.qemu_board.qemu_machine, timeout)
    if port is None:
        raise MicroError(
            f"{project.root} is a Zephyr project for board {project.board}: flash it "
            "(`micro flash`) and pass the board's serial port (--port /dev/ttyACM0)"
        )
    return open_serial(port, baud, timeout)


def check_info(info: proto.Info, project: Project, name: str) -> None:
    """Raise :class:`DeviceError` unless the firmware's INFO matches the project's model."""
    expected = (project.input_bytes, project.output_bytes, project.arena_bytes)
    got = (info.input_bytes, info.output_bytes, info.arena_bytes)
    if got != expected:
        raise DeviceError(
            f"{name} runs another model: input/output/arena bytes {got}, project has "
            f"{expected}: rebuild (`micro build`) and flash again"
        )
