"""Framed protocol: encode/decode, CRC and error handling, and the C header in sync."""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from tvm_mcuformer.micro import protocol as proto
from tvm_mcuformer.micro.project import TEMPLATES


def test_round_trip():
    payload = bytes(range(256)) * 3
    data = proto.encode_frame(proto.REQ_INFER, 7, payload)
    assert len(data) == proto.HEADER_BYTES + len(payload) + proto.CRC_BYTES
    assert data[:4] == b"MCUF"
    frame = proto.decode_frame(data)
    assert (frame.type, frame.seq, frame.payload) == (proto.REQ_INFER, 7, payload)
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_empty_payload_round_trip():
    frame = proto.decode_frame(proto.encode_frame(proto.REQ_INFO, 0xFFFFFFFF))
    assert (frame.type, frame.seq, frame.payload) == (proto.REQ_INFO, 0xFFFFFFFF, b"")


@pytest.mark.parametrize("offset", [5, 8, 12, 16, 40, -1])
def test_corrupted_frame_rejected(offset):
    data = bytearray(proto.encode_frame(proto.REQ_INFER, 3, b"\x01" * 32))
    data[offset] ^= 0x10
    with pytest.raises(proto.ProtocolError):
        proto.decode_frame(bytes(data))


def test_corrupted_payload_is_a_crc_error():
    data = bytearray(proto.encode_frame(proto.REQ_INFER, 3, b"\x01" * 32))
    data[20] ^= 0xFF
    with pytest.raises(proto.ProtocolError, match="CRC mismatch"):
        proto.decode_frame(bytes(data))


def test_bad_magic_and_version():
    data = proto.encode_frame(proto.REQ_INFO, 1)
    with pytest.raises(proto.ProtocolError, match="magic"):
        proto.decode_header(b"XCUF" + data[4:16])
    with pytest.raises(proto.ProtocolError, match="version"):
        proto.decode_header(data[:4] + bytes([proto.VERSION + 1]) + data[5:16])


def test_truncated_frame():
    data = proto.encode_frame(proto.REQ_INFER, 1, b"abc")
    with pytest.raises(proto.ProtocolError):
        proto.decode_frame(data[:-1])


def test_expect_reply():
    reply = proto.decode_frame(proto.encode_frame(proto.REQ_INFO | proto.REPLY_FLAG, 5, b"x"))
    assert proto.expect_reply(reply, proto.REQ_INFO, 5) == b"x"
    with pytest.raises(proto.ProtocolError, match="sequence"):
        proto.expect_reply(reply, proto.REQ_INFO, 6)
    with pytest.raises(proto.ProtocolError, match="does not answer"):
        proto.expect_reply(reply, proto.REQ_INFER, 5)
    error = proto.decode_frame(proto.encode_frame(proto.ERROR, 5, struct.pack("<I", 1)))
    with pytest.raises(proto.ProtocolError, match="CRC"):
        proto.expect_reply(error, proto.REQ_INFO, 5)


def test_parse_replies():
    info = proto.parse_info(struct.pack("<6I", 1, 64, 40, 1024, 16384, 1))
    assert info == proto.Info(1, 64, 40, 1024, 16384, "instructions")
    result = proto.parse_infer(struct.pack("<iIQ", 0, 200, 2**40) + b"o" * 4, 4)
    assert result == proto.InferResult(0, 200, 2**40, b"oooo")
    with pytest.raises(proto.ProtocolError):
        proto.parse_infer(b"short", 4)


def test_c_header_matches_python():
    header = (TEMPLATES / "core" / "mcuformer_protocol.h").read_text()
    defines = {
        name: int(value, 0)
        for name, value in re.findall(r"#define (MCUF_\w+) (0x[0-9A-Fa-f]+|\d+)u?", header)
    }
    python = {
        "MCUF_VERSION": proto.VERSION,
        "MCUF_HEADER_BYTES": proto.HEADER_BYTES,
        "MCUF_CRC_BYTES": proto.CRC_BYTES,
        "MCUF_REQ_INFO": proto.REQ_INFO,
        "MCUF_REQ_INFER": proto.REQ_INFER,
        "MCUF_REQ_EXIT": proto.REQ_EXIT,
        "MCUF_REQ_PROFILE": proto.REQ_PROFILE,
        "MCUF_REPLY_FLAG": proto.REPLY_FLAG,
        "MCUF_ERROR": proto.ERROR,
        "MCUF_ERR_CRC": proto.ERR_CRC,
        "MCUF_ERR_LENGTH": proto.ERR_LENGTH,
        "MCUF_ERR_TYPE": proto.ERR_TYPE,
        "MCUF_ERR_VERSION": proto.ERR_VERSION,
        "MCUF_COUNTER_NONE": proto.COUNTER_NONE,
        "MCUF_COUNTER_INSTRUCTIONS": proto.COUNTER_INSTRUCTIONS,
        "MCUF_COUNTER_CYCLES": proto.COUNTER_CYCLES,
        "MCUF_EXIT_OK": proto.EXIT_OK,
        "MCUF_EXIT_IO": proto.EXIT_IO,
        "MCUF_EXIT_LINK_CLOSED": proto.EXIT_LINK_CLOSED,
        "MCUF_EXIT_FAULT": proto.EXIT_FAULT,
    }
    assert defines == python
