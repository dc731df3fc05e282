"""websockets' fast paths: the one place qcore goes beneath websockets' public API.

A node writes a frame for every reply and every Raft message and reads one
for every request, so per-message costs of websockets' asyncio layer show in
every benchmark (docs/benchmarks.md has the figures). Five bypasses, used by
the node (server, peer transport, forwarder) and by the bench:

- `write_frames`: many text frames, one `transport.write`; on a server
  connection the frame bytes are built here (`text_header`), without a
  websockets `Frame` per message;
- `SinkServerConnection`: hands each whole request to a callback from
  `data_received`, instead of queueing it for a `recv()` task;
- `whole_message`: a read that is exactly one whole, masked, unfragmented
  data frame within the size limit is unwrapped here, not by websockets'
  generator-based parser; anything else still goes to websockets, which
  parses or refuses it as it always does;
- `ReplyConnection`: the bench client's counterpart, handing the next reply
  to a waiting future;
- `TlsReadBuffer`: over TLS, a connection's reads are decrypted into one
  buffer that is reused (asyncio's buffered-protocol API) rather than into
  a fresh 256 KiB object per TLS record, which the allocator maps and
  unmaps each time.

They rely on websockets' sans-I/O layering (a connection's `protocol`, the
protocol's reader and size-limit state, `Connection.process_event`). At
import the installed websockets is checked for exactly what they use
(`FAST`, `WHY_NOT`); if anything differs — or `QCORE_WS_FASTPATH=0` is set —
every function here falls back to websockets' public API: the stock
connection classes, `await ws.send()` and `recv()`. docs/operations.md lists
the versions tested. RFC 6455 section 5.2 is the reference for every byte.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode, apply_mask
from websockets.protocol import SERVER, State
from websockets.server import ServerProtocol

from qcore.node.http import is_websocket_upgrade

__all__ = [
    "FAST",
    "WHY_NOT",
    "FlowServerConnection",
    "MessageSink",
    "ReplyConnection",
    "SinkServerConnection",
    "TlsClientConnection",
    "TlsReadBuffer",
    "masked_text_frame",
    "must_drain",
    "send_frames",
    "server_connection_class",
    "text_header",
    "unsent_bytes",
    "whole_frame",
    "whole_message",
    "write_frames",
]

#: websockets releases the fast paths were tested with (major versions, inclusive).
TESTED_MAJOR = (16, 17)

_PROTOCOL_ATTRS = ("state", "side", "reader", "current_size", "extensions", "max_message_size",
                   "max_fragment_size", "expect_continuation_frame", "writes")
_CONNECTION_ATTRS = ("data_received", "process_event", "send_context")


def _why_not() -> str | None:
    """Why the fast paths cannot be used here (None: they can)."""
    if os.environ.get("QCORE_WS_FASTPATH", "1") == "0":
        return "disabled by QCORE_WS_FASTPATH=0"
    try:
        major = int(websockets.__version__.split(".")[0])
    except ValueError:
        return f"unrecognised websockets version {websockets.__version__!r}"
    if not TESTED_MAJOR[0] <= major <= TESTED_MAJOR[1]:
        return f"websockets {websockets.__version__} is outside the tested {TESTED_MAJOR[0]}-{TESTED_MAJOR[1]}.x"
    proto = ServerProtocol()
    missing = [a for a in _PROTOCOL_ATTRS if not hasattr(proto, a)]
    missing += [f"Connection.{a}" for a in _CONNECTION_ATTRS if not hasattr(Connection, a)]
    if not hasattr(proto.reader, "buffer"):
        missing.append("reader.buffer")
    if missing:
        return f"websockets {websockets.__version__} lacks {', '.join(missing)}"
    return None


WHY_NOT = _why_not()
FAST = WHY_NOT is None

FIN_TEXT, FIN_BINARY = 0x81, 0x82  # first header byte: FIN, no RSV bits, opcode
_MASK_BIT = 0x80
_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT

MessageSink = Callable[[bytes, bool], None]  # (payload, is_text)


# -- framing ------------------------------------------------------------------


def whole_frame(data: bytes, masked: bool, max_size: int | None = None) -> tuple[bytes, bool] | None:
    """``(payload, is_text)`` if ``data`` is exactly one unfragmented text
    or binary frame, masked if and only if ``masked`` (a server receives
    masked frames, a client unmasked ones), of at most ``max_size`` bytes;
    None for anything else (a fragment, a control frame, reserved bits, the
    wrong masking, several frames or part of one, an oversized payload)."""
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


def whole_message(proto: Any, data: bytes) -> tuple[bytes, bool] | None:
    """``(payload, is_text)`` if ``data``, just read on the connection that
    ``proto`` (websockets' sans-I/O `Protocol`, whose attributes read here
    were checked at import) serves, is one whole message that can bypass
    websockets: the connection is open, its parser holds nothing, no
    extension or per-fragment limit applies, and ``data`` is exactly one
    data frame masked as this side must receive it, within the size limit.
    None means: give ``data`` to websockets (always, without the fast paths)."""
    if (
        not FAST
        or proto.state is not State.OPEN
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


def masked_text_frame(payload: bytes, mask: bytes | None = None) -> bytes:
    """``payload`` as one whole text frame masked with the 4-byte ``mask``
    (what a client sends); a fresh random key if none is given."""
    if mask is None:
        mask = _masks.take()
    return text_header(len(payload), masked=True) + mask + apply_mask(payload, mask)


class _Masks:
    """Masking keys for client frames, read from the OS 1,024 at a time.
    RFC 6455 wants each key unpredictable, so they come from ``os.urandom``
    as websockets' own do (it makes one call per frame)."""

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


