"""Host side of the framed protocol the firmware speaks on every platform.

Mirrors ``templates/core/mcuformer_protocol.h`` (a test keeps the constants in sync). A frame
is a 16-byte header (magic ``MCUF``, version u8, type u8, reserved u16, sequence u32, payload
length u32), the payload, and the CRC-32 (``zlib.crc32``) of header and payload; integers are
little-endian. :func:`encode_frame` builds one, :func:`decode_header` and :func:`check_frame`
take one apart and raise :class:`ProtocolError` on anything malformed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from tvm_mcuformer.micro import MicroError

MAGIC = b"MCUF"
VERSION = 1
HEADER = struct.Struct("<4sBBHII")
HEADER_BYTES = HEADER.size
CRC_BYTES = 4

REQ_INFO = 0x01
REQ_INFER = 0x02
REQ_EXIT = 0x03
REQ_PROFILE = 0x04  # reply: one u64 counter value after each kernel call of the last INFER
REPLY_FLAG = 0x80
ERROR = 0x7F

ERR_CRC = 1
ERR_LENGTH = 2
ERR_TYPE = 3
ERR_VERSION = 4
ERROR_NAMES = {
    ERR_CRC: "the request's CRC did not match (link corrupts data)",
    ERR_LENGTH: "the request's payload length is wrong for its type (input size mismatch?)",
    ERR_TYPE: "unknown request type",
    ERR_VERSION: "the host speaks another protocol version (rebuild the firmware)",
}

COUNTER_NONE = 0
COUNTER_INSTRUCTIONS = 1
COUNTER_CYCLES = 2
COUNTER_NAMES = {COUNTER_NONE: None, COUNTER_INSTRUCTIONS: "instructions", COUNTER_CYCLES: "cycles"}

EXIT_OK = 0
EXIT_IO = 1
EXIT_LINK_CLOSED = 2
EXIT_FAULT = 3
EXIT_MEANINGS = {
    EXIT_OK: "served an EXIT request",
    EXIT_IO: "firmware could not open its link to the host, or QEMU could not start",
    EXIT_LINK_CLOSED: "the host closed the link without an EXIT request",
    EXIT_FAULT: "CPU fault (stack overflow or bad memory access in the model?)",
}

INFO_REPLY = struct.Struct("<6I")
INFER_REPLY_HEAD = struct.Struct("<iIQ")


class ProtocolError(MicroError):
    """A frame was malformed, corrupted, or not the reply that was expected."""

    exit_status = 1


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Info:
    """The firmware's answer to INFO."""

    version: int
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    stack_bytes: int
    counter: str | None  # "instructions", "cycles", or None when nothing is counted


@dataclass(frozen=True)
class InferResult:
    """The firmware's answer to INFER."""

    status: int
    stack_used_bytes: int
    count: int  # instructions or cycles of the inference window, per Info.counter
    output: bytes


def encode_frame(frame_type: int, seq: int, payload: bytes = b"") -> bytes:
    """Return the bytes of one frame."""
    header = HEADER.pack(MAGIC, VERSION, frame_type, 0, seq & 0xFFFFFFFF, len(payload))
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def decode_header(header: bytes) -> tuple[int, int, int]:
    """Return ``(type, seq, payload_length)`` of a 16-byte header; check magic and version."""
    if len(header) != HEADER_BYTES:
        raise ProtocolError(f"frame header is {len(header)} bytes, expected {HEADER_BYTES}")
    magic, version, frame_type, _reserved, seq, length = HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError(f"bad frame magic {magic!r} (expected {MAGIC!r}): link out of sync")
    if version != VERSION:
        raise ProtocolError(
            f"firmware speaks protocol version {version}, host {VERSION}: rebuild the firmware"
        )
    return frame_type, seq, length


def check_frame(header: bytes, payload: bytes, crc: bytes) -> Frame:
    """Validate a received frame (header, payload, CRC trailer) and return it decoded."""
    frame_type, seq, length = decode_header(header)
    if len(payload) != length:
        raise ProtocolError(f"frame payload is {len(payload)} bytes, header says {length}")
    expected = zlib.crc32(header + payload)
    (got,) = struct.unpack("<I", crc)
    if got != expected:
        raise ProtocolError(
            f"CRC mismatch in frame type 0x{frame_type:02x} seq {seq}: "
            f"got 0x{got:08x}, computed 0x{expected:08x} (corrupted link)"
        )
    return Frame(frame_type, seq, payload)


def decode_frame(data: bytes) -> Frame:
    """Decode one complete frame held in ``data`` (exactly one frame, nothing more)."""
    if len(data) < HEADER_BYTES + CRC_BYTES:
        raise ProtocolError(f"frame of {len(data)} bytes is shorter than header + CRC")
    _, _, length = decode_header(data[:HEADER_BYTES])
    if len(data) != HEADER_BYTES + length + CRC_BYTES:
        raise ProtocolError(
            f"frame of {len(data)} bytes does not match its payload length {length}"
        )
    return check_frame(data[:HEADER_BYTES], data[HEADER_BYTES:-CRC_BYTES], data[-CRC_BYTES:])


def expect_reply(frame: Frame, request_type: int, seq: int) -> bytes:
    """Return the payload of ``frame`` if it answers request ``request_type`` number ``seq``."""
    if frame.seq != seq & 0xFFFFFFFF:
        raise ProtocolError(f"reply has sequence number {frame.seq}, expected {seq}")
    if frame.type == ERROR:
        (code,) = struct.unpack("<I", frame.payload[:4].ljust(4, b"\0"))
        reason = ERROR_NAMES.get(code, "unknown error code")
        raise ProtocolError(f"firmware rejected request {seq}: error {code}, {reason}")
    if frame.type != request_type | REPLY_FLAG:
        raise ProtocolError(
            f"reply type 0x{frame.type:02x} does not answer request type 0x{request_type:02x}"
        )
    return frame.payload


def parse_info(payload: bytes) -> Info:
    """Decode an INFO reply payload."""
    if len(payload) != INFO_REPLY.size:
        raise ProtocolError(f"INFO reply is {len(payload)} bytes, expected {INFO_REPLY.size}")
    version, n_in, n_out, arena, stack, counter = INFO_REPLY.unpack(payload)
    if counter not in COUNTER_NAMES:
        raise ProtocolError(f"INFO reply names unknown counter kind {counter}")
    return Info(version, n_in, n_out, arena, stack, COUNTER_NAMES[counter])


def parse_profile(payload: bytes) -> list[int]:
    """Decode a PROFILE reply: the counter after each kernel call, from the inference's start."""
    if len(payload) % 8:
        raise ProtocolError(f"PROFILE reply of {len(payload)} bytes is not whole u64 counts")
    return list(struct.unpack(f"<{len(payload) // 8}Q", payload))


def parse_infer(payload: bytes, output_bytes: int) -> InferResult:
    """Decode an INFER reply payload carrying ``output_bytes`` of model output."""
    expected = INFER_REPLY_HEAD.size + output_bytes
    if len(payload) != expected:
        raise ProtocolError(f"INFER reply is {len(payload)} bytes, expected {expected}")
    status, stack, count = INFER_REPLY_HEAD.unpack_from(payload)
    return InferResult(status, stack, count, payload[INFER_REPLY_HEAD.size :])
