"""The futures of requests waiting for an outcome, and their timeouts.

A request the driver accepts (a write, a membership change, a ReadIndex
barrier) gets a future; it is settled when the request is applied (or
refused), or failed with `OutcomeUnknown` once the node's request timeout
has passed. Both halves sit on the hot path of every write, which is why
they are shaped the way they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Callable

from qcore.node.errors import OutcomeUnknown

log = logging.getLogger(__name__)


class SettledNow(asyncio.Future):  # type: ignore[type-arg]
    """A future that calls `on_settled` the moment it is settled.

    asyncio runs done-callbacks on a later loop iteration, and the loop
    first handles whatever I/O arrived meanwhile (at three nodes, the second
    follower's acknowledgement): measured at 3 nodes, 1 client, a reply left
    ~100 µs after its entry was applied. The driver settles write futures
    inside its round, and calls `RaftDriver.after_apply` once a Ready's
    committed entries are applied, so the replies leave before the loop
    moves on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_settled: Callable[[asyncio.Future[Any]], None]) -> None:
        super().__init__(loop=loop)
        self._on_settled = on_settled

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._settled()

    def set_exception(self, exception: Any) -> None:
        super().set_exception(exception)
        self._settled()

    def _settled(self) -> None:
        try:
            self._on_settled(self)
        except Exception:
            # The caller's bug must not stop the apply that settled us.
            log.exception("write reply callback failed")


class Deadlines:
    """Request deadlines, counted in ticks.

    Every request gets the same timeout, so appending keeps the queue
    sorted: it is swept once per tick instead of arming a timer per request.
    """

    def __init__(self, timeout_ticks: int, timeout_s: float) -> None:
        self._queue: deque[tuple[int, asyncio.Future[Any], str]] = deque()
        self._timeout_ticks = timeout_ticks
        self._timeout_s = timeout_s

    def add(self, fut: asyncio.Future[Any], why: str, now: int) -> None:
        """`fut` fails with OutcomeUnknown(why) if still pending at tick
        `now` plus the timeout."""
        self._queue.append((now + self._timeout_ticks, fut, why))

    def __len__(self) -> int:
        return len(self._queue)

    def expire(self, now: int) -> None:
        """Fail the requests whose deadline has passed (at tick `now`)."""
        queue = self._queue
        while queue and (queue[0][0] <= now or queue[0][1].done()):
            _, fut, why = queue.popleft()
            if not fut.done():
                fut.set_exception(OutcomeUnknown(f"{why} (after {self._timeout_s:.0f}s)"))

    def forget_settled(self) -> None:
        """Drop the deadlines of requests already answered, oldest first.

        Requests settle in about the order they were made, so the driver,
        calling this every round, frees nearly every request (with everything
        its callbacks hold) in the round that answered it. Left to the next
        tick, a tick's worth of requests was freed at once, long after they
        had left the CPU caches: ~3.8 µs a request, measured at 1 node, 64
        clients.
        """
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
