"""Notification streams that survive reconnects (SPEC 6, issue 7).

A :class:`Watch` is one registration, seen by its user as an async iterator
of notifications. Registrations live and die with a connection, so the client
registers the watch again on every new connection and resumes it where it
stopped, the way etcd resumes a watch from a revision:

* Every notification carries the ``log_index`` of the entry that made the
  change. The watch remembers the last index it delivered and how many
  changes of that entry it delivered.
* On a new connection it registers with ``from_index`` = that last index
  (inclusive) and drops the changes of that entry it already delivered — one
  entry may change many fields, and the old connection may have died half-way
  through them. Anything older than the last index is a duplicate and dropped.
* A watch that has not delivered anything yet resumes from the index it
  started at (the node's ``last_applied + 1`` when the watch was created).

If the node no longer retains the changes since then it answers with kind
``compacted``, which the iterator raises as
:exc:`~qcore.client.errors.HistoryCompacted`: re-read the state and watch
again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from qcore.client import convert
from qcore.client.connection import ConnectionLost
from qcore.client.errors import HistoryCompacted, ServerError
from qcore.protocol.errors import Kind, refusal_of
from qcore.protocol.messages import (Message, RegisterNotification, RegisterNotificationResponse, UnregisterNotification,
                                     result_of)

if TYPE_CHECKING:
    from qcore.client.session import Session as Client
    from qcore.client.connection import Connection

logger = logging.getLogger(__name__)

__all__ = ["Watch", "notify_on_entity", "notify_on_type"]

_END = object()


def notify_on_entity(
    entity_id: Any, field: str, *, trigger_on_change: bool = False, context: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """A ``NotifyConfig`` for one field (or ``->`` path) of one entity."""
    from qcore.client.command_json import entity_id as eid_json

    return {
        "EntityId": {
            "entity_id": eid_json(entity_id),
            "field_type": field,
            "trigger_on_change": trigger_on_change,
            "context": list(context),
        }
    }


def notify_on_type(
    entity_type: str, field: str, *, trigger_on_change: bool = False, context: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """A ``NotifyConfig`` for one field of every entity of a type (and of its derived types)."""
    return {
        "EntityType": {
            "entity_type": entity_type,
            "field_type": field,
            "trigger_on_change": trigger_on_change,
            "context": list(context),
        }
    }


class Watch:
    """A notification stream: ``async for change in watch``; ``await watch.close()`` to stop.

    Items are the ``notification`` objects of SPEC 6: ``entity_id, field_type,
    current_value, previous_value, write_time, writer_id, context, log_index`` —
    as the store's ``Notification`` (or the JSON as is, with ``decode=False``).
    """

    def __init__(self, client: Client, config: dict[str, Any], from_index: int | None, decode: bool = True) -> None:
        self.config = config
        self._decode = decode
        self._client = client
        self._start_index = from_index
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._conn: Connection | None = None
        self._token: Any = None
        #: log_index of the last delivered notification, and how many of that entry's changes were delivered.
        self.last_index: int | None = None
        self._seen_at_last = 0
        self._skip = 0
        self._closed = False
        self._registering: asyncio.Task[None] | None = None

    @property
    def token(self) -> Any:
        """The server's token of the current registration."""
        return self._token

    @property
    def closed(self) -> bool:
        return self._closed

    def resume_index(self) -> int | None:
        return self.last_index if self.last_index is not None else self._start_index

    async def register(self, timeout: float | None = None) -> None:
        """Register (again) on the client's current connection, resuming where the stream stopped."""
        # Stop taking pushes from the old registration first, so that the resume
        # point below stays put; whatever it would still have sent is replayed.
        self._detach()
        from_index = self.resume_index()
        msg = RegisterNotification(self._client.next_id(), self.config, from_index)
        self._skip = self._seen_at_last if self.last_index is not None else 0
        reply = await self._client.request(msg, timeout=timeout, idempotent=True, on_reply=self._on_registered)
        why = refusal_of(reply)
        if why is not None:
            if why.kind == Kind.COMPACTED:
                raise HistoryCompacted(f"cannot resume watch from log index {from_index}: {why.text}")
            raise ServerError(why.text, why.kind)

    def _on_registered(self, conn: Connection, reply: Message) -> None:
        # Runs in the reader before any later frame, so the notifications that
        # follow the reply on this connection already find their watch. An Error
        # frame (a request the node could not serve at all) is register()'s to raise.
        if type(reply) is not RegisterNotificationResponse:
            return
        ok, token = result_of(reply.response)
        if not ok or self._closed:
            return
        self._detach()
        self._conn, self._token = conn, token
        conn.watches[token] = self

    def _detach(self) -> None:
        if self._conn is not None:
            if self._conn.watches.get(self._token) is self:
                del self._conn.watches[self._token]
            self._conn = None

    def attached_to(self, conn: Connection) -> bool:
        return self._conn is conn and not conn.closed

    def deliver(self, notification: dict[str, Any]) -> None:
        """A pushed notification for this watch's token (called by the reader)."""
        if self._closed:
            return
        idx = notification.get("log_index")
        if type(idx) is int and self.last_index is not None:
            if idx < self.last_index:
                return  # replayed from before the resume point: already delivered
            if idx == self.last_index and self._skip:
                self._skip -= 1
                return
        self._skip = 0
        if type(idx) is int:
            if idx == self.last_index:
                self._seen_at_last += 1
            else:
                self.last_index, self._seen_at_last = idx, 1
        self._queue.put_nowait(notification)

    def fail(self, error: BaseException) -> None:
        """End the stream with an error raised by the iterator."""
        if not self._closed:
            self._closed = True
            self._detach()
            self._queue.put_nowait(error)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Any:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls stop too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(_END)
            raise item
        return convert.decode_notification(item) if self._decode else item

    async def get(self, timeout: float | None = None) -> Any:
        """The next notification (``asyncio.TimeoutError`` after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):  # not wait_for: in 3.11 it can swallow a cancel, and the item with it
            return await self.__anext__()

    async def close(self) -> None:
        """Unregister and end the stream (idempotent)."""
        if self._closed:
            return
        self._closed = True
        conn, token = self._conn, self._token
        self._detach()
        self._client._forget_watch(self)
        self._queue.put_nowait(_END)
        if conn is not None and not conn.closed:
            # On the registration's own connection: tokens are per connection.
            unregister = UnregisterNotification(self._client.next_id(), token)
            try:
                fut = await conn.send(unregister)
                async with asyncio.timeout(self._client.request_timeout):
                    await fut
            except (ConnectionLost, TimeoutError) as e:  # the registration dies with the connection anyway
                logger.debug("unregister of %r failed: %s", token, e)
            finally:  # timed out or cancelled: nothing waits for its reply any more
                conn.forget(unregister.id)

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
