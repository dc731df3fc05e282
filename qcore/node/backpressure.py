"""Bounded work and output under slow or hostile clients: a connection that
does not read its replies, or has too much in flight, is not read.

A node answers each request as soon as it can and writes the reply to the
connection's transport. A client that sends and never reads would make it
buffer replies without end and keep it busy serving requests nobody reads
(issue 19: 16 such connections grew a node by ~900 MiB and starved every
other client). So a connection is paused — its transport not read, frames
it had already read held unserved — for any of four reasons:

- OUTPUT: its transport holds more than ``conn_limit`` bytes of unsent
  replies (asyncio calls the connection's ``pause_writing`` at that
  high-water mark, ``resume_writing`` below a quarter of it; the server
  connections of qcore.wsfast pass both on, with or without its fast
  paths). One that stays so for ``stuck_timeout`` seconds is closed, its
  output dropped;
- WORK: the requests it has in flight add up to more than a quarter of
  ``conn_limit`` bytes (their replies are still to come, as Python objects
  several times that big until they are encoded); it is read again once
  they are below half of that;
- NODE: all connections together hold more than ``total_limit`` bytes of
  unsent output; every connection holding more than `_SMALL` waits until
  the total is under half of it (looked at again every `_RECHECK` seconds
  while over: a connection below its own high-water mark gets no
  ``resume_writing`` to say it drained);
- TURN: this loop iteration has already spent ``turn_budget`` seconds
  serving frames and reads; the connection waits, in order with the others waiting,
  for the next iteration. Without it one iteration serves a large batch
  from every busy connection (16 batches of 2,000 reads: ~100 ms), and a
  fresh client needs several iterations to connect and be answered; with it
  the loop polls its sockets again after each budget, and connections take
  turns.

A client that reads its replies holds at most a frame or two and has far
less than a megabyte of requests in flight, so it never notices; other
connections are served while the paused ones wait.

A small request can have a large reply (a read of a 16 MiB value is ~100
bytes), so WORK alone lets a client that pipelines reads and never reads
replies make the node build hundreds of large replies at once. So a read
(and any request whose reply can be large, see ``run_read``/``drained``)
runs only while its connection has room for its reply: not while it is
paused for OUTPUT or NODE, nor while this loop iteration's replies to it
(not yet written) exceed ``conn_limit``. Otherwise it waits, in order, on the
connection and runs once the connection drains (each one looking again), so
a connection holds at most about one large reply beyond its limit. A closed
connection answers its waiting reads with an error nobody reads, which
releases their in-flight accounting, without building their replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from qcore.node.errors import RequestFailed
from qcore.node.remote import remote_of
from qcore.wsfast import unsent_bytes

if TYPE_CHECKING:
    from qcore.node.api import ConnContext

log = logging.getLogger(__name__)
_T = TypeVar("_T")

OUTPUT, WORK, NODE, TURN = 1, 2, 4, 16
GONE = 8  # detached: nothing is read or run for it again
_NO_ROOM = OUTPUT | NODE | GONE  # a read waits while any of these holds
_SMALL = 64 << 10  # output a connection may hold without counting toward the node's total
_LOG_EVERY = 10.0
_RECHECK = 0.05  # seconds between looks at the node's total while it is over the limit
TURN_BUDGET = 0.01  # seconds of serving frames per loop iteration before the rest wait a turn


class ConnFlow:
    """A connection's flow-control state (kept on its ConnContext)."""

    __slots__ = ("paused", "held", "held_bytes", "work", "timer", "deferred", "queued")

    def __init__(self) -> None:
        self.paused = 0  # reasons (OUTPUT | WORK | NODE | TURN | GONE); 0: read and served
        self.held: deque[Any] = deque()  # frames read but not served while paused
        self.held_bytes = 0
        self.work = 0  # bytes of the requests in flight
        self.timer: asyncio.TimerHandle | None = None  # stuck_timeout while OUTPUT
        self.deferred: deque[tuple[Callable[[], None], Callable[[], None]]] = deque()  # reads waiting: (run, drop)
        self.queued = False  # in Backpressure._waiting: held frames or reads wait for the next turn


