"""The client in an asyncio application, against a real node: a cancel is never lost (Python
3.11's ``asyncio.wait_for`` returns the result instead of raising when the cancel and the
awaited result meet, so a task polling the database could not be stopped), the client goes on
working with nothing left waiting, and a client used in a second event loop says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from qcore.client import Client, notify_on_entity
from qcore.client.connection import Connection
from qcore.protocol import messages as m
from tests.node.harness import NodeProc, wait_serving


async def test_a_request_cancelled_as_its_reply_arrives_raises_cancelled(ready_node: str) -> None:
    async with Client([ready_node]) as c:
        task: asyncio.Task[Any] | None = None

        def cancel_on_reply(conn: Connection, reply: m.Message) -> None:
            assert task is not None
            task.cancel()  # the cancel meets the reply: the reader resolves it right after this

        task = asyncio.create_task(c.request(m.GetMetrics(c.next_id()), on_reply=cancel_on_reply))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c._conn is not None and c._conn.pending == 0
        assert await c.read_value("User$3", "Name") == "admin"


async def test_a_watch_get_cancelled_as_a_notification_arrives_raises_and_keeps_it(ready_node: str) -> None:
    async with Client([ready_node]) as c:
        async with await c.watch(notify_on_entity("User$4", "Name"), decode=False) as w:
            await c.write("User$4", "Name", "alice2")
            change = await w.get(10)
            getting = asyncio.create_task(w.get(10))
            while not w._queue._getters:  # type: ignore[attr-defined]  # until it waits for the next one
                await asyncio.sleep(0)
            w.deliver({**change, "log_index": change["log_index"] + 1})  # the reader's push, and in the
            getting.cancel()                                              # same tick the cancel
            with pytest.raises(asyncio.CancelledError):
                await getting
            assert (await w.get(10))["log_index"] == change["log_index"] + 1  # not lost to the cancel


def test_a_client_used_in_a_second_event_loop_says_so(nodes: Callable[..., NodeProc]) -> None:
    node = nodes(1, "--init").start()
    asyncio.run(wait_serving(node))
    c = Client([node.addr])

    async def first() -> Any:
        await c.open()
        return await c.read_value("User$3", "Name")

    assert asyncio.run(first()) == "admin"  # the loop ends without closing the client
    with pytest.raises(RuntimeError, match="first used in another event loop"):
        asyncio.run(c.read_value("User$3", "Name"))
    asyncio.run(c.close())  # its loop is gone: close() has nothing left to wait for
