"""Linearizable reads: ReadIndex rounds shared by every read that waits.

A read may be served from local state once the node has applied everything
the cluster had committed when the read arrived. The Raft core finds that
index with a ReadIndex round (the leader confirms it is still leader with a
quorum heartbeat; a follower asks the leader). All reads that arrive while a
round is being set up share it: `ReadBatcher.issue` is called once per
round of the runtime core with every read queued since the last one. A
served read's waiter is settled with the read index it was served at.

A round that goes unanswered is asked again under a new context, but the
old one still counts: an answer to either was computed after the reads
arrived, so whichever comes first serves them. (Dropping the old one, a
round trip longer than the retry interval would have retried forever.)
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable

from qcore.node.waiting import Waiter

Waiters = list[Waiter]


class ReadBatcher:
    def __init__(self, read_index: Callable[[bytes], None], retry_ticks: int, prefix: bytes = b"") -> None:
        """`prefix` makes this batcher's round contexts unique to this boot of
        the node: an answer to a round of an earlier boot (still in flight
        when the node restarted) must not serve a new round."""
        self._read_index = read_index
        self._retry_ticks = retry_ticks
        self._prefix = prefix
        self._ctx = itertools.count(1)
        self._inflight: dict[bytes, tuple[int, Waiters]] = {}  # ctx -> (tick issued, waiters)
        self._retried: dict[bytes, Waiters] = {}  # ctx asked again under another: its answer still serves
        self._ready: list[tuple[int, int, Waiters]] = []  # heap of (read index, tiebreak, waiters)

    def issue(self, waiters: Waiters, now_tick: int) -> None:
        """Start one ReadIndex round for all of `waiters`."""
        waiters = [f for f in waiters if not f.done()]
        if not waiters:
            return
        ctx = self._prefix + next(self._ctx).to_bytes(8, "big")
        self._inflight[ctx] = (now_tick, waiters)
        self._read_index(ctx)

    def retry_stale(self, now_tick: int) -> None:
        """A round can be dropped (no leader, lost message): ask again after
        `retry_ticks` (a round normally takes one round trip; asking sooner
        would only add load to a busy leader). Reads are idempotent."""
        if self._retried:
            for ctx in [c for c, ws in self._retried.items() if all(w.done() for w in ws)]:
                del self._retried[ctx]  # served through another round, or gave up
        if not self._inflight:
            return
        limit = now_tick - self._retry_ticks
        for ctx in [c for c, (issued, _) in self._inflight.items() if issued <= limit]:
            _, waiters = self._inflight.pop(ctx)
            self._retried[ctx] = waiters
            self.issue(waiters, now_tick)

    def reissue(self, now_tick: int) -> None:
        """A new leader is known: rounds asked of the previous one (dropped when
        it went, or never to be answered) are asked again now, as one round."""
        if not self._inflight:
            return
        waiters = [w for _, ws in self._inflight.values() for w in ws]
        for ctx, (_, ws) in self._inflight.items():
            self._retried[ctx] = ws
        self._inflight.clear()
        self.issue(waiters, now_tick)

    def on_read_state(self, ctx: bytes, index: int) -> None:
        """The core answered round `ctx`: its reads may run once `index` is applied."""
        entry = self._inflight.pop(ctx, None)
        waiters = entry[1] if entry is not None else self._retried.pop(ctx, None)
        if waiters is not None:
            heapq.heappush(self._ready, (index, id(waiters), waiters))

    def serve(self, applied: int) -> None:
        ready = self._ready
        while ready and ready[0][0] <= applied:
            index, _, waiters = heapq.heappop(ready)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(index)

    def pending(self) -> Waiters:
        """Every waiter not yet served (for shutdown)."""
        return [f for _, fs in self._inflight.values() for f in fs] + [f for _, _, fs in self._ready for f in fs]
