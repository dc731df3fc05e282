"""A live node's WebSocket connections (qcore.wsfast, tested in-process in
tests/test_wsfast.py): unfragmented and fragmented messages are both
served, and a text frame that is not UTF-8 gets an Error, connection open
(with the fast paths off, websockets closes the connection with 1007)."""

from __future__ import annotations

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from qcore import wsfast
from tests.node.harness import wait_serving


async def test_fragmented_and_whole_messages_are_both_served(nodes):
    n = nodes(1, "--init").start()
    await wait_serving(n)
    async with connect(f"ws://{n.addr}") as ws:
        frame = orjson.dumps({"GetMetrics": {"id": "fragmented"}}).decode()
        # An iterable sends one message as several frames (opcode CONT after the first).
        await ws.send([frame[:5], frame[5:12], frame[12:]])
        await ws.send(orjson.dumps({"GetMetrics": {"id": "whole"}}).decode())
        ids = set()
        for _ in range(2):
            reply = orjson.loads(await ws.recv())
            ids.add(reply["GetMetricsResponse"]["id"])
        assert ids == {"fragmented", "whole"}


async def test_text_frame_that_is_not_utf8_gets_an_error(nodes):
    n = nodes(1, "--init").start()
    await wait_serving(n)
    async with connect(f"ws://{n.addr}") as ws:
        await ws.send(b'{"GetMetrics": {"id": "\xff\xfe"}}', text=True)
        if not wsfast.FAST:
            # websockets' own parser closes the connection (1007), as RFC 6455 says.
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
            return
        reply = orjson.loads(await ws.recv())
        assert "not valid UTF-8" in reply["Error"]["error"]
        await ws.send(orjson.dumps({"GetMetrics": {"id": "after"}}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["GetMetricsResponse"]["id"] == "after"
