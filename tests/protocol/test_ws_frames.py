"""qcore's own framing of the common WebSocket frame must agree byte for byte
with websockets' (RFC 6455), and must leave every other frame to websockets."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from qcore.protocol.ws_frames import masked_text_frame, text_header, whole_frame

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def parse(data: bytes, mask: bool) -> Frame:
    """One frame through websockets' own parser, which must use every byte."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    gen = Frame.parse(reader.read_exact, mask=mask)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert not reader.buffer
    return stop.value.value


def payload_of(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_text_header_and_payload_are_what_websockets_parses(size):
    frame = parse(text_header(size) + payload_of(size), mask=False)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload_of(size))


@pytest.mark.parametrize("size", SIZES)
def test_masked_text_frame_is_what_websockets_parses(size):
    frame = parse(masked_text_frame(payload_of(size), b"\x01\x02\x03\x04"), mask=True)
    assert (frame.opcode, frame.fin, frame.data) == (Opcode.TEXT, True, payload_of(size))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("masked", [True, False])
def test_whole_frame_unwraps_what_websockets_builds(size, opcode, masked):
    data = Frame(opcode, payload_of(size)).serialize(mask=masked)
    assert whole_frame(data, masked) == (payload_of(size), opcode is Opcode.TEXT)


def test_whole_frame_keeps_to_the_size_limit():
    data = Frame(Opcode.TEXT, b"x" * 1000).serialize(mask=True)
    assert whole_frame(data, True, 1000) == (b"x" * 1000, True)
    assert whole_frame(data, True, 999) is None  # websockets refuses it (1009)


def _client(payload: bytes, opcode: Opcode = Opcode.TEXT, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81",
        _client(b"hello")[:-1],  # truncated
        _client(b"a" * 300)[:5],  # extended length cut short
        _client(b"one") + _client(b"two"),  # two frames in one read
        Frame(Opcode.TEXT, b"unmasked").serialize(mask=False),  # a client must mask
        _client(b"part", fin=False),  # first fragment
        _client(b"rest", Opcode.CONT),
        _client(b"", Opcode.PING),
        _client(b"\x03\xe8", Opcode.CLOSE),
        bytes([_client(b"rsv")[0] | 0x40]) + _client(b"rsv")[1:],  # RSV1 without an extension
    ],
    ids=["empty", "one-byte", "truncated", "short-length", "two-frames", "unmasked", "fragment",
         "continuation", "ping", "close", "rsv1"],
)
def test_whole_frame_leaves_everything_else_to_websockets(data):
    assert whole_frame(data, True) is None


def test_a_server_frame_is_not_taken_for_a_client_one_or_back():
    assert whole_frame(Frame(Opcode.TEXT, b"x").serialize(mask=False), True) is None
    assert whole_frame(Frame(Opcode.TEXT, b"x").serialize(mask=True), False) is None
