"""qcore.client.connection.Connection: a request whose send fails because the connection just
went leaves no failed future behind that nobody retrieves (asyncio logs each one as an error:
seen as "Future exception was never retrieved ... ConnectionLost" in failover runs)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from qcore.client.connection import Connection, ConnectionLost
from qcore.protocol import messages as m


class _DroppingWebSocket:
    """A websocket whose connection drops while a frame is being sent: the reader learns of it
    (and fails the requests in flight) before the send does."""

    def __init__(self) -> None:
        self._gone = asyncio.Event()

    async def recv(self, decode: bool = False) -> Any:
        await self._gone.wait()
        raise ConnectionClosed(Close(1006, ""), None)

    async def send(self, frame: Any, text: bool = False) -> None:
        self._gone.set()
        for _ in range(5):  # the reader runs and fails what is pending
            await asyncio.sleep(0)
        raise ConnectionClosed(Close(1006, ""), None)

    async def close(self) -> None:
        self._gone.set()


async def test_a_send_cut_short_by_the_connection_dropping_leaves_no_unretrieved_failure() -> None:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, ctx: unretrieved.append(ctx))
    try:
        conn = Connection(_DroppingWebSocket(), "127.0.0.1:1", None, None)  # type: ignore[arg-type]
        try:
            await conn.send(m.GetMetrics(1))
        except ConnectionLost as exc:
            assert exc.sent
        else:
            raise AssertionError("the send should have failed")
        await conn.close()
        del conn
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [c["message"] for c in unretrieved] == []
