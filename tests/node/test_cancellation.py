"""A node's own tasks stop when cancelled, even when what they wait for arrives at that moment:
Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the cancel and the
result meet, so a task that ``Node.stop()`` cancels could go on (the --join task, cancelled
while a call to the leader was answered, made its next call: AddLearner, ChangeMembership;
cancelled as its dial's peer handshake ended, it held an open connection and called on it).
Against a real node (the leader), over the forwarding link the join task uses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from qcore.node import peer_dial
from qcore.node.forwarder import Forwarder
from qcore.node.peer_auth import PeerKeys, load_secret
from qcore.node.peer_dial import PeerDialer
from tests.node.harness import NodeProc, start_and_init, wait_ready, wait_serving
from tests.node.tls_files import make_secret


class _CancelOnReply(dict[int, "asyncio.Future[dict[str, Any]]"]):
    """The link's table of requests in flight: the link's reader pops a request's entry, then
    resolves it with the reply; popping it first cancels the task that waits for it."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        super().__init__()
        self._cancel = cancel

    def pop(self, *args: Any) -> Any:
        self._cancel()
        return super().pop(*args)


async def test_a_forwarded_call_cancelled_as_its_reply_arrives_raises_cancelled(
    nodes: Callable[..., NodeProc],
) -> None:
    leader = nodes(1)
    await start_and_init([leader])
    await wait_ready(leader)
    forwarder = Forwarder(16 << 20, PeerDialer(9, None, None))
    try:
        assert "GetMetricsResponse" in await forwarder.forward(leader.addr, "GetMetrics", {}, 10)
        link = forwarder._link
        assert link is not None
        task: asyncio.Task[Any] | None = None

        def cancel() -> None:
            assert task is not None
            task.cancel()  # the reader resolves the request right after this

        link.pending = _CancelOnReply(cancel)
        task = asyncio.create_task(forwarder.forward(leader.addr, "GetMetrics", {}, 10))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "GetMetricsResponse" in await forwarder.forward(leader.addr, "GetMetrics", {}, 10)  # the link serves on
    finally:
        await forwarder.close()


async def test_a_peer_dial_cancelled_as_its_handshake_ends_raises_cancelled_and_closes(
    nodes: Callable[..., NodeProc], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = make_secret(tmp_path)
    node = nodes(1, "--peer-secret-file", str(secret), "--init").start()
    await wait_serving(node)
    dialer = PeerDialer(9, None, PeerKeys([load_secret(secret)]))
    task: asyncio.Task[ClientConnection] | None = None
    opened: list[ClientConnection] = []
    connect = peer_dial.connect

    async def connect_then_cancel_on_the_last_frame(*args: Any, **kwargs: Any) -> ClientConnection:
        ws = await connect(*args, **kwargs)
        opened.append(ws)
        put = ws.recv_messages.put

        def put_then_cancel(frame: Any) -> None:
            put(frame)  # the handshake's reader is woken with the frame; then, in the same tick, the cancel
            if b"Authenticated" in frame.data:
                assert task is not None
                task.cancel()

        ws.recv_messages.put = put_then_cancel  # type: ignore[method-assign]
        return ws

    monkeypatch.setattr(peer_dial, "connect", connect_then_cancel_on_the_last_frame)
    task = asyncio.create_task(dialer.open(node.addr, "/forward"))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(opened) == 1 and opened[0].state is State.CLOSED  # the cancelled dial's connection is closed