# -- writing ------------------------------------------------------------------


def write_frames(ws: Any, frames: Iterable[bytes]) -> bool:
    """Send UTF-8 JSON text frames, in order, with one write where possible.

    Returns False, sending nothing, if the connection is not open. With the
    fast paths the caller should `await ws.drain()` when `must_drain(ws)`
    says the peer is slow; without them `ws.send` does its own flow control.
    """
    if not FAST:
        return _send_public(ws, list(frames))
    proto = ws.protocol
    if proto.state is not State.OPEN:
        return False
    if not proto.extensions and not proto.expect_continuation_frame and not proto.writes:
        parts: list[bytes] = []
        if proto.side is SERVER:
            # A server's frames are unmasked: header and payload, nothing else.
            for frame in frames:
                parts.append(text_header(len(frame)))
                parts.append(frame)
        else:
            # A client's (a node's links to its peers) are masked.
            for frame in frames:
                parts.append(masked_text_frame(frame))
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


async def send_frames(ws: Any, frames: list[bytes]) -> None:
    """Send text frames in one write and wait for the transport to drain
    (for a sender that may wait: notifications). With the fast paths,
    websockets' `send_context` (what `send` itself uses) frames them all at
    once; otherwise, and for connections without it (test doubles), one
    `send` each. Raises ConnectionClosed as `send` does."""
    ctx = getattr(ws, "send_context", None) if FAST and len(frames) > 1 else None
    if ctx is not None:
        async with ctx():
            for f in frames:
                ws.protocol.send_text(f)
        return
    for f in frames:
        await ws.send(f, text=True)


def must_drain(ws: Any) -> bool:
    """Has the transport's write buffer crossed its high-water mark?"""
    return FAST and bool(getattr(ws, "paused", False))


def unsent_bytes(ws: Any) -> int:
    """Bytes `write_frames` took for ``ws`` that have not left yet: its
    transport's write buffer and, without the fast paths, the frames still
    waiting for their turn to be sent."""
    transport = ws.transport
    buffered = transport.get_write_buffer_size() if transport is not None else 0
    return buffered + _waiting.get(ws, 0)


# Without the fast paths: frames go out through `send()`, one task per
# call, each waiting for the previous call's (asyncio locks are fair).
_send_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
_waiting: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # bytes not yet given to send()
_send_tasks: set[asyncio.Task[None]] = set()


def _send_public(ws: Any, frames: list[bytes]) -> bool:
    if ws.state is not State.OPEN:
        return False
    if frames:
        lock = _send_locks.get(ws)
        if lock is None:
            lock = _send_locks[ws] = asyncio.Lock()
        _waiting[ws] = _waiting.get(ws, 0) + sum(map(len, frames))
        task = asyncio.get_running_loop().create_task(_send_in_order(ws, lock, frames))
        _send_tasks.add(task)
        task.add_done_callback(_send_tasks.discard)
    return True


async def _send_in_order(ws: Any, lock: asyncio.Lock, frames: list[bytes]) -> None:
    left = sum(map(len, frames))
    try:
        async with lock:
            for frame in frames:
                _waiting[ws] -= len(frame)
                left -= len(frame)
                await ws.send(frame, text=True)
    except websockets.ConnectionClosed:
        pass  # as a write to a closed transport: the peer went away
    finally:
        if left:
            _waiting[ws] -= left


# -- reading over TLS ------------------------------------------------------------------


class _ReadBuffer(threading.local):
    """Where TLS reads are decrypted to: one buffer per thread (an event loop
    runs in one thread, and a read is copied out before anything else runs)."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(256 << 10))


_read_buffer = _ReadBuffer()


class _BufferedTlsReads(asyncio.BufferedProtocol):
    """The protocol a TLS transport calls in place of a websockets
    connection (set by `TlsReadBuffer`): reads arrive through
    `get_buffer`/`buffer_updated` into the thread's buffer and go on to the
    connection as bytes of their own size; every other callback is the
    connection's."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        self._conn.data_received(_read_buffer.view[:nbytes].tobytes())

    def eof_received(self) -> None:
        self._conn.eof_received()  # returns None: the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self._conn.pause_writing()

    def resume_writing(self) -> None:
        self._conn.resume_writing()


