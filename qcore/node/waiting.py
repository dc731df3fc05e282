"""What a request waits on, and when it stops waiting.

A request the node accepts (a write, a membership change, a ReadIndex
barrier) is handed in with a `Waiter`: anything with a future's `done`,
`set_result` and `set_exception` (the asyncio driver passes
`asyncio.Future`s, the simulator plain objects). It is settled when the
request is applied or refused, or failed with `OutcomeUnknown` by
`Deadlines` once the node's request timeout, counted in ticks, has passed.
No clock and no event loop here: the runtime core is sans-I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from qcore.node.errors import OutcomeUnknown


class Waiter(Protocol):
    """The settle-once handle of one request (an `asyncio.Future` is one)."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class Deadlines:
    """Request deadlines, counted in ticks.

    Every request gets the same timeout, so appending keeps the queue
    sorted: it is swept once per tick instead of arming a timer per request.
    """

    def __init__(self, timeout_ticks: int, timeout_s: float) -> None:
        self._queue: deque[tuple[int, Waiter, str]] = deque()
        self._timeout_ticks = timeout_ticks
        self._timeout_s = timeout_s

    def add(self, waiter: Waiter, why: str, now: int) -> None:
        """`waiter` fails with OutcomeUnknown(why) if still pending at tick
        `now` plus the timeout."""
        self._queue.append((now + self._timeout_ticks, waiter, why))

    def __len__(self) -> int:
        return len(self._queue)

    def expire(self, now: int) -> None:
        """Fail the requests whose deadline has passed (at tick `now`)."""
        queue = self._queue
        while queue and (queue[0][0] <= now or queue[0][1].done()):
            _, waiter, why = queue.popleft()
            if not waiter.done():
                waiter.set_exception(OutcomeUnknown(f"{why} (after {self._timeout_s:.0f}s)"))

    def forget_settled(self) -> None:
        """Drop the deadlines of requests already answered, oldest first.

        Requests settle in about the order they were made, so calling this
        every round frees a request (and what its callbacks hold) in the
        round that answered it, while it is still in the CPU caches.
        """
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
