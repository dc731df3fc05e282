"""qcore.node.transport.PeerLink's bound on what a node holds unsent for one
peer (--max-peer-output and the 8,192-frame queue): a frame larger than the
bound still goes when nothing is unsent; frames that would go over it are
taken in order up to the first that does not fit and the rest dropped, the
peer reported unreachable and one warning logged per 10 s; the frame cap
holds only while frames queue. The link is real; what is outside it are
stand-ins: a dialer that hands over a connection when the test says so, a
connection whose transport records the bytes written and reports the write
buffer the test sets, and a driver that records report_unreachable.
(Real processes: tests/node/test_frozen_follower.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from qcore import wsfast
from qcore.node import transport as transport_module
from qcore.node.transport import PeerLink, PeerTransport
from qcore.raft.types import ConfState

BOUND = 1000  # --max-peer-output, in bytes
PEER = 2
MAX_QUEUE = 8192
WAIT = 10.0  # seconds: a link that never writes fails its test rather than hanging it

# The stand-in connection is written to as the fast paths write (wsfast.write_frames); with them off the
# link's rules are the same and tests/node/test_cluster.py runs a cluster that way.
pytestmark = pytest.mark.skipif(not wsfast.FAST, reason=f"fast paths off: {wsfast.WHY_NOT}")


def frame(i: int, size: int = 300) -> bytes:
    """A frame of exactly ``size`` bytes that says which one it is."""
    head = b'{"n":%d,"pad":"' % i
    return head + b"x" * (size - len(head) - 2) + b'"}'


class _Driver:
    applied = 0  # what the link's path declares (qcore.node.removal)

    def __init__(self) -> None:
        self.unreachable: list[int] = []

    def conf_state(self) -> ConfState:
        return ConfState()

    def report_unreachable(self, peer_id: int) -> None:
        self.unreachable.append(peer_id)


class _SocketTransport:
    """The connection's asyncio transport: keeps what is written; its write
    buffer holds what the test says the peer has not read yet."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.buffered = 0
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written += data
        self.wrote.set()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


class _PeerWs:
    """An open client connection to the peer: websockets' own protocol
    object frames what the link writes; ``paused`` is the transport over its
    high-water mark, and ``drain()`` waits until the test lets it go."""

    def __init__(self) -> None:
        self.protocol = ClientProtocol(parse_uri("ws://127.0.0.1:2/raft"), state=State.OPEN)
        self.transport = _SocketTransport()
        self.paused = False
        self.reading = asyncio.Event()  # the link reads replies: it is pumping
        self._drained = asyncio.Event()
        self._closed = asyncio.Event()

    def received(self) -> list[bytes]:
        """The frames the peer gets from what was written."""
        server = ServerProtocol(state=State.OPEN)
        server.receive_data(bytes(self.transport.written))
        return [f.data for f in server.events_received()]

    def peer_reads(self) -> None:
        self.paused, self.transport.buffered = False, 0
        self._drained.set()

    async def drain(self) -> None:
        await self._drained.wait()

    async def close(self) -> None:
        self._closed.set()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        self.reading.set()
        await self._closed.wait()
        raise StopAsyncIteration


class _Dialer:
    """Refuses the first ``refuse`` dials (nothing listens yet), then connects when the test says so."""

    def __init__(self, ws: _PeerWs, refuse: int = 0) -> None:
        self.ws = ws
        self.accept = asyncio.Event()
        self.refuse = refuse
        self.dials = 0
        self.refused = asyncio.Event()

    async def open(self, addr: str, path: str, expect: int | None = None, **kwargs: Any) -> _PeerWs:
        self.dials += 1
        if self.dials <= self.refuse:
            self.refused.set()
            raise ConnectionRefusedError(f"nothing listens at {addr}")
        await self.accept.wait()
        return self.ws


