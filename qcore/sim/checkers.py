"""Safety checkers, fed by the cluster as events happen.

Each observation is checked against global history the moment it is made,
so a violation is reported at the step that caused it. The properties are
those of the Raft paper's Figure 3 plus what a database client relies on:

- election safety: at most one leader per term; one vote per node and term,
  and terms never go back, also across crashes; a leader is a voter of its
  configuration (a learner, or a node that applied its removal, never leads);
- log matching: two logs with an entry of the same index and term hold the
  same entry and the same prefix (checked via prefix hash chains);
- leader completeness: a new leader's log holds every entry committed so far;
- state machine safety: no two nodes apply different entries at one index,
  and no value is applied at two indexes;
- commit quorum: a leader commits an entry only once a majority of the
  voters of its configuration (of each half, when joint) hold it on disk;
  learners and removed nodes never count;
- replication: a leader's core sends appends, snapshots, heartbeats and
  TimeoutNow only to members of its configuration (so not to a node it
  removed, once the change is in effect);
- durability: a committed entry never changes or disappears, also across
  crashes (a node's commit index never points at an entry that differs from
  the committed one; after a crash some surviving disk still holds the
  whole committed prefix);
- promises: a node never sends a message that promises what its disk does
  not hold yet (an append acknowledged, a vote granted: persist before
  send);
- acknowledged writes: a client is told its write succeeded only once it
  was applied, at the index the client is told;
- linearizable reads: a ReadIndex read returns state that includes every
  write acknowledged before the read was issued.

The checkers work on plain values (ids, indexes, terms, chain bytes), never
on the core's objects, so tests can feed them broken histories directly.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Sequence

from qcore.raft.types import Entry, Message, MessageType
from qcore.sim.disk import DiskImage
from qcore.sim.logview import LogView


# What only a leader sends, to the members it replicates to.
_REPLICATION = frozenset({MessageType.APP, MessageType.SNAP, MessageType.HEARTBEAT, MessageType.TIMEOUT_NOW})


class SafetyViolation(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(slots=True)
class PendingRead:
    node: int
    issued_at: int
    need: int  # highest acknowledged write index when the read was issued
    watched: bool = False  # the liveness phase waits for this one


@dataclass
class Checker:
    leaders: dict[int, int] = field(default_factory=dict)  # term -> leader id
    entries: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (index, term) -> chain
    committed: dict[int, bytes] = field(default_factory=dict)  # index -> chain
    commit_index: int = 0  # highest commit index reported by any node
    applied: dict[int, bytes] = field(default_factory=dict)  # index -> chain after applying
    value_index: dict[bytes, int] = field(default_factory=dict)  # applied value -> index
    acked_index: int = 0  # highest index of a write acknowledged to its client
    reads: dict[bytes, PendingRead] = field(default_factory=dict)
    reads_checked: int = 0
    watched_served: int = 0
    votes: dict[tuple[int, int], int] = field(default_factory=dict)  # (node, term) -> vote
    terms: dict[int, int] = field(default_factory=dict)  # node -> highest term it persisted

    # -- elections -----------------------------------------------------------

    def on_leader(self, node: int, term: int, log: LogView, voters: Collection[int] | None = None) -> None:
        """`node` became leader of `term` with log `log`, and `voters` (both
        halves of a joint configuration) in the configuration it campaigned
        with, if known."""
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise SafetyViolation("election safety", f"term {term} has leaders {other} and {node}")
        if voters is not None and node not in voters:
            raise SafetyViolation(
                "election safety", f"node {node} became leader of term {term} but is not a voter of {sorted(voters)}"
            )
        self._check_complete(node, term, log)

    def check_replication(self, node: int, msgs: Sequence[Message], members: Collection[int]) -> None:
        """`node`'s core hands out `msgs`; only members of its configuration
        (`members`: as of now and before the change applied last round) may
        be sent a leader's replication messages."""
        for msg in msgs:
            if msg.type in _REPLICATION and msg.to not in members:
                raise SafetyViolation(
                    "replication",
                    f"node {node} sends {msg.type.name} to {msg.to}, not a member of its configuration "
                    f"{sorted(members)}",
                )

    def check_commit_quorum(
        self, node: int, commit: int, voters: Collection[int], voters_outgoing: Collection[int],
        disks: dict[int, DiskImage],
    ) -> None:
        """Leader `node` advanced its commit index to `commit` under a
        configuration with these voters: a majority of each (non-empty)
        half must hold the committed entry on disk. Nobody else counts."""
        want = self.committed.get(commit)
        if want is None:
            return
        for half in (voters, voters_outgoing):
            if not half:
                continue
            holders = sorted(v for v in half if v in disks and self._holds(disks[v], commit, want))
            if 2 * len(holders) <= len(half):
                raise SafetyViolation(
                    "commit quorum",
                    f"leader {node} committed index {commit} with only {holders} of the voters "
                    f"{sorted(half)} holding it on disk",
                )

    def _holds(self, disk: DiskImage, index: int, want: bytes) -> bool:
        """Does `disk` durably hold entry `index` with the history `want`
        (or a snapshot past it)?"""
        snap_index = disk.snapshot.meta.index if disk.snapshot is not None else 0
        if snap_index >= index:
            return True
        pos = index - snap_index - 1
        if pos < len(disk.entries):
            e = disk.entries[pos]
            return self.entries.get((e.index, e.term)) == want
        return False

    def _check_complete(self, node: int, term: int, log: LogView) -> None:
        c = self.commit_index
        if c == 0 or c < log.base_index:
            return
        if log.last_index < c:
            raise SafetyViolation(
                "leader completeness",
                f"leader {node} of term {term} has last index {log.last_index} < commit {c}",
            )
        if log.chain_at(c) != self.committed.get(c, log.chain_at(c)):
            raise SafetyViolation(
                "leader completeness",
                f"leader {node} of term {term} holds a different entry/prefix at committed index {c}",
            )

    def on_hard_state(self, node: int, term: int, vote: int) -> None:
        """`node` persisted (or recovered) this term and vote. A term never
        goes back, even across a crash, and a node votes once per term:
        the classic symptoms of a vote or term that was not made durable."""
        if term < self.terms.get(node, 0):
            raise SafetyViolation(
                "durability", f"node {node} is at term {term} after having persisted term {self.terms[node]}"
            )
        self.terms[node] = term
        if vote:
            first = self.votes.setdefault((node, term), vote)
            if first != vote:
                raise SafetyViolation("election safety", f"node {node} voted for {first} and {vote} in term {term}")

    def check_promise(self, node: int, msg: Message, durable: DiskImage) -> None:
        """`node` sends `msg`: what it promises must be on its disk already.
        An accepted append promises the entries up to `msg.index`; a granted
        vote, the vote (pre-votes promise nothing)."""
        if msg.reject:
            return
        if msg.type == MessageType.APP_RESP and durable.last_index() < msg.index:
            raise SafetyViolation(
                "persist before send",
                f"node {node} acknowledged index {msg.index} to {msg.to} with only {durable.last_index()} on disk",
            )
        if msg.type == MessageType.VOTE_RESP:
            hs = durable.hard_state
            if (hs.term, hs.vote) != (msg.term, msg.to):
                raise SafetyViolation(
                    "persist before send",
                    f"node {node} granted its term {msg.term} vote to {msg.to} with term {hs.term} vote {hs.vote} on disk",
                )

    # -- logs ----------------------------------------------------------------

    def log_write(self, node: int, log: LogView, new: Sequence[Entry]) -> None:
        """`node` writes `new` to its log `log` (replacing the suffix from
        new[0].index): update the view and check the write."""
        if not new:
            return
        first = max(new[0].index, log.base_index + 1)
        # The highest committed index the write truncates or rewrites.
        k = min(log.last_index, self.commit_index)
        old = log.chain_at(k) if k >= first else None
        written = log.append(new)
        if old is not None and old == self.committed.get(k) and log.chain_at(k) != old:
            raise SafetyViolation(
                "committed entry lost",
                f"node {node} overwrote or truncated committed index {k} (write from {first})",
            )
        self.on_append(node, written)

    def on_append(self, node: int, written: list[tuple[int, int, bytes]]) -> None:
        entries = self.entries
        for index, term, chain in written:
            known = entries.setdefault((index, term), chain)
            if known != chain:
                raise SafetyViolation(
                    "log matching",
                    f"node {node} has entry {index}/t{term} with a prefix other nodes do not share",
                )
        # A follower may still overwrite a committed index it does not yet
        # know to be committed (its entry is then from a deposed leader);
        # on_commit and on_apply catch the case that matters.

    def on_snapshot(self, node: int, index: int, term: int, chain: bytes) -> None:
        known = self.entries.setdefault((index, term), chain)
        if known != chain:
            raise SafetyViolation("log matching", f"node {node} got a snapshot {index}/t{term} with another history")
        got = self.committed.get(index)
        if got is not None and got != chain:
            raise SafetyViolation("state machine safety", f"node {node} got a snapshot at {index} of another history")

    def on_commit(self, node: int, commit: int, log: LogView) -> None:
        """`node` reports commit index `commit` with log `log`."""
        if commit == 0:
            return
        if commit > log.last_index:
            raise SafetyViolation("commit", f"node {node} commit {commit} is past its last index {log.last_index}")
        if commit < log.base_index:
            return  # a restart from an old hard state below a snapshot: nothing to compare
        start = max(log.base_index, min(commit, self.commit_index))
        committed = self.committed
        for index in range(start, commit + 1):
            chain = log.chain_at(index)
            assert chain is not None
            known = committed.setdefault(index, chain)
            if known != chain:
                raise SafetyViolation(
                    "committed entry lost",
                    f"node {node} considers index {index} committed with an entry/prefix "
                    f"that differs from the one committed earlier",
                )
        if commit > self.commit_index:
            self.commit_index = commit

    def check_durable(self, disks: dict[int, DiskImage], what: str) -> None:
        """After a crash: the whole committed prefix must still be on some
        surviving disk (committed = on a majority of disks, and every
        configuration change keeps a majority of holders in the cluster)."""
        c = self.commit_index
        if c == 0:
            return
        want = self.committed.get(c)
        for disk in disks.values():
            snap_index = disk.snapshot.meta.index if disk.snapshot is not None else 0
            if snap_index >= c:
                return
            pos = c - snap_index - 1
            if pos < len(disk.entries):
                e = disk.entries[pos]
                if self.entries.get((e.index, e.term)) == want:
                    return
        raise SafetyViolation(
            "committed entry lost",
            f"after {what}, no disk holds committed index {c} (disks: "
            + ", ".join(f"n{i}:{d.first_index - 1}+{len(d.entries)}" for i, d in sorted(disks.items()))
            + ")",
        )

    # -- state machines ------------------------------------------------------

    def on_apply(self, node: int, index: int, chain: bytes, value: bytes | None) -> None:
        known = self.applied.setdefault(index, chain)
        if known != chain:
            raise SafetyViolation(
                "state machine safety", f"node {node} applied another entry/history at index {index}"
            )
        c = self.committed.get(index)
        if c is not None and c != chain:
            raise SafetyViolation("state machine safety", f"node {node} applied an uncommitted entry at {index}")
        if value:
            first = self.value_index.setdefault(value, index)
            if first != index:
                raise SafetyViolation(
                    "state machine safety", f"value {value!r} applied at index {first} and again at {index}"
                )

    # -- clients -------------------------------------------------------------

    def on_write_acked(self, index: int, value: bytes) -> None:
        """A client was told that its write of `value` was applied at `index`."""
        applied_at = self.value_index.get(value)
        if applied_at != index:
            raise SafetyViolation(
                "acknowledged write",
                f"write {value!r} was acknowledged at index {index} but applied at {applied_at}",
            )
        if index > self.acked_index:
            self.acked_index = index

    def on_read_issued(self, ctx: bytes, node: int, now: int, watched: bool = False) -> None:
        self.reads[ctx] = PendingRead(node, now, self.acked_index, watched)

    def on_read_served(self, ctx: bytes, node: int, read_index: int, applied: int) -> None:
        """`node` answered read `ctx` from state at `applied` (>= `read_index`)."""
        read = self.reads.pop(ctx, None)
        if read is None:
            return  # a duplicate ReadState for an already served read
        self.reads_checked += 1
        self.watched_served += read.watched
        if read.node != node:
            raise SafetyViolation("linearizable read", f"read {ctx!r} issued at {read.node} answered at {node}")
        if read_index < read.need or applied < read.need:
            raise SafetyViolation(
                "linearizable read",
                f"read {ctx!r} at node {node} got read index {read_index} (state at {applied}) "
                f"but write {read.need} was acknowledged before it was issued",
            )

    def forget_reads(self, node: int) -> None:
        """`node` crashed: its pending reads will never be answered."""
        for ctx in [c for c, r in self.reads.items() if r.node == node]:
            del self.reads[ctx]
