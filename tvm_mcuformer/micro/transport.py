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

from tvm_mcuformer.micro import MicroError, ToolError
from tvm_mcuformer.micro import protocol as proto
from tvm_mcuformer.micro.project import Project

DEFAULT_TIMEOUT = 120.0  # seconds to wait for one reply
_POLL_SLICE = 0.05  # seconds between checks that the process is still alive
_STDERR_TAIL = 4000
_READ_CHUNK = 65536
# Bytes skipped looking for a frame start before the link is declared out of sync (a boot
# banner is far shorter; 64 KiB is ~6 s of garbage on a 115200-baud UART).
RESYNC_LIMIT = 64 * 1024
MAX_PROFILED_CALLS = 1 << 16  # bounds a PROFILE reply (one u64 per kernel call)


class DeviceError(MicroError):
    """The firmware died, hung, or answered something unusable."""

    exit_status = 1


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
        self._rx = bytearray()  # received bytes not yet consumed by a frame
        # Largest reply payload accepted: INFO's until INFO says the output size.
        self.max_payload = proto.INFO_REPLY.size
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

    def _fill(self, deadline: float, doing: str) -> None:
        """Append at least one received byte to the receive buffer, or raise.

        The deadline is checked on every pass, whether or not bytes are arriving, so a link
        that streams noise times out like a silent one.
        """
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceError(
                    f"{self.name}: no reply within {self.timeout:g} s while {doing} "
                    f"(firmware hung or too slow: raise the timeout){self._stderr_tail()}"
                )
            ready, _, _ = select.select([self._read_fd], [], [], min(_POLL_SLICE, remaining))
            if not ready:
                self._check_alive(doing)
                continue
            try:
                data = os.read(self._read_fd, _READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                raise self._died(doing) from None
            if not data:
                if self._process is not None:
                    try:
                        self._process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                raise self._died(doing)
            self._rx += data
            return

    def _read_frame(self, deadline: float, doing: str) -> proto.Frame:
        """Read the next frame: skip bytes before its magic (boot banners, line noise) up to
        :data:`RESYNC_LIMIT`, refuse payloads over ``max_payload``, all within ``deadline``."""
        skipped = 0
        while True:
            start = self._rx.find(proto.MAGIC)
            # Without a magic, keep only a tail that could be the start of one.
            drop = start if start >= 0 else max(0, len(self._rx) - (len(proto.MAGIC) - 1))
            del self._rx[:drop]
            skipped += drop
            if skipped > RESYNC_LIMIT:
                raise DeviceError(
                    f"{self.name}: {skipped} bytes without a frame start while {doing} (noise "
                    "on the link, a wrong baud rate, or firmware printing): check the "
                    "connection and the firmware"
                )
            if start >= 0 and len(self._rx) >= proto.HEADER_BYTES:
                _, _, length = proto.decode_header(bytes(self._rx[: proto.HEADER_BYTES]))
                if length > self.max_payload:
                    raise proto.ProtocolError(
                        f"{self.name}: frame announces a {length}-byte payload, at most "
                        f"{self.max_payload} expected (corrupted link)"
                    )
                total = proto.HEADER_BYTES + length + proto.CRC_BYTES
                while len(self._rx) < total:
                    self._fill(deadline, doing)
                data = bytes(self._rx[:total])
                del self._rx[:total]
                return proto.decode_frame(data)
            self._fill(deadline, doing)

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
        self.max_payload = max(
            proto.INFO_REPLY.size, proto.INFER_REPLY_HEAD.size + self.info.output_bytes
        )
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
        seq = self.send(proto.REQ_PROFILE)
        limit, self.max_payload = self.max_payload, 8 * MAX_PROFILED_CALLS
        try:
            return proto.parse_profile(self.receive(proto.REQ_PROFILE, seq))
        finally:
            self.max_payload = limit

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
        raise ToolError("qemu-system-arm not found: install it (apt-get install qemu-system-arm)")
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
