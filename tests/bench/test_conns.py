"""The load generator's WebSocket transport: a reply must reach the caller
whole whichever path it takes (unwrapped at once, or parsed by websockets).
The framing itself is tested in tests/test_wsfast.py."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from qcore import wsfast
from qcore.bench.conns import WsConn
from qcore.wsfast import masked_text_frame, whole_frame
from tests.test_wsfast import parse


def test_masking_keys_change_and_outlast_the_pool():
    frames = [masked_text_frame(b"x" * 8) for _ in range(1500)]  # more than one pool of 1,024 keys
    keys = {f[2:6] for f in frames}
    assert len(keys) > 1400  # 32 random bits each: repeats are rare
    assert all(parse(f, mask=True).data == b"x" * 8 for f in frames)


def test_a_reply_frame_is_unwrapped_and_anything_else_is_not():
    reply = Frame(Opcode.TEXT, b'{"ok": true}').serialize(mask=False)
    assert whole_frame(reply, False) == (b'{"ok": true}', True)
    assert whole_frame(reply + reply, False) is None
    assert whole_frame(reply[:-1], False) is None


async def _serve(handler):
    server = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=None)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "public-api"])
async def test_call_gets_every_kind_of_reply_whole(fast, monkeypatch):
    """Replies that take websockets' path (large, fragmented, behind a ping,
    two in one write) reach the caller exactly as sent, in order; with the
    fast paths off too."""
    monkeypatch.setattr(wsfast, "FAST", fast and wsfast.FAST)
    big = b'"' + b"b" * 300_000 + b'"'

    async def handler(ws: ServerConnection) -> None:
        async for msg in ws:
            kind = msg.decode() if isinstance(msg, bytes) else msg
            if kind == "small":
                await ws.send(b"small-reply", text=True)
            elif kind == "big":
                await ws.send(big, text=True)
            elif kind == "fragmented":
                await ws.send([b"frag", b"men", b"ted"], text=True)
            elif kind == "ping-first":
                await ws.ping(b"p")
                await ws.send(b"after-ping", text=True)
            elif kind == "binary":
                await ws.send(b"\x00\x01", text=False)

    server, endpoint = await _serve(handler)
    try:
        conn = await WsConn.open(endpoint)

        async def call(request: bytes) -> bytes:
            return await asyncio.wait_for(conn.call(request), 5)

        for _ in range(3):
            assert await call(b"small") == b"small-reply"
            assert await call(b"big") == big
            assert await call(b"fragmented") == b"fragmented"
            assert await call(b"ping-first") == b"after-ping"
            assert await call(b"binary") == b"\x00\x01"
        await conn.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_call_fails_when_the_server_goes_away():
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close()

    server, endpoint = await _serve(handler)
    try:
        conn = await WsConn.open(endpoint)
        with pytest.raises(EOFError):
            await asyncio.wait_for(conn.call(b"anything"), 5)
        with pytest.raises(EOFError):  # and at once on the closed connection
            await asyncio.wait_for(conn.call(b"again"), 5)
    finally:
        server.close()
        await server.wait_closed()