class Backpressure:
    def __init__(self, conn_limit: int, total_limit: int, stuck_timeout: float, max_held: int,
                 serve_held: Callable[[Any, Any], None], turn_budget: float = TURN_BUDGET) -> None:
        """``serve_held(conn, frame)`` serves a frame that was held while ``conn`` was paused."""
        self.conn_limit = conn_limit
        self.work_limit = conn_limit // 4
        self.total_limit = total_limit
        self.stuck_timeout = stuck_timeout
        self.max_held = max_held
        self._serve_held = serve_held
        self._holding: dict[Any, int] = {}  # conn -> unsent bytes at the last look (only > _SMALL)
        self._node_paused: set[Any] = set()
        self._over_total = False
        self._recheck: asyncio.TimerHandle | None = None
        self._logged_at = -_LOG_EVERY
        self.turn_budget = turn_budget
        self.over_budget = False  # this loop iteration has spent its turn_budget: frames wait a turn
        self._spent = 0.0  # seconds spent serving frames in this loop iteration
        self._turn: asyncio.Handle | None = None  # the next iteration's new turn, once anything was spent
        self._waiting: deque[Any] = deque()  # connections with frames or reads waiting for a turn, in order
        self._timing = False  # in timed(): what it serves in turn is counted with the outer call
        self.pauses = 0  # times a connection stopped being read for OUTPUT, WORK or NODE
        self.turn_waits = 0  # times a connection's frames or reads waited for a turn
        self.closed = 0  # connections closed for not reading

    def write_limits(self) -> tuple[int, int]:
        """websockets' ``write_limit``: the transports' high- and low-water marks."""
        return self.conn_limit, self.conn_limit // 4

    # ------------------------------------------------------------ connections
    def attach(self, conn: ConnContext) -> None:
        if hasattr(conn.ws, "on_writing"):
            conn.ws.on_writing = lambda paused: self._on_writing(conn, paused)

    def detach(self, conn: ConnContext) -> None:
        flow: ConnFlow = conn.flow
        flow.paused |= GONE  # (a turn it still waits for finds it GONE and does nothing)
        if flow.timer is not None:
            flow.timer.cancel()
        flow.held.clear()
        deferred, flow.deferred = flow.deferred, deque()
        for _, drop in deferred:
            drop()
        self._node_paused.discard(conn)
        if self._holding.pop(conn, None) is not None and self._over_total:
            self._check_total()

    # ------------------------------------------------------------ events
    def admit(self, conn: ConnContext, frame: Any) -> bool:
        """May ``frame``, just read from ``conn``, be served now? If not, it is held.
        (Called while ``conn`` is paused, or this iteration is ``over_budget``.)"""
        flow: ConnFlow = conn.flow
        if not flow.paused:
            self._pause(conn, TURN)
            self._wait_turn(conn)
        flow.held.append(frame)
        flow.held_bytes += len(frame)
        if flow.held_bytes > self.max_held:
            self._close(conn, f"{flow.held_bytes} bytes of requests held while it was paused")
            return False
        # Still arriving: someone resumed reading (websockets does when its own
        # queue of read messages drains, which it does without the fast paths).
        transport = conn.ws.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        return False

    def started(self, conn: ConnContext, size: int) -> None:
        """A request of ``size`` bytes is in flight on ``conn``."""
        flow: ConnFlow = conn.flow
        flow.work += size
        if flow.work > self.work_limit and not flow.paused & WORK:
            self._pause(conn, WORK)

    def finished(self, conn: ConnContext, size: int) -> None:
        """A request of ``size`` bytes was answered."""
        flow: ConnFlow = conn.flow
        flow.work -= size
        if flow.paused & WORK and flow.work <= self.work_limit // 2:
            self._unpause(conn, WORK)

    def written(self, conn: ConnContext) -> None:
        """The server just wrote ``conn``'s outbox: count what it holds toward the
        node's total; reads that waited for the outbox to go out may run."""
        size = unsent_bytes(conn.ws)
        if size > _SMALL:
            self._holding[conn] = size
            if not self._over_total and sum(self._holding.values()) > self.total_limit:
                self._check_total()
        elif conn in self._holding:
            del self._holding[conn]
        if conn.flow.deferred:
            self._run_deferred(conn)

    # ------------------------------------------------------------ turns
    def timed(self, serve: Callable[..., _T], *args: Any) -> _T:
        """``serve(*args)`` (a frame, or a read), its time spent from this
        iteration's budget (once: what it serves in turn is counted with it)."""
        if self._timing:
            return serve(*args)
        self._timing = True
        started = time.perf_counter()
        try:
            return serve(*args)
        finally:
            self._timing = False
            self._spend(time.perf_counter() - started)

    def _spend(self, seconds: float) -> None:
        self._spent += seconds
        if self._turn is None:
            self._turn = asyncio.get_running_loop().call_soon(self._new_turn)
        if self._spent >= self.turn_budget:
            self.over_budget = True

    def _wait_turn(self, conn: ConnContext) -> None:
        """``conn`` has something (held frames, reads) waiting for the next turn."""
        if conn.flow.queued:
            return
        conn.flow.queued = True
        self._waiting.append(conn)
        self.turn_waits += 1

    def _new_turn(self) -> None:
        """A new loop iteration (it polled the sockets since the last): a fresh
        budget, spent first on the connections that waited for it, in order."""
        self._turn = None
        self._spent = 0.0
        self.over_budget = False
        waiting = self._waiting
        while waiting and not self.over_budget:
            conn = waiting.popleft()
            flow: ConnFlow = conn.flow
            flow.queued = False
            if flow.paused & TURN:
                self._unpause(conn, TURN)  # its waiting reads first, then its held frames
            elif flow.deferred:
                self._run_deferred(conn)

    # ------------------------------------------------------------ reads
    def no_room(self, conn: ConnContext) -> bool:
        """Must a request with a possibly large reply wait before it runs on ``conn``?
        (Also behind reads already waiting there: they run first, in order.)"""
        return bool(conn.flow.deferred) or self.over_budget or self._full(conn)

    def run_read(self, conn: ConnContext, run: Callable[[], None], drop: Callable[[], None]) -> None:
        """Run ``run`` (which replies) once ``conn`` has room for a large reply
        and the loop has budget; ``drop`` instead (it must reply too, cheaply)
        if the connection closes first."""
        if not self.no_room(conn):
            self.timed(run)
        elif conn.flow.paused & GONE:
            drop()
        else:
            conn.flow.deferred.append((run, drop))
            if self.over_budget:
                self._wait_turn(conn)

    async def drained(self, conn: ConnContext) -> None:
        """Until ``conn`` has room for a large reply (``run_read`` for a task: the
        reply must be queued in the same step as this returns). Raises
        RequestFailed if the connection closes first."""
        if not self.no_room(conn):
            return
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            self.run_read(conn, lambda: _settle(fut, None), lambda: _settle(fut, RequestFailed("the connection closed")))
            await fut
            if not self._full(conn):  # others woken with it may have filled it
                return

    def _full(self, conn: ConnContext) -> bool:
        """No room on ``conn`` for another large reply now."""
        return bool(conn.flow.paused & _NO_ROOM or conn.outbox_bytes > self.conn_limit)

    def _run_deferred(self, conn: ConnContext) -> None:
        """Run waiting reads, in order, while ``conn`` has room (each reply it
        queues counts: a large one leaves the rest waiting for the next flush)
        and the loop has budget (the rest wait for the next turn)."""
        deferred = conn.flow.deferred
        while deferred and not self._full(conn):
            if self.over_budget:
                self._wait_turn(conn)
                return
            run, _ = deferred.popleft()
            self.timed(run)

    def _on_writing(self, conn: ConnContext, paused: bool) -> None:
        """asyncio's pause_writing (True) / resume_writing (False) for ``conn``'s transport."""
        if paused:
            self._pause(conn, OUTPUT)
            return
        self._holding.pop(conn, None)
        self._unpause(conn, OUTPUT)
        if self._over_total:
            self._check_total()

    # ------------------------------------------------------------ pausing
    def _pause(self, conn: ConnContext, reason: int) -> None:
        flow: ConnFlow = conn.flow
        if reason == OUTPUT and flow.timer is None:
            flow.timer = asyncio.get_running_loop().call_later(self.stuck_timeout, self._stuck, conn)
        if reason == NODE:
            self._node_paused.add(conn)
        was = flow.paused
        flow.paused |= reason
        if reason != TURN and not was & ~TURN:
            self.pauses += 1
        if not was:
            transport = conn.ws.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()

    def _unpause(self, conn: ConnContext, reason: int) -> None:
        flow: ConnFlow = conn.flow
        if reason == OUTPUT and flow.timer is not None:
            flow.timer.cancel()
            flow.timer = None
        if reason == NODE:
            self._node_paused.discard(conn)
        if not flow.paused & reason:
            return
        flow.paused &= ~reason
        if flow.deferred and reason != WORK:  # before the held frames, which came later
            self._run_deferred(conn)
        if flow.paused:
            return
        transport = conn.ws.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
        while flow.held and not flow.paused:
            if self.over_budget:
                self._pause(conn, TURN)
                self._wait_turn(conn)
                return
            frame = flow.held.popleft()
            flow.held_bytes -= len(frame)
            self._serve_held(conn, frame)

    def _check_total(self) -> None:
        """NODE: pause the connections holding output while the total is over the
        limit; let them go once it is under half of it."""
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        for conn in list(self._holding):
            size = unsent_bytes(conn.ws)
            if size > _SMALL:
                self._holding[conn] = size
            else:
                del self._holding[conn]
        total = sum(self._holding.values())
        if total > self.total_limit:
            if not self._over_total:
                self._over_total = True
                self._log(f"{len(self._holding)} connections hold {total} bytes of unread replies "
                          f"(--max-output {self.total_limit}): not reading them until it drains")
            for conn in self._holding:
                self._pause(conn, NODE)
        elif self._over_total and total <= self.total_limit // 2:
            self._over_total = False
            for conn in list(self._node_paused):
                self._unpause(conn, NODE)
        if self._over_total:
            self._recheck = asyncio.get_running_loop().call_later(_RECHECK, self._check_total)

    def _stuck(self, conn: ConnContext) -> None:
        flow: ConnFlow = conn.flow
        flow.timer = None
        if flow.paused & OUTPUT:
            waiting = unsent_bytes(conn.ws)
            self._close(conn, f"its replies have not drained for {self.stuck_timeout:g}s ({waiting} bytes waiting)")

    def _close(self, conn: ConnContext, why: str) -> None:
        self.closed += 1
        self._log(f"closing the connection from {remote_of(conn.ws)}: {why}")
        flow: ConnFlow = conn.flow
        flow.held.clear()
        flow.held_bytes = 0
        transport = conn.ws.transport
        if transport is not None:
            transport.abort()  # a close handshake would wait behind the unread output

    def _log(self, what: str) -> None:
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY:
            self._logged_at = now
            log.warning("%s", what)


def _settle(fut: "asyncio.Future[None]", exc: BaseException | None) -> None:
    if fut.done():  # the waiting task was cancelled
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
