"""Writing text frames to a websockets connection with one syscall.

`Connection.send()` costs an async context manager and one
`transport.write()` — one syscall on loopback — per frame. On this kind of
machine a TCP write costs tens of microseconds, and a node writes a frame
for every reply and every Raft message, so the node queues frames through
the connection's sans-I/O protocol object and hands the transport all their
bytes at once. This relies on websockets' documented layering (the
`protocol` attribute is the sans-I/O core of the connection; see
websockets/asyncio/connection.py, `send_context` and `send_data`), pinned to
the version in pyproject.toml.

On a server connection (replies, notifications) the frames are unmasked
and unextended, so the bytes are built here (qcore.protocol.ws_frames)
without a websockets `Frame` object per message.
"""

from __future__ import annotations

from typing import Any, Iterable

from websockets.protocol import SERVER, State

from qcore.protocol.ws_frames import text_header


def write_frames(ws: Any, frames: Iterable[bytes]) -> bool:
    """Queue UTF-8 JSON text frames and write them together.

    Returns False, writing nothing, if the connection is not open. The caller
    should `await ws.drain()` when `must_drain(ws)` says the peer is slow.
    """
    proto = ws.protocol
    if proto.state is not State.OPEN:
        return False
    if proto.side is SERVER and not proto.extensions and not proto.expect_continuation_frame and not proto.writes:
        # A server's frames are unmasked: header and payload, nothing else
        # (RFC 6455 section 5.2), so they are built here without a Frame
        # object per message.
        parts: list[bytes] = []
        for frame in frames:
            parts.append(text_header(len(frame)))
            parts.append(frame)
        if parts:
            ws.transport.write(b"".join(parts))
        return True
    for frame in frames:
        proto.send_text(frame)
    chunks = proto.data_to_send()
    if chunks and all(chunks):
        ws.transport.write(b"".join(chunks))
    elif chunks:  # an end-of-stream marker among them: let websockets handle it
        for chunk in chunks:
            if chunk:
                ws.transport.write(chunk)
    return True


def must_drain(ws: Any) -> bool:
    """Has the transport's write buffer crossed its high-water mark?"""
    return bool(getattr(ws, "paused", False))
