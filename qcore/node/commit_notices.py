"""A leader's commit-only appends, held back briefly.

When a leader's commit index moves, Raft sends every follower an append
with no entries, only to tell it the new commit index, and each follower
answers it. The next append that carries entries tells the follower the
same thing, and under load one follows within a fraction of a millisecond,
so these notices are held for `delay` and dropped when an append with
entries to the same follower overtakes them (docs/benchmarks.md has what
this saves).

Nobody waits on a held notice for long, or at all:
- a follower whose clients' writes are in the committed entries (it handed
  them to this leader as a forwarded batch, see `note_forwarded`) gets its
  notice at once: it answers those clients from its own apply;
- a linearizable read on a follower learns the commit index from the
  heartbeat round of its ReadIndex request, not from these appends;
- anything else (a follower's notifications, a stale read) sees the commit
  at most `delay` later.

The delay runs per follower, from the moment it was first left untold: a
notice that an append overtook no longer counts, so under a steady light
load the timer finds nothing due and sends nothing.

Delaying a message is always safe in Raft (the network may do the same);
the core is not involved and does not know. Sans-I/O: time comes from the
`clock` the runtime passes in, and the runtime calls `on_timer` once
`due_at()` has passed.
"""

from __future__ import annotations

from typing import Callable

from qcore.raft.types import Message, MessageType

_APP = MessageType.APP


class CommitNotices:
    def __init__(self, send: Callable[[list[Message]], None], delay: float, clock: Callable[[], float]) -> None:
        self._send = send
        self._clock = clock
        self._delay = delay
        self._held: dict[int, Message] = {}
        # follower id -> clock time since which it has been left untold
        self._since: dict[int, float] = {}
        # follower id -> highest log index proposed for it from a forwarded batch
        self._forwarded: dict[int, int] = {}

    def note_forwarded(self, follower: int, index: int) -> None:
        """The batch `follower` handed over sits at `index`: tell it about
        that index's commit without delay."""
        if index > self._forwarded.get(follower, 0):
            self._forwarded[follower] = index

    def send(self, msgs: list[Message]) -> None:
        """Send `msgs`, except commit-only appends nobody needs at once and
        those a later append in `msgs` to the same follower makes redundant."""
        held, since, forwarded = self._held, self._since, self._forwarded
        last = {m.to: i for i, m in enumerate(msgs) if m.type is _APP}
        now = -1.0
        out: list[Message] = []
        for i, m in enumerate(msgs):
            if m.type is _APP:
                if not m.entries and last[m.to] != i and _supersedes(msgs[last[m.to]], m):
                    continue  # the commit index moved twice in one round
                waiting = forwarded.get(m.to)
                if waiting is None:
                    if not m.entries:
                        held[m.to] = m
                        if m.to not in since:
                            if now < 0:
                                now = self._clock()
                            since[m.to] = now
                        continue
                elif m.commit >= waiting:
                    del forwarded[m.to]
                notice = held.get(m.to)
                if notice is not None and _supersedes(m, notice):
                    del held[m.to]
                    del since[m.to]
            out.append(m)
        if out:
            self._send(out)

    def due_at(self) -> float | None:
        """When `on_timer` should next be called (None: nothing is held)."""
        return min(self._since.values()) + self._delay if self._since else None

    def on_timer(self, now: float) -> None:
        """Send the notices held for `delay` by `now`; hold on to the others."""
        due_by = now - self._delay
        due = [to for to, t in self._since.items() if t <= due_by]
        if due:
            self._send([self._held.pop(to) for to in due])
            for to in due:
                del self._since[to]

    def flush(self) -> None:
        """Send everything held, now."""
        self._since.clear()
        if self._held:
            held, self._held = self._held, {}
            self._send(list(held.values()))

    def close(self) -> None:
        self._held.clear()
        self._since.clear()
        self._forwarded.clear()


def _supersedes(later: Message, notice: Message) -> bool:
    """Does `later`, an append to the same follower, tell it everything the
    commit-only append `notice` does? Same term, the same or a later
    previous entry (an empty append does not advance the follower's
    progress) and a commit index at least as high."""
    return later.term == notice.term and later.index >= notice.index and later.commit >= notice.commit
