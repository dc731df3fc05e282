"""The two transports the load generator speaks: WebSocket frames and HTTP/1.1.

Each connection carries one request at a time (a bench "client"), so a
reply is simply the next frame/response on the connection; the caller
checks the id where the protocol has one.

No asyncio HTTP client library is installed in the project, and the etcd
JSON gateway needs only POST with a JSON body over keep-alive, so a small
HTTP/1.1 client over asyncio streams is used for etcd.

Both are kept equally lean so that the ruler does not favour one protocol:
against the no-op server each costs the generator about the same CPU per
request (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from qcore.wsfast import FAST, ReplyConnection

logger = logging.getLogger(__name__)


class WsConn:
    """One WebSocket connection; ``call`` sends a text frame and returns the
    next message (through qcore.wsfast's reply connection when its fast
    paths are on, else with websockets' own send and recv)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    @classmethod
    async def open(cls, endpoint: str, tls: ssl.SSLContext | None = None) -> "WsConn":
        # No compression (the servers would spend CPU on it), no keepalive
        # pings (they would add frames to a latency measurement), large frames allowed.
        ws = await connect(
            f"{'wss' if tls else 'ws'}://{endpoint}",
            ssl=tls,
            compression=None,
            ping_interval=None,
            max_size=64 * 1024 * 1024,
            open_timeout=10,
            create_connection=ReplyConnection if FAST else None,
        )
        return cls(ws)

    async def call(self, frame: bytes) -> bytes:
        ws = self._ws
        if ws.state is not State.OPEN:
            raise EOFError("connection closed")
        if not isinstance(ws, ReplyConnection):
            try:
                await ws.send(frame, text=True)
                return await ws.recv(decode=False)
            except ConnectionClosed:
                raise EOFError("connection closed") from None
        return await ws.call(frame)

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
