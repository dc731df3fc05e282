"""One WebSocket connection to one node, with replies matched to requests by id.

This layer knows nothing of retries or leaders: it sends frames, runs one
reader task that resolves a future per reply (so any number of requests may
be in flight and replies may come in any order), hands server pushes to a
callback, and, when the connection ends, fails every waiting request with
:exc:`ConnectionLost` so that the layer above can decide what is safe to
retry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from qcore.protocol.messages import Message, Notification, ProtocolError, decode_message, encode_message
from qcore.wsfast import TlsClientConnection

logger = logging.getLogger(__name__)

__all__ = ["Connection", "ConnectionLost"]


class ConnectionLost(Exception):
    """The connection ended before the reply came.

    ``sent`` is False only when the frame certainly never left this process
    (the connection was already closed), so the request had no effect.
    """

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


#: Called in the reader task, before the reply's future is resolved, so that
#: state which later frames depend on (a notification token) is in place first.
ReplyHook = Callable[["Connection", Message], None]


class Connection:
    """A WebSocket to ``address`` with a reader task; create with :meth:`open`."""

    def __init__(
        self,
        ws: ClientConnection,
        address: str,
        on_notification: Callable[[Connection, Notification], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
    ) -> None:
        self.address = address
        self._on_close = on_close
        self._ws = ws
        self._pending: dict[Any, tuple[asyncio.Future[Message], ReplyHook | None]] = {}
        self._on_notification = on_notification
        #: Per-connection state owned by the layer above (notification tokens).
        self.watches: dict[Any, Any] = {}
        self._closed = False
        self._retiring = False
        self._closer: asyncio.Task[None] | None = None
        self._close_reason = "connection closed"
        # A fresh context: the reader outlives any deadline scope it was opened in.
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"qcore-client-reader-{address}", context=contextvars.Context())

    @classmethod
    async def open(
        cls,
        address: str,
        *,
        timeout: float,
        max_size: int | None,
        ping_interval: float | None,
        on_notification: Callable[[Connection, Notification], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Connection:
        """Connect to ``address`` (``host:port``; TLS with ``ssl_context``); raises
        ``OSError`` (``ssl.SSLCertVerificationError`` too)/``TimeoutError``/websockets errors."""
        ws = await connect(
            f"{'wss' if ssl_context is not None else 'ws'}://{address}",
            ssl=ssl_context,
            open_timeout=timeout,
            max_size=max_size,
            # No compression: small JSON frames gain little and it costs CPU both ends.
            compression=None,
            # Talk to the node directly even when the environment names an HTTP proxy.
            proxy=None,
            ping_interval=ping_interval,
            ping_timeout=ping_interval,
            close_timeout=2,
            # Over TLS, records are decrypted into a reused buffer (qcore.wsfast).
            create_connection=TlsClientConnection,
        )
        return cls(ws, address, on_notification, on_close)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Requests sent on this connection and not answered yet."""
        return len(self._pending)

    async def send(self, msg: Message, on_reply: ReplyHook | None = None) -> asyncio.Future[Message]:
        """Send a request and return the future of its reply (resolved with the reply message,
        or failed with :exc:`ConnectionLost`)."""
        if self._closed or self._retiring:
            raise ConnectionLost(f"connection to {self.address} is closed: {self._close_reason}", sent=False)
        rid = msg.id  # type: ignore[union-attr]
        if rid in self._pending:
            raise ValueError(f"request id {rid!r} is already in flight on this connection")
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (fut, on_reply)
        try:
            await self._ws.send(encode_message(msg), text=True)
        except ConnectionClosed as e:
            self._pending.pop(rid, None)
            if fut.done():
                fut.exception()  # failed by the reader as the connection went: the error raised here says it
            else:
                fut.cancel()
            raise ConnectionLost(f"connection to {self.address} lost while sending: {e}", sent=True) from None
        return fut

    async def send_oneway(self, msg: Message) -> None:
        """Send a frame no reply is awaited for (best effort, e.g. an unregister on shutdown)."""
        if not self._closed:
            try:
                await self._ws.send(encode_message(msg), text=True)
            except ConnectionClosed:
                pass

    async def answers_ping(self, timeout: float) -> bool:
        """Does the node answer a WebSocket ping within ``timeout``? (A slow request
        on a live connection is not a reason to drop it.)"""
        if self._closed:
            return False
        try:
            pong = await self._ws.ping()
            async with asyncio.timeout(timeout):
                await pong
            return True
        except (ConnectionClosed, TimeoutError):
            return False

    def forget(self, rid: Any) -> None:
        """Stop waiting for the reply to ``rid`` (it timed out); a late reply is dropped."""
        self._pending.pop(rid, None)

    async def _read(self) -> None:
        try:
            while True:
                frame = await self._ws.recv(decode=False)
                try:
                    msg = decode_message(frame)
                except ProtocolError as e:
                    logger.warning("undecodable frame from %s: %s", self.address, e)
                    continue
                if type(msg) is Notification:
                    if self._on_notification is not None:
                        self._on_notification(self, msg)
                    continue
                entry = self._pending.pop(msg.id, None)  # type: ignore[union-attr]
                if entry is None:
                    logger.debug("reply to unknown or abandoned request %r from %s", msg.id, self.address)  # type: ignore[union-attr]
                    continue
                fut, hook = entry
                if hook is not None:
                    hook(self, msg)
                if not fut.done():
                    fut.set_result(msg)
                if self._retiring and not self._pending:
                    self._close_soon()
        except ConnectionClosed as e:
            self._close_reason = str(e)
        except asyncio.CancelledError:
            self._close_reason = "client closed"
            raise
        except Exception as e:  # a bug above must not leave requests waiting forever
            logger.exception("reader for %s failed", self.address)
            self._close_reason = f"reader failed: {e!r}"
        finally:
            self._closed = True
            pending, self._pending = self._pending, {}
            for fut, _ in pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionLost(f"connection to {self.address} lost: {self._close_reason}", sent=True))
            logger.debug("connection to %s ended: %s", self.address, self._close_reason)
            if self._on_close is not None:
                self._on_close(self)

    async def close(self) -> None:
        """Close the WebSocket and wait for the reader to finish (idempotent)."""
        await self._ws.close()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass

    def retire(self) -> None:
        """Send nothing more; close once the replies in flight are in (the client moved elsewhere)."""
        self._retiring = True
        if not self._pending:
            self._close_soon()

    def _close_soon(self) -> None:
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._ws.close())

    def abort(self) -> None:
        """Drop the connection now (it looks dead); waiting requests fail with ConnectionLost."""
        self._ws.transport.abort()
