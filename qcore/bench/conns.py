"""The two transports the load generator speaks: WebSocket frames and HTTP/1.1.

Each connection carries one request at a time (a bench "client"), so a
reply is simply the next frame/response on the connection; the caller
checks the id where the protocol has one.

No asyncio HTTP client library is installed in the project, and the etcd
JSON gateway needs only POST with a JSON body over keep-alive, so a small
HTTP/1.1 client over asyncio streams is used for etcd.
"""

from __future__ import annotations

import asyncio
import logging

from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode

from qcore.node.frames_out import write_frames

logger = logging.getLogger(__name__)


class _ReplyConnection(ClientConnection):
    """A websockets client connection that hands the next whole message to
    a waiting future straight from ``data_received``.

    The stock connection queues each message in an assembler for ``recv()``
    (a queue, a lock and a task switch per message); a bench client has one
    request in flight and wants only the next reply, so that machinery was a
    good part of the generator's CPU per request. websockets still does the
    handshake, framing, masking, pings and closing; anything that arrives
    with no caller waiting (or fragmented) takes the stock path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiter: asyncio.Future[bytes] | None = None

    def process_event(self, event: Any) -> None:
        waiter = self.waiter
        if waiter is not None and type(event) is Frame and event.fin and event.opcode in _DATA:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(bytes(event.data))
            return
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(EOFError("connection closed"))
        super().connection_lost(exc)


_DATA = (Opcode.TEXT, Opcode.BINARY)


class WsConn:
    """One WebSocket connection; ``call`` sends a text frame and returns the next frame."""

    def __init__(self, ws: _ReplyConnection) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, endpoint: str) -> "WsConn":
        # No compression (the servers would spend CPU on it), no keepalive
        # pings (they would add frames to a latency measurement), large frames allowed.
        ws = await connect(
            f"ws://{endpoint}",
            compression=None,
            ping_interval=None,
            max_size=64 * 1024 * 1024,
            open_timeout=10,
            create_connection=_ReplyConnection,
        )
        return cls(ws)

    async def call(self, frame: bytes) -> bytes:
        ws = self._ws
        waiter = self._loop.create_future()
        ws.waiter = waiter
        if not write_frames(ws, (frame,)):
            ws.waiter = None
            raise EOFError("connection closed")
        return await waiter

    async def send(self, frame: bytes) -> None:
        await self._ws.send(frame, text=True)

    async def recv(self) -> bytes:
        return await self._ws.recv(decode=False)

    async def close(self) -> None:
        await self._ws.close()


class HttpError(Exception):
    """The server answered something this minimal client cannot parse."""


class HttpConn:
    """A keep-alive HTTP/1.1 connection for JSON POSTs."""

    def __init__(self, host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._host = host.encode()
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, endpoint: str) -> "HttpConn":
        host, _, port = endpoint.rpartition(":")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
        return cls(endpoint, reader, writer)

    async def call(self, request: tuple[bytes, bytes]) -> tuple[int, bytes]:
        """POST ``body`` to ``path``; returns (status, body)."""
        path, body = request
        self._writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path, self._host, len(body), body)
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HttpError(f"bad status line {lines[0]!r}") from exc
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._read_chunked()
        if length < 0:
            raise HttpError("response without Content-Length on a keep-alive connection")
        return status, await self._reader.readexactly(length)

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self._reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
