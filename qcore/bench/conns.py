"""The two transports the load generator speaks: WebSocket frames and HTTP/1.1.

Each connection carries one request at a time (a bench "client"), so a
reply is simply the next frame/response on the connection; the caller
checks the id where the protocol has one.

No asyncio HTTP client library is installed in the project, and the etcd
JSON gateway needs only POST with a JSON body over keep-alive, so a small
HTTP/1.1 client over asyncio streams is used for etcd.

Both are kept equally lean so that the ruler does not favour one protocol:
against the no-op server each costs the generator about the same CPU per
request (WebSocket 14.7-16.5, HTTP 15.3-18.2 µs on the bench VM; see
docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from qcore.protocol import ws_frames
from qcore.protocol.ws_frames import whole_message

logger = logging.getLogger(__name__)


class _ReplyConnection(ClientConnection):
    """A websockets client connection that hands the next whole message to
    a waiting future instead of queueing it for ``recv()``.

    The stock connection queues each message in an assembler (a queue, a
    lock and a task switch per message), and its sans-I/O parser reads every
    frame through a chain of generators; a bench client has one request in
    flight and wants only the next reply, and that machinery made a
    WebSocket request cost the generator a third more CPU than an HTTP one
    (22 against 17 µs against the no-op server). So:

    - a read that is exactly one whole, unfragmented data frame, arriving
      while websockets' parser holds nothing, is unwrapped here and its
      payload handed to the waiter (nearly every reply: the servers write
      each reply with one syscall);
    - anything else (a frame split over reads, several frames in one read,
      control frames, a fragmented message) goes through websockets, and the
      data frames it parses reach the waiter through ``process_event``.

    websockets still does the handshake, pings and closing, and all of it
    when no caller is waiting (``recv()``, used by the set-up connections).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiter: asyncio.Future[bytes] | None = None
        self._parts: list[bytes] | None = None  # a fragmented reply being put together

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is not None:
            whole = whole_message(self.protocol, data)
            if whole is not None:
                self._deliver(waiter, whole[0])
                return
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        waiter = self.waiter
        if waiter is not None and type(event) is Frame:
            op = event.opcode
            if op in _DATA or (op is Opcode.CONT and self._parts is not None):
                if op is not Opcode.CONT:
                    self._parts = []
                assert self._parts is not None
                self._parts.append(bytes(event.data))
                if event.fin:
                    parts, self._parts = self._parts, None
                    self._deliver(waiter, b"".join(parts))
                return
        super().process_event(event)

    def _deliver(self, waiter: "asyncio.Future[bytes]", payload: bytes) -> None:
        self.waiter = None
        if not waiter.done():
            waiter.set_result(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(EOFError("connection closed"))
        super().connection_lost(exc)


_DATA = (Opcode.TEXT, Opcode.BINARY)


class _Masks:
    """Masking keys for client frames, read from the OS 1,024 at a time.

    RFC 6455 wants each key unpredictable, so they come from ``os.urandom``
    as websockets' own do; websockets makes one call per frame.
    """

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool = os.urandom(4096)
            at = 0
        self._at = at + 4
        return self._pool[at : at + 4]


_masks = _Masks()


def masked_text_frame(payload: bytes) -> bytes:
    """``payload`` (UTF-8 JSON) as one masked text frame, with a fresh key."""
    return ws_frames.masked_text_frame(payload, _masks.take())


class WsConn:
    """One WebSocket connection; ``call`` sends a text frame and returns the next message."""

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
        if ws.protocol.state is not State.OPEN:
            raise EOFError("connection closed")
        waiter = self._loop.create_future()
        ws.waiter = waiter
        ws.transport.write(masked_text_frame(frame))
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