class TlsReadBuffer:
    """Mixin for websockets connections (listed before the connection class):
    on a TLS transport, reads go through `_BufferedTlsReads`.

    Why: given a plain protocol, the TLS transports of asyncio and uvloop ask
    ``ssl`` for up to 256 KiB per record, and ``ssl`` allocates that much and
    shrinks it to the record's size: with a node's fixed mmap threshold
    (qcore.node.malloc_policy), and with glibc's default one too (the shrunk
    block it frees never raises it), an mmap, mremap and munmap per read.
    Given a buffered protocol they decrypt into its buffer. Plain TCP
    transports read into a buffer of their own already: nothing changes there.
    Uses asyncio's public transport and protocol API only (`set_protocol`,
    `BufferedProtocol`); off with the other fast paths."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if FAST and transport.get_extra_info("ssl_object") is not None:
            transport.set_protocol(_BufferedTlsReads(self))  # type: ignore[arg-type]


# -- connections ----------------------------------------------------------------


class FlowServerConnection(TlsReadBuffer, ServerConnection):
    """A server connection that tells ``on_writing`` when its transport's write
    buffer crosses the high-water mark (True) and drains below the low one
    (False): asyncio's own flow-control callbacks, which websockets' connection
    implements, passed on after websockets has seen them (qcore.node.backpressure
    stops reading a connection whose replies are not read). Public API only:
    this is the server connection without the fast paths too (where
    `TlsReadBuffer` leaves the transport's own reads alone). It also drops
    what follows a plain HTTP request (`data_received`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_writing: Callable[[bool], None] | None = None
        self._head_tail = b""  # the last bytes of a request head not yet whole, where its blank line may begin

    def data_received(self, data: bytes) -> None:
        """Bytes after a plain HTTP request (a second, pipelined request; a stray CRLF) are dropped
        unread: it is answered and the connection closed. websockets would parse them as frames,
        fail the connection on them and send EOF before the answer, which was then never sent."""
        if self.protocol.state is State.CONNECTING:
            if self.request is None:
                seen = self._head_tail + data
                end = seen.find(b"\r\n\r\n")
                if end < 0:
                    self._head_tail = seen[-3:]
                    super().data_received(data)
                    return
                cut = end + 4 - len(self._head_tail)
                super().data_received(data[:cut])
                data = data[cut:]
            if not data or (self.request is not None and not is_websocket_upgrade(self.request)):
                return
        super().data_received(data)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.on_writing is not None:
            self.on_writing(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writing is not None:
            self.on_writing(False)


class SinkServerConnection(FlowServerConnection):
    """A server connection that hands each complete, unfragmented message to
    `sink` from `data_received`, in order (passed to `serve` as
    `create_connection`, the documented hook for it). websockets still does
    the handshake, parsing of anything unusual, limits, pings and closing.

    Fragmented messages (rare: clients do not fragment by default) still go
    through websockets' assembler, so the handler keeps reading with
    `async for` for them; their order relative to unfragmented messages is
    not kept, which is fine since concurrent requests on one connection carry
    no ordering promise (docs/protocol.md)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink: MessageSink | None = None
        self._in_fragmented = False

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None and not self._in_fragmented:
            whole = whole_message(self.protocol, data)
            if whole is not None:
                sink(whole[0], whole[1])
                return
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        sink = self.sink
        if sink is not None and type(event) is Frame:
            op = event.opcode
            if op is _TEXT or op is _BINARY:
                if event.fin and not self._in_fragmented:
                    sink(bytes(event.data), op is _TEXT)
                    return
                self._in_fragmented = True
            elif op is _CONT and event.fin:
                self._in_fragmented = False
        super().process_event(event)


def server_connection_class() -> type[FlowServerConnection]:
    """What to pass to `serve(create_connection=...)`: the sink connection
    with the fast paths, the flow-reporting one without (messages then arrive
    only through `async for`)."""
    return SinkServerConnection if FAST else FlowServerConnection


class TlsClientConnection(TlsReadBuffer, ClientConnection):
    """websockets' client connection with `TlsReadBuffer`: a node's
    connections to its peers (Raft links, forwarding, snapshots) and the
    client library's."""


class ReplyConnection(TlsReadBuffer, ClientConnection):
    """A client connection that hands the next whole message to `waiter`,
    a future, instead of queueing it for ``recv()``: the bench client has
    one request in flight and wants only the next reply. A read that is one
    whole data frame is unwrapped here; anything else goes through
    websockets, and the data frames it parses reach the waiter through
    ``process_event``. With no waiter set it is a plain connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiter: asyncio.Future[bytes] | None = None
        self._parts: list[bytes] | None = None  # a fragmented reply being put together

    def call(self, frame: bytes) -> "asyncio.Future[bytes]":
        """Send ``frame`` as one masked text frame; the future gets the next message."""
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.transport.write(masked_text_frame(frame))
        return waiter

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
            if op is _TEXT or op is _BINARY or (op is _CONT and self._parts is not None):
                if op is not _CONT:
                    self._parts = []
                assert self._parts is not None
                self._parts.append(bytes(event.data))
                if event.fin:
                    parts, self._parts = self._parts, None
                    self._deliver(waiter, b"".join(parts))
                return
        super().process_event(event)

    def _deliver(self, waiter: asyncio.Future[bytes], payload: bytes) -> None:
        self.waiter = None
        if not waiter.done():
            waiter.set_result(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(EOFError("connection closed"))
        super().connection_lost(exc)
