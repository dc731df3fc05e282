"""The hub over a real websockets connection on loopback: batched writes
arrive as separate messages, in order, and a cut-off really closes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from qcore.node.notify import OVERFLOW_CLOSE_CODE
from qcore.store import Int

from tests.notify.fakes import Harness, on_entity


class Conn:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws


async def _pair(h: Harness) -> tuple[Any, Any, Conn]:
    """A server-side connection attached to the hub, and the client end."""
    ready: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        conn = Conn(ws)
        h.hub.attach(conn)
        ready.set_result(conn)
        try:
            await ws.wait_closed()
        finally:
            h.hub.detach(conn)

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    port = server.sockets[0].getsockname()[1]
    client = await connect(f"ws://127.0.0.1:{port}", proxy=None, compression=None)
    return server, client, await ready


async def _token(h: Harness, conn: Conn, client: Any, config: dict, from_index: int | None = None) -> Any:
    """Register; the response must be the next frame the client reads, before any notification."""
    rid, refusal = await h.register_nowait(conn, config, from_index)  # type: ignore[arg-type]
    assert refusal is None, refusal
    reply = orjson.loads(await asyncio.wait_for(client.recv(), 10))
    assert reply["RegisterNotificationResponse"]["id"] == rid, reply
    return reply["RegisterNotificationResponse"]["response"]["Ok"]


async def test_many_notifications_arrive_as_separate_messages_in_order() -> None:
    h = Harness()
    u = h.create("User", "u")
    server, client, conn = await _pair(h)
    try:
        tok = await _token(h, conn, client, on_entity(u, "Logins", context=["Name"]))
        idx = [h.write(u, "Logins", Int(i)) for i in range(1, 501)]  # one burst: written in batches
        got = []
        for _ in range(500):
            msg = orjson.loads(await asyncio.wait_for(client.recv(), 10))
            assert msg["Notification"]["token"] == tok
            got.append(msg["Notification"]["notification"]["log_index"])
        assert got == idx
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_a_client_that_stops_reading_is_cut_off_and_closed() -> None:
    h = Harness(retain=50, queue_limit=20)
    u = h.create("User", "u")
    server, client, conn = await _pair(h)
    try:
        await _token(h, conn, client, on_entity(u, "Name"))
        big = "x" * 50_000
        from qcore.store import String
        # The client reads nothing: the socket buffers fill, the sender waits, the queue
        # fills, registrations catch up from the window, the window moves past them.
        for i in range(400):
            h.write(u, "Name", String(f"{i}{big}"))
            if h.hub.stats()["cut_off"]:
                break
            await asyncio.sleep(0)  # let the sender run (interleaving, not synchronisation)
        assert h.hub.stats()["cut_off"] == 1
        last: dict = {}
        try:
            async for frame in client:
                last = orjson.loads(frame)
        except ConnectionClosed:
            pass
        assert client.close_code == OVERFLOW_CLOSE_CODE
        assert "fell behind" in last.get("Error", {}).get("error", ""), last
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_a_long_replay_arrives_complete_and_in_order_then_goes_live() -> None:
    h = Harness(retain=10_000)
    u = h.create("User", "u")
    v = h.create("User", "v")
    idx = []
    for i in range(1, 601):
        idx.append(h.write(u, "Logins", Int(i)))
        h.write(v, "Logins", Int(i))  # not matched: scanned past
    server, client, conn = await _pair(h)
    try:
        tok = await _token(h, conn, client, on_entity(u, "Logins"), from_index=idx[0])
        idx.append(h.write(u, "Logins", Int(601)))  # published while the replay is queued
        got = []
        for _ in range(601):
            msg = orjson.loads(await asyncio.wait_for(client.recv(), 10))
            assert msg["Notification"]["token"] == tok
            got.append(msg["Notification"]["notification"]["log_index"])
        assert got == idx
        idx.append(h.write(u, "Logins", Int(602)))  # live again
        msg = orjson.loads(await asyncio.wait_for(client.recv(), 10))
        assert msg["Notification"]["notification"]["log_index"] == idx[-1]
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
