"""qcore.node.backpressure's deferral of reads: a read whose reply may be large
waits, in order, while its connection has no room, runs once it drains, and
is dropped (its accounting released) when the connection closes. The
connection's transport is a stand-in that records what is asked of it;
asyncio's pause_writing/resume_writing are the connection's ``on_writing``.
(Real processes: tests/node/test_hostile_clients.py.)"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from qcore.node.api import ConnContext
from qcore.node.backpressure import Backpressure
from qcore.node.errors import RequestFailed

LIMIT = 256 << 10


class _Transport:
    def __init__(self) -> None:
        self.reading = True
        self.buffered = 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        pass


class _Ws:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.on_writing: Callable[[bool], None] | None = None


def _conn(bp: Backpressure) -> Any:
    conn = ConnContext(_Ws())
    bp.attach(conn)
    return conn


def _bp() -> Backpressure:
    return Backpressure(LIMIT, 32 << 20, 30.0, 1 << 20, serve_held=lambda conn, frame: None)


async def test_reads_wait_in_order_while_the_connection_is_backed_up_and_run_when_it_drains() -> None:
    bp, ran = _bp(), []
    conn = _conn(bp)
    bp.run_read(conn, lambda: ran.append(0), lambda: ran.append(-1))
    assert ran == [0]  # room: runs at once
    conn.ws.on_writing(True)  # over the high-water mark: OUTPUT
    for i in (1, 2, 3):
        bp.run_read(conn, lambda i=i: ran.append(i), lambda: ran.append(-1))
    assert ran == [0] and bp.no_room(conn) and bp.pauses == 1
    conn.ws.on_writing(False)
    assert ran == [0, 1, 2, 3] and not bp.no_room(conn)


async def test_each_waiting_read_looks_again_so_only_one_large_reply_is_built_per_drain() -> None:
    bp, ran = _bp(), []
    conn = _conn(bp)

    def large(i: int) -> None:  # the reply it queues (not yet written) is over the limit
        ran.append(i)
        conn.outbox_bytes += LIMIT + 1

    conn.ws.on_writing(True)
    for i in range(4):
        bp.run_read(conn, lambda i=i: large(i), lambda: ran.append(-1))
    conn.ws.on_writing(False)
    assert ran == [0]  # the rest wait for its reply to be written
    bp.run_read(conn, lambda: ran.append(99), lambda: ran.append(-1))
    assert ran == [0]  # a later read waits behind them
    # The flush writes it and the transport backs up again: nothing more runs.
    conn.outbox_bytes, conn.ws.transport.buffered = 0, LIMIT + 1
    conn.ws.on_writing(True)
    bp.written(conn)
    assert ran == [0]
    conn.ws.transport.buffered = 0
    conn.ws.on_writing(False)
    assert ran == [0, 1]
    # A client reading fast: the flush leaves nothing unsent, so the next runs at once.
    conn.outbox_bytes = 0
    bp.written(conn)
    assert ran == [0, 1, 2]
    conn.outbox_bytes = 0
    bp.written(conn)
    conn.outbox_bytes = 0
    bp.written(conn)
    assert ran == [0, 1, 2, 3, 99] and not conn.flow.deferred


async def test_a_closed_connection_drops_its_waiting_reads_and_releases_their_work() -> None:
    bp, events = _bp(), []
    conn = _conn(bp)
    size = 30_000  # three of them are over the WORK limit (a quarter of LIMIT)

    def read(i: int) -> None:
        bp.started(conn, size)
        bp.run_read(conn, lambda: events.append(("ran", i)),
                    lambda: (events.append(("dropped", i)), bp.finished(conn, size)))

    conn.ws.on_writing(True)
    for i in range(3):
        read(i)
    assert conn.flow.work == 3 * size
    bp.detach(conn)
    assert events == [("dropped", 0), ("dropped", 1), ("dropped", 2)]
    assert conn.flow.work == 0 and not conn.flow.deferred
    read(3)  # a read whose barrier completes after the close is dropped at once, never run
    assert events[-1] == ("dropped", 3) and conn.flow.work == 0
    conn.ws.on_writing(False)  # nothing runs for a closed connection
    assert all(what == "dropped" for what, _ in events)


async def test_a_task_waits_for_room_and_fails_if_the_connection_closes() -> None:
    bp = _bp()
    conn = _conn(bp)
    await asyncio.wait_for(bp.drained(conn), 1)  # room: returns at once
    conn.ws.on_writing(True)
    waiting = asyncio.ensure_future(bp.drained(conn))
    await asyncio.sleep(0)
    assert not waiting.done() and len(conn.flow.deferred) == 1
    conn.ws.on_writing(False)
    await asyncio.wait_for(waiting, 1)
    conn.ws.on_writing(True)
    waiting = asyncio.ensure_future(bp.drained(conn))
    await asyncio.sleep(0)
    bp.detach(conn)
    with pytest.raises(RequestFailed, match="connection closed"):
        await asyncio.wait_for(waiting, 1)


def _turns() -> tuple[Backpressure, list[tuple[str, str]], Callable[[Any, str], None]]:
    """A Backpressure whose budget is spent by any one frame or read (0 s), a
    log of what was served, and the node's frame entry (Node._on_frame's gate)."""
    served: list[tuple[str, str]] = []

    def on_frame(conn: Any, frame: str) -> None:
        if (conn.flow.paused or bp.over_budget) and not bp.admit(conn, frame):
            return
        bp.timed(served.append, (conn.state["name"], frame))

    bp = Backpressure(LIMIT, 32 << 20, 30.0, 1 << 20, serve_held=on_frame, turn_budget=0.0)
    return bp, served, on_frame


def _named(bp: Backpressure, name: str) -> Any:
    conn = _conn(bp)
    conn.state["name"] = name
    return conn


async def test_frames_over_the_loop_iterations_budget_wait_their_turn_in_order() -> None:
    bp, served, on_frame = _turns()
    a, b, c = (_named(bp, n) for n in "abc")
    on_frame(a, "a1")  # spends this iteration's budget
    on_frame(b, "b1")
    on_frame(a, "a2")
    on_frame(c, "c1")
    on_frame(b, "b2")
    assert served == [("a", "a1")]
    assert not any(x.ws.transport.reading for x in (a, b, c))  # each waits for a turn, not read meanwhile
    assert bp.turn_waits == 3 and bp.pauses == 0  # (the metrics: waiting a turn is not a flow-control pause)
    await asyncio.sleep(0)  # the next loop iteration: one turn, to the first that waited
    assert served == [("a", "a1"), ("b", "b1")]
    for _ in range(4):
        await asyncio.sleep(0)
    # Connections take turns in the order they came to wait; each keeps its frames in order.
    assert served == [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2")]
    assert all(x.ws.transport.reading and not x.flow.paused for x in (a, b, c))
    await asyncio.sleep(0)
    on_frame(c, "c2")  # a new iteration with nobody waiting: served at once
    assert served[-1] == ("c", "c2")


async def test_reads_over_the_budget_wait_their_turn_and_a_closed_connection_drops_them() -> None:
    bp, served, on_frame = _turns()
    a, b = _named(bp, "a"), _named(bp, "b")
    ran: list[str] = []
    on_frame(a, "a1")
    bp.run_read(b, lambda: ran.append("b-read"), lambda: ran.append("b-dropped"))
    bp.run_read(a, lambda: ran.append("a-read"), lambda: ran.append("a-dropped"))
    assert ran == [] and bp.no_room(a) and b.ws.transport.reading  # a read waiting does not stop reading
    await asyncio.sleep(0)
    assert ran == ["b-read"]
    bp.run_read(b, lambda: ran.append("b-read2"), lambda: ran.append("b-dropped2"))
    bp.detach(a)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ran == ["b-read", "a-dropped", "b-read2"]


async def test_a_waiting_connections_reads_run_before_its_held_frames() -> None:
    bp, served, on_frame = _turns()
    a = _named(bp, "a")
    events: list[str] = []
    on_frame(a, "a1")
    bp.run_read(a, lambda: events.append("read"), lambda: events.append("dropped"))
    on_frame(a, "a2")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert events == ["read"] and served == [("a", "a1"), ("a", "a2")]


async def test_a_task_waits_for_a_turn_and_what_it_serves_then_is_counted() -> None:
    """The full request path: ``drained`` waits for a turn too, and ``timed`` hands back the reply."""
    bp, served, on_frame = _turns()
    a = _named(bp, "a")
    waiting = asyncio.ensure_future(bp.drained(a))  # it runs first in the next iteration
    on_frame(a, "a1")  # the budget is spent
    await asyncio.sleep(0)
    assert bp.turn_waits == 1  # it found the budget spent and waited
    await asyncio.wait_for(waiting, 1)  # its turn came
    assert not bp.over_budget
    assert bp.timed(lambda x: x * 2, 21) == 42
    assert bp.over_budget  # what it served was spent from the budget
