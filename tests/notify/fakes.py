"""A real Store fed through a NotificationHub, and a websocket test double.

The fake connection only records what the hub sends and can be stalled (a
client that stops reading); the hub under test is the real one.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson

from qcore.node.notify import NotificationHub
from qcore.protocol import messages as m
from qcore.store import (
    CreateEntity,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldSchema,
    Int,
    LoadConfig,
    PushCondition,
    Store,
    String,
    Timestamp,
    UpdateEntity,
    Write,
)

NOW = Timestamp(1_700_000_000, 0)


def _fs(name: str, default: Any, rank: int) -> FieldSchema:
    return FieldSchema(name, default, rank)


SCHEMAS = [
    EntitySchema("Object", None, {
        "Name": _fs("Name", String(""), 0),
        "Parent": _fs("Parent", EntityReference(None), 1),
        "Children": _fs("Children", EntityList(()), 2),
    }),
    EntitySchema("Folder", "Object", {}),
    EntitySchema("User", "Object", {"Email": _fs("Email", String(""), 3), "Logins": _fs("Logins", Int(0), 4)}),
    EntitySchema("Admin", "User", {"Level": _fs("Level", Int(0), 5)}),
]


class FakeWs:
    """Collects sent frames (decoded); `stall()` makes send() wait like a full socket."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []  # everything but registration responses
        self.replies: dict[Any, dict[str, Any]] = {}  # registration responses by request id
        self.sent: list[dict[str, Any]] = []  # every frame, in the order it was sent
        self.close_code: int | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._arrived = asyncio.Condition()
        self.closed = asyncio.Event()

    def stall(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def send(self, data: bytes | str, text: bool | None = None) -> None:
        assert text is True, "frames must be sent as text"
        await self._open.wait()
        async with self._arrived:
            frame = orjson.loads(data)
            self.sent.append(frame)
            reply = frame.get("RegisterNotificationResponse")
            if reply is not None:
                self.replies[reply["id"]] = frame
            else:
                self.frames.append(frame)
            self._arrived.notify_all()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.closed.set()

    async def wait_frames(self, n: int, timeout: float = 5) -> list[dict[str, Any]]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.frames) >= n), timeout)
        return self.frames

    async def wait_until(self, predicate: Any, timeout: float = 5) -> None:
        """Until ``predicate()`` holds, re-checked after every frame sent."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(predicate), timeout)

    async def wait_reply(self, rid: Any, timeout: float = 5) -> dict[str, Any]:
        await self.wait_until(lambda: rid in self.replies, timeout)
        return self.replies[rid]

    def notifications(self, token: Any = None) -> list[dict[str, Any]]:
        return [f["Notification"]["notification"] for f in self.frames
                if "Notification" in f and (token is None or f["Notification"]["token"] == token)]


class FakeConn:
    """Stands in for qcore.node.api.ConnContext: the hub only uses `.ws`."""

    def __init__(self) -> None:
        self.ws = FakeWs()


class Harness:
    """A store, a hub and a log index, applied the way the node's state machine does."""

    def __init__(self, retain: int = 1000, max_per_conn: int = 100, queue_limit: int = 1000, **hub_kw: Any) -> None:
        self.store = Store()
        self.hub = NotificationHub(retain, max_per_conn, queue_limit, lambda: self.store, close_timeout=0.5, **hub_kw)
        self.index = 0
        self._ids = itertools.count(1)
        resp, _ = self.apply(LoadConfig(schemas=list(SCHEMAS)))
        assert resp.error is None, resp

    def apply(self, *cmds: Any) -> tuple[Any, list[Any]]:
        """One log entry carrying `cmds`; returns the last response and all changes."""
        self.index += 1
        changes: list[Any] = []
        resp = None
        for cmd in cmds:
            resp, ch = self.store.apply(cmd, NOW)
            changes.extend(ch)
            if ch:  # as qcore.node.state_machine does: after each command, before the next
                self.hub.publish(self.index, ch)
        return resp, changes

    def create(self, typ: str, name: str = "", parent: EntityId | None = None) -> EntityId:
        resp, _ = self.apply(CreateEntity(typ, parent, name))
        assert resp.error is None, resp
        return resp.response

    def write(self, eid: EntityId, field: str, value: Any, push: PushCondition = PushCondition.Always,
              writer: EntityId | None = None) -> int:
        resp, _ = self.apply(UpdateEntity([Write(eid, field, value, push, writer_id=writer)]))
        assert resp.error is None, resp
        return self.index

    def connect(self) -> FakeConn:
        conn = FakeConn()
        self.hub.attach(conn)
        return conn

    async def register_nowait(self, conn: FakeConn, config: dict[str, Any],
                              from_index: int | None = None) -> tuple[str, Any]:
        """(request id, the ``{"Err": ...}`` if refused, else None: the response is queued on the connection)."""
        rid = f"r{next(self._ids)}"
        reply = await self.hub.register(m.RegisterNotification(rid, config, from_index), conn)
        if reply is None:
            return rid, None
        assert isinstance(reply, m.RegisterNotificationResponse) and "Err" in reply.response, reply
        return rid, reply.response

    async def register(self, conn: FakeConn, config: dict[str, Any], from_index: int | None = None) -> Any:
        """The registration's response: returned by the hub if refused, else sent on the connection."""
        rid, refusal = await self.register_nowait(conn, config, from_index)
        if refusal is not None:
            return refusal
        frame = await conn.ws.wait_reply(rid)
        return frame["RegisterNotificationResponse"]["response"]

    async def token(self, conn: FakeConn, config: dict[str, Any], from_index: int | None = None) -> int:
        resp = await self.register(conn, config, from_index)
        assert "Ok" in resp, resp
        return resp["Ok"]

    async def unregister(self, conn: FakeConn, token: Any) -> Any:
        reply = await self.hub.unregister(m.UnregisterNotification(f"u{next(self._ids)}", token), conn)
        return reply.response


def eid_json(e: EntityId) -> dict[str, Any]:
    return {"typ": e.typ, "id": e.id}


def on_entity(e: EntityId, field: str, on_change: bool = False, context: list[str] | None = None) -> dict[str, Any]:
    return {"EntityId": {"entity_id": eid_json(e), "field_type": field, "trigger_on_change": on_change,
                         "context": context or []}}


def on_type(typ: str, field: str, on_change: bool = False, context: list[str] | None = None) -> dict[str, Any]:
    return {"EntityType": {"entity_type": typ, "field_type": field, "trigger_on_change": on_change,
                           "context": context or []}}