class _Peer:
    """A real PeerLink to node 2, still connecting until ``connect()``."""

    def __init__(self, max_output: int = BOUND, refuse: int = 0) -> None:
        self.driver = _Driver()
        self.ws = _PeerWs()
        self.dialer = _Dialer(self.ws, refuse)
        self.transport = PeerTransport(1, "127.0.0.1:1", lambda: self.driver, overrides={PEER: "127.0.0.1:2"},
                                       dialer=self.dialer, max_output=max_output)
        self.link = PeerLink(self.transport, PEER)

    async def connect(self) -> None:
        """Hand the link its connection; return once it is pumping."""
        self.dialer.accept.set()
        await asyncio.wait_for(self.ws.reading.wait(), WAIT)
        assert self.link.connected

    async def flushed(self) -> None:
        """Until the link's task has written to the connection (since the test cleared ``wrote``)."""
        await asyncio.wait_for(self.ws.transport.wrote.wait(), WAIT)


@pytest.fixture
async def peer() -> AsyncIterator[_Peer]:
    p = _Peer()
    yield p
    await p.link.close()


@pytest.fixture
async def roomy_peer() -> AsyncIterator[_Peer]:
    """A link whose byte bound is far off, for the frame cap."""
    p = _Peer(max_output=1 << 20)
    yield p
    await p.link.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The transport module's clock (only the warnings' interval reads it)."""

    class Clock:
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

    c = Clock()
    monkeypatch.setattr(transport_module, "time", c)
    return c


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == transport_module.__name__ and r.levelno == logging.WARNING]


# -- (a) one frame larger than the bound, nothing unsent ---------------------------


async def test_a_frame_larger_than_the_bound_is_queued_when_nothing_waits_and_reaches_the_peer(peer: _Peer) -> None:
    big = frame(0, 3 * BOUND)
    peer.link.send_frames([big])
    assert peer.driver.unreachable == []
    await peer.connect()
    await peer.flushed()
    assert peer.ws.received() == [big]


async def test_a_frame_larger_than_the_bound_is_written_at_once_on_an_idle_connection(peer: _Peer) -> None:
    await peer.connect()
    big = frame(0, 3 * BOUND)
    peer.link.send_frames([big])
    assert peer.ws.received() == [big] and peer.driver.unreachable == []


async def test_a_large_frame_is_dropped_while_the_connection_holds_unsent_bytes(peer: _Peer) -> None:
    await peer.connect()
    peer.ws.transport.buffered = 1  # the peer has not read everything yet
    peer.link.send_frames([frame(0, 3 * BOUND)])
    assert peer.ws.received() == [] and peer.driver.unreachable == [PEER]


async def test_a_frame_larger_than_the_bound_goes_first_but_takes_the_room_of_those_after_it(peer: _Peer) -> None:
    big, small = frame(0, 3 * BOUND), frame(1, 50)
    peer.link.send_frames([big, small])
    assert peer.driver.unreachable == [PEER]
    await peer.connect()
    await peer.flushed()
    assert peer.ws.received() == [big]


# -- (b) over the bound: take what fits, in order; drop the rest; report; warn -----


async def test_over_the_bound_the_frames_that_fit_are_queued_in_order_and_the_rest_dropped(
        peer: _Peer, clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, transport_module.__name__)
    peer.link.send_frames([frame(0), frame(1)])  # 600 of 1000 bytes
    assert peer.driver.unreachable == []
    # frame 2 fits (900); frame 3 does not (1200), so it and frame 4 (which alone would fit) are dropped.
    peer.link.send_frames([frame(2), frame(3), frame(4, 50)])
    assert peer.driver.unreachable == [PEER]
    assert _warnings(caplog) == [
        f"peer {PEER} is not keeping up: dropped 2 messages (350 bytes) over --max-peer-output {BOUND}; "
        "Raft resends what it needs once it answers"]
    await peer.connect()
    await peer.flushed()
    assert peer.ws.received() == [frame(0), frame(1), frame(2)]  # the earlier queue is kept, in order


async def test_over_the_bound_the_connections_buffer_counts_and_the_frames_that_fit_are_written(peer: _Peer) -> None:
    await peer.connect()
    peer.ws.transport.buffered = 500  # the peer has not read 500 bytes yet
    # frame 0 fits (800); frame 1 does not (1100), so it and frame 2 (which alone would fit) are dropped.
    peer.link.send_frames([frame(0), frame(1), frame(2, 100)])
    assert peer.ws.received() == [frame(0)] and peer.driver.unreachable == [PEER]


async def test_drops_are_reported_every_time_but_warned_of_once_per_ten_seconds(
        peer: _Peer, clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, transport_module.__name__)
    peer.link.send_frames([frame(0), frame(1), frame(2)])  # 900 of 1000 bytes
    peer.link.send_frames([frame(3)])
    clock.now = 1009.9
    peer.link.send_frames([frame(4)])
    peer.link.send_frames([frame(5, 200), frame(6, 200)])
    assert peer.driver.unreachable == [PEER] * 3
    assert len(_warnings(caplog)) == 1 and "dropped 1 messages (300 bytes)" in _warnings(caplog)[0]
    clock.now = 1010.0  # ten seconds after the first warning: the next drop warns, counting those not warned of
    peer.link.send_frames([frame(7)])
    assert peer.driver.unreachable == [PEER] * 4
    assert len(_warnings(caplog)) == 2 and "dropped 4 messages (1000 bytes)" in _warnings(caplog)[1]


# -- (c) the 8,192-frame cap: only while frames queue --------------------------------


async def test_the_frame_cap_holds_while_connecting(roomy_peer: _Peer) -> None:
    tiny = [b"%d" % (i % 10) for i in range(MAX_QUEUE + 8)]
    roomy_peer.link.send_frames(tiny[:MAX_QUEUE - 2])
    assert roomy_peer.driver.unreachable == []
    roomy_peer.link.send_frames(tiny[MAX_QUEUE - 2:])  # two fit, eight are dropped
    assert roomy_peer.driver.unreachable == [PEER]
    await roomy_peer.connect()
    await roomy_peer.flushed()
    assert roomy_peer.ws.received() == tiny[:MAX_QUEUE]


async def test_the_frame_cap_does_not_apply_to_frames_written_at_once(roomy_peer: _Peer) -> None:
    await roomy_peer.connect()
    tiny = [b"%d" % (i % 10) for i in range(MAX_QUEUE + 8)]
    roomy_peer.link.send_frames(tiny)
    assert roomy_peer.ws.received() == tiny and roomy_peer.driver.unreachable == []


async def test_the_frame_cap_holds_while_the_link_drains_a_slow_peer(roomy_peer: _Peer) -> None:
    await roomy_peer.connect()
    roomy_peer.ws.paused = True  # the transport goes over its high-water mark with this write
    roomy_peer.link.send_frames([b"0"])
    assert roomy_peer.ws.received() == [b"0"]
    tiny = [b"%d" % (i % 10) for i in range(MAX_QUEUE + 1)]
    roomy_peer.link.send_frames(tiny)  # queued behind the drain: one too many
    assert roomy_peer.ws.received() == [b"0"] and roomy_peer.driver.unreachable == [PEER]
    roomy_peer.ws.transport.wrote.clear()
    roomy_peer.ws.peer_reads()
    await roomy_peer.flushed()
    assert roomy_peer.ws.received() == [b"0"] + tiny[:MAX_QUEUE]


# -- dialling again ----------------------------------------------------------------


async def test_a_peer_that_dials_us_is_dialled_again_at_once_not_after_the_backoff(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted peer is up once its own Raft connection to us opens: a link backing off from it
    dials it then, so the peer hears from its leader at once (it answered its clients no_leader for
    up to the 1 s backoff cap, over two election timeouts of 20 ms ticks)."""
    monkeypatch.setattr(transport_module, "_FIRST_BACKOFF", 3600.0)  # a backoff no test outlasts
    p = _Peer(refuse=1)
    try:
        p.transport._links[PEER] = p.link  # noqa: SLF001 (the transport makes its links as it sends)
        await asyncio.wait_for(p.dialer.refused.wait(), WAIT)  # the first dial failed: backing off
        p.transport.inbound_opened(PEER)  # the peer dialled us
        await p.connect()
        assert p.dialer.dials == 2
    finally:
        await p.link.close()
