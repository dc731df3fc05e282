"""The two WebSocket frame shapes qcore sends and receives on its hot paths.

websockets does the handshake, pings, closing and every unusual frame; but
its sans-I/O parser reads each frame through a chain of generators and its
sender builds a `Frame` object per message, and on the bench VM that was a
measurable part of a request's CPU on every node and in the load generator
(see docs/benchmarks.md). Nearly every message is one whole, unfragmented
text frame arriving in one read, so the node (qcore.node.ws_conn,
qcore.node.frames_out) and the bench client (qcore.bench.conns) handle that
shape themselves, with these functions, and hand anything else to
websockets. RFC 6455 section 5.2 is the reference for every byte here.
"""

from __future__ import annotations

import struct

from websockets.frames import apply_mask
from websockets.protocol import SERVER, Protocol, State

FIN_TEXT, FIN_BINARY = 0x81, 0x82  # first header byte: FIN, no RSV bits, opcode
_MASK_BIT = 0x80


def whole_frame(data: bytes, masked: bool, max_size: int | None = None) -> tuple[bytes, bool] | None:
    """``(payload, is_text)`` if ``data`` is exactly one unfragmented text
    or binary frame, masked if and only if ``masked`` (a server receives
    masked frames, a client unmasked ones), of at most ``max_size`` bytes.

    None for anything else — a fragment, a control frame, reserved bits, the
    wrong masking, several frames or part of one, an oversized payload — so
    that the caller passes it to websockets, which parses it or rejects it
    exactly as before.
    """
    n = len(data)
    if n < 2:
        return None
    first = data[0]
    if first != FIN_TEXT and first != FIN_BINARY:
        return None
    second = data[1]
    if bool(second & _MASK_BIT) != masked:
        return None
    length = second & 0x7F
    if length < 126:
        start = 2
    elif length == 126:
        start = 4
        length = int.from_bytes(data[2:4], "big")
    else:
        start = 10
        length = int.from_bytes(data[2:10], "big")
    if max_size is not None and length > max_size:
        return None
    if masked:
        if start + 4 + length != n:
            return None
        return apply_mask(data[start + 4 :], data[start : start + 4]), first == FIN_TEXT
    if start + length != n:
        return None
    return data[start:], first == FIN_TEXT


def whole_message(proto: Protocol, data: bytes) -> tuple[bytes, bool] | None:
    """``(payload, is_text)`` if ``data``, just read on the connection that
    ``proto`` (websockets' sans-I/O core) serves, is one whole message that
    can bypass websockets: the connection is open, its parser holds nothing
    (no partial frame, no fragmented message under way), no extension or
    per-fragment limit applies, and ``data`` is exactly one data frame
    masked as this side must receive it, within the size limit. None means:
    give ``data`` to websockets."""
    if (
        proto.state is not State.OPEN
        or proto.reader.buffer
        or proto.current_size is not None
        or proto.extensions
        or proto.max_fragment_size is not None
    ):
        return None
    return whole_frame(data, proto.side is SERVER, proto.max_message_size)


def text_header(length: int, masked: bool = False) -> bytes:
    """The header of an unfragmented text frame carrying ``length`` bytes
    (without the masking key that follows it when ``masked``)."""
    bit = _MASK_BIT if masked else 0
    if length < 126:
        return bytes((FIN_TEXT, bit | length))
    if length < 65536:
        return struct.pack("!BBH", FIN_TEXT, bit | 126, length)
    return struct.pack("!BBQ", FIN_TEXT, bit | 127, length)


def masked_text_frame(payload: bytes, mask: bytes) -> bytes:
    """``payload`` as one whole text frame masked with the 4-byte ``mask``
    (what a client sends)."""
    return text_header(len(payload), masked=True) + mask + apply_mask(payload, mask)
