"""Notification streams: delivery, exact resume after a reconnect, unwatch, compaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qcore.client import Client, HistoryCompacted, ServerError, notify_on_entity, notify_on_type
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error, refusal
from qcore.store.types import EntityId, Int, String
from tests.client.fake_node import FakeNode

FAST = {"request_timeout": 2.0, "attempt_timeout": 0.5, "connect_timeout": 1.0}


def change(index: int, value: int) -> dict[str, Any]:
    return {
        "entity_id": {"typ": "User", "id": 1},
        "field_type": "Score",
        "current_value": {"Int": value},
        "previous_value": {"Int": value - 1},
        "write_time": {"secs_since_epoch": index, "nanos_since_epoch": 0},
        "writer_id": None,
        "context": {"Name": {"String": "bob"}},
        "log_index": index,
    }


class Publisher:
    """Fake-node behaviour: answers registrations with a token, then pushes
    whatever the test queued for that registration's ``from_index``."""

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.history = history  # every change "committed" so far
        self.tokens = 0
        self.registrations: list[tuple[Any, str]] = []  # (ws, token)
        self.registered = asyncio.Event()
        self.compacted_below: int | None = None

    async def __call__(self, node: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RegisterNotification:
            if self.compacted_below is not None and (msg.from_index or 0) < self.compacted_below:
                return refusal(m.RegisterNotificationResponse, msg.id, Kind.COMPACTED,
                               f"history compacted below {self.compacted_below}")
            self.tokens += 1
            token = f"t{self.tokens}"
            # reply and the replayed history back to back, as a node does
            await node.send(ws, m.RegisterNotificationResponse(msg.id, m.ok(token)))
            for n in self.history:
                if msg.from_index is None or n["log_index"] >= msg.from_index:
                    await node.send(ws, m.Notification(token, n))
            self.registrations.append((ws, token))
            self.registered.set()
            return None
        if type(msg) is m.UnregisterNotification:
            return m.UnregisterNotificationResponse(msg.id, m.ok(None))
        return await FakeNode.serve_store(node, ws, msg)

    async def push(self, node: FakeNode, n: dict[str, Any]) -> None:
        self.history.append(n)
        ws, token = self.registrations[-1]
        await node.send(ws, m.Notification(token, n))


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    n = FakeNode(1)
    await n.start()
    yield n
    await n.stop()


async def test_watch_starts_after_last_applied_and_delivers_in_order(node: FakeNode) -> None:
    pub = Publisher([change(5, 1)])  # before the watch: not delivered
    node.behaviour = pub
    async with Client([node.address], **FAST) as c:
        w = await c.watch(notify_on_entity("User$1", "Score", context=["Name"]))
        reg = node.of_type(m.RegisterNotification)[0]
        assert reg.from_index == 11  # metrics last_applied 10, plus one
        assert reg.config == {
            "EntityId": {
                "entity_id": {"typ": "User", "id": 1},
                "field_type": "Score",
                "trigger_on_change": False,
                "context": ["Name"],
            }
        }
        for i in (11, 12, 13):
            await pub.push(node, change(i, i))
        got = [await w.get(2) for _ in range(3)]
        assert [n.log_index for n in got] == [11, 12, 13]
        assert got[0].entity_id == EntityId("User", 1) and got[0].current_value == Int(11)
        assert got[0].context == {"Name": String("bob")}
        await c.unwatch(w)
        assert len(node.of_type(m.UnregisterNotification)) == 1
        assert node.of_type(m.UnregisterNotification)[0].token == "t1"
        assert [n async for n in w] == []


async def test_notifications_right_behind_the_registration_reply_are_not_lost(node: FakeNode) -> None:
    pub = Publisher([change(11, 1), change(12, 2)])
    node.behaviour = pub
    async with Client([node.address], **FAST) as c:
        w = await c.watch(notify_on_type("User", "Score"), from_index=11)
        assert [(await w.get(2)).log_index for _ in range(2)] == [11, 12]


async def test_resume_after_reconnect_misses_nothing_and_repeats_nothing(node: FakeNode) -> None:
    pub = Publisher([])
    node.behaviour = pub
    async with Client([node.address], **FAST) as c:
        w = await c.watch(notify_on_type("User", "Score"))
        # entry 12 changed two entities; the connection dies after the first of them
        first_of_12 = {**change(12, 1), "entity_id": {"typ": "User", "id": 1}}
        second_of_12 = {**change(12, 1), "entity_id": {"typ": "User", "id": 2}}
        await pub.push(node, change(11, 0))
        await pub.push(node, first_of_12)
        assert (await w.get(2)).log_index == 11
        assert (await w.get(2)).entity_id == EntityId("User", 1)
        pub.history += [second_of_12, change(13, 3)]  # committed while the client was away
        pub.registered.clear()
        node.drop_connections()
        await pub.registered.wait()  # the client came back and registered again
        again = node.of_type(m.RegisterNotification)[-1]
        assert again.from_index == 12  # inclusive: entry 12 was only half delivered
        rest = [await w.get(2) for _ in range(2)]
        assert [(n.log_index, n.entity_id.id) for n in rest] == [(12, 2), (13, 1)]
        await pub.push(node, change(14, 4))
        assert (await w.get(2)).log_index == 14
        assert w.last_index == 14


async def test_resume_fails_with_history_compacted(node: FakeNode) -> None:
    pub = Publisher([])
    node.behaviour = pub
    async with Client([node.address], **FAST) as c:
        w = await c.watch(notify_on_type("User", "Score"))
        await pub.push(node, change(11, 0))
        assert (await w.get(2)).log_index == 11
        pub.compacted_below = 100
        node.drop_connections()
        with pytest.raises(HistoryCompacted, match="compacted"):
            await w.get(2)
        with pytest.raises(StopAsyncIteration):
            await w.__anext__()


async def test_a_refused_registration_raises_and_leaves_no_watch(node: FakeNode) -> None:
    async def refuse(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RegisterNotification:
            return m.RegisterNotificationResponse(msg.id, m.err("unknown entity type 'Nope'"))
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = refuse
    async with Client([node.address], **FAST) as c:
        with pytest.raises(ServerError, match="unknown entity type"):
            await c.watch(notify_on_type("Nope", "Score"))
        assert not c._watches


async def test_a_watch_cancelled_while_registering_is_unregistered_once_answered(node: FakeNode) -> None:
    # asyncio.wait_for(c.watch(...), 1) on a slow node, a TaskGroup cancelled meanwhile: the node
    # registers it all the same; the registration was left on the node, sending its changes to
    # a client that dropped them, for as long as the connection lived.
    arrived, answer, unregistered = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tokens: list[Any] = []

    async def slow(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RegisterNotification:
            arrived.set()
            await answer.wait()
            return m.RegisterNotificationResponse(msg.id, m.ok("t1"))
        if type(msg) is m.UnregisterNotification:
            tokens.append(msg.token)
            unregistered.set()
            return m.UnregisterNotificationResponse(msg.id, m.ok(None))
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = slow
    async with Client([node.address], **FAST) as c:
        watching = asyncio.create_task(c.watch(notify_on_type("User", "Score")))
        await arrived.wait()
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching
        assert not c._watches
        answer.set()
        await asyncio.wait_for(unregistered.wait(), 5)
        assert tokens == ["t1"]
        assert isinstance(await c.metrics(), dict)  # the client goes on serving


async def test_a_registration_answered_with_an_error_frame_raises_it_once(node: FakeNode) -> None:
    # A node answers a RegisterNotification it cannot serve at all (a from_index it cannot
    # decode, too many requests in flight...) with an Error frame, not a response. The
    # registration hook read it as a response: the reader died with an AttributeError, the
    # connection was dropped and the registration re-sent, hundreds of times a second.
    overloaded_once = [True]
    senders: set[int] = set()

    async def answer(fn: FakeNode, ws: Any, msg: Any) -> Any:
        if type(msg) is m.RegisterNotification:
            senders.add(id(ws))
            if msg.config["EntityType"]["entity_type"] == "Busy" and overloaded_once:
                overloaded_once.pop()
                return error(msg.id, Kind.OVERLOADED, "too many requests in flight")
            if msg.config["EntityType"]["entity_type"] != "Busy":
                return error(msg.id, Kind.INVALID, "from_index 5: expected an unsigned integer (as an example)")
            return m.RegisterNotificationResponse(msg.id, m.ok("t1"))
        return await FakeNode.serve_store(fn, ws, msg)

    node.behaviour = answer
    async with Client([node.address], **FAST) as c:
        with pytest.raises(ServerError, match="expected an unsigned integer"):
            await c.watch(notify_on_type("User", "Score"), from_index=5)
        assert len(node.of_type(m.RegisterNotification)) == 1 and not c._watches
        w = await c.watch(notify_on_type("Busy", "Score"))  # overloaded: not applied, sent again
        assert w.token == "t1" and len(node.of_type(m.RegisterNotification)) == 3
        assert len(senders) == 1  # all on the first connection
