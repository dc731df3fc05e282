"""ReadIndex (Raft thesis 6.4): linearizable reads without writing the log.

A read may be served from a node's state machine once it has applied the
leader's commit index *as of some moment after the read arrived*, provided
the leader was still the leader at that moment. The leader proves the latter
by a heartbeat round that a quorum acknowledges.

Reads are batched into rounds: a round records the commit index when it
starts and the reads it covers; its heartbeats carry the round's context.
The leader starts a round when the runtime next asks for a Ready, so all
reads that arrived since share it. Reads that arrive while a round is in
flight cannot join it (its heartbeats may have left before they arrived) and
wait for the next round, which starts as soon as the current one completes
or at the next heartbeat tick, whichever comes first. So a burst of reads
costs one or two heartbeat rounds in total, not one each.

An acknowledgement of round k also vouches for every earlier round (the
follower answered a heartbeat sent after those reads arrived), so completing
round k releases every round up to k; lost heartbeats are thus repaired by
later ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .types import Message

__all__ = ["ReadOnly", "ReadRound"]


@dataclass(slots=True)
class ReadRound:
    ctx: bytes
    index: int  # the leader's commit index when the round started
    requests: list[Message]
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self, first_round: int = 0) -> None:
        self._seq = first_round
        self._rounds: OrderedDict[bytes, ReadRound] = OrderedDict()
        self._waiting: list[Message] = []

    @property
    def next_round_seq(self) -> int:
        return self._seq

    def add_request(self, m: Message) -> None:
        """Queue a read for the next round."""
        self._waiting.append(m)

    def has_waiting(self) -> bool:
        return bool(self._waiting)

    def in_flight(self) -> bool:
        return bool(self._rounds)

    def start_round(self, commit: int) -> ReadRound | None:
        """Start a round for all waiting reads; None if nothing waits."""
        if not self._waiting:
            return None
        self._seq += 1
        ctx = b"read-%d" % self._seq
        rnd = ReadRound(ctx, commit, self._waiting)
        self._waiting = []
        self._rounds[ctx] = rnd
        return rnd

    def last_ctx(self) -> bytes:
        """Context of the newest round in flight (b"" if none)."""
        return next(reversed(self._rounds)) if self._rounds else b""

    def recv_ack(self, frm: int, ctx: bytes, has_quorum: Callable[[set[int]], bool]) -> list[ReadRound]:
        """Record that `frm` answered the heartbeat of round `ctx`.

        The answer counts for that round and every older one. Returns the
        rounds now complete (the newest round with a quorum and all older
        rounds), oldest first; [] if none or `ctx` is unknown (stale).
        """
        if ctx not in self._rounds:
            return []
        newest_done: bytes | None = None
        for key, rnd in self._rounds.items():
            rnd.acks.add(frm)
            if has_quorum(rnd.acks):
                newest_done = key
            if key == ctx:
                break
        if newest_done is None:
            return []
        done = []
        while self._rounds:
            key, rnd = self._rounds.popitem(last=False)
            done.append(rnd)
            if key == newest_done:
                break
        return done
