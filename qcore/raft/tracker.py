"""What the leader knows about each follower, and the cluster configuration.

Each peer has a `Progress` in one of three states (etcd-raft's
tracker/design.md):

    PROBE      the leader does not know where the follower's log matches its
               own; it sends one APP at a time and waits for the answer (or a
               heartbeat response) before sending another. Rejections walk
               `next` back quickly using the follower's hint.
    REPLICATE  the logs are known to match up to `match`; the leader streams
               entries optimistically (pipelining), advancing `next` as it
               sends, bounded by an `Inflights` window of unacknowledged APPs.
    SNAPSHOT   the follower needs entries the leader has compacted away; a
               snapshot is on its way and nothing else is sent until the
               runtime reports the outcome (report_snapshot) or the follower
               acknowledges an index at or past it.

    PROBE --(append accepted)--> REPLICATE --(reject / unreachable)--> PROBE
    PROBE/REPLICATE --(needs compacted entries)--> SNAPSHOT --(done)--> PROBE

`ProgressTracker` bundles the configuration (as a `ConfState`), the Progress
of every member (voters of both halves and learners), and the votes of the
current election, and answers the quorum questions over them.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from . import quorum
from .types import ConfState

__all__ = ["ProgressState", "Inflights", "Progress", "ProgressTracker"]


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The sliding window of APP messages sent but not yet acknowledged.

    Each entry is the last log index carried by one message; they are added
    in increasing order and freed from the front when an acknowledgement for
    that index (or a later one) arrives.
    """

    __slots__ = ("capacity", "_q")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._q: deque[int] = deque()

    def add(self, last_index: int) -> None:
        if self.full():
            raise RuntimeError("Inflights.add on a full window")
        if self._q and last_index <= self._q[-1]:
            raise RuntimeError("Inflights indexes must increase")
        self._q.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= `index` (acknowledged)."""
        q = self._q
        while q and q[0] <= index:
            q.popleft()

    def free_first(self) -> None:
        """Forget the oldest message (presumed lost) to make room for one more."""
        if self._q:
            self._q.popleft()

    def full(self) -> bool:
        return len(self._q) >= self.capacity

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (or of itself).

    Invariants:
      * 0 <= match < next: entries up to `match` are known to be in the
        follower's log; `next` is the first index the leader will send.
      * state == SNAPSHOT  <=> pending_snapshot > 0
      * inflights is empty unless state == REPLICATE.
    """

    match: int
    next: int
    inflights: Inflights
    is_learner: bool = False
    state: ProgressState = ProgressState.PROBE
    # Index of the snapshot in flight (SNAPSHOT state only), else 0.
    pending_snapshot: int = 0
    # Heard from since the last check-quorum round. New peers start active so
    # that adding a node does not make the leader step down at once.
    recent_active: bool = True
    # PROBE: one APP is out, wait before sending another. Cleared by any
    # answer from the follower (APP_RESP or HEARTBEAT_RESP).
    probe_sent: bool = False
    # Tick (of the leader's clock) of the last response from this peer; the
    # quorum of these gives "ticks since quorum ack".
    last_ack_tick: int = 0

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # After a snapshot, the follower has at least the snapshot's entries.
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """The follower acknowledged index `n`; False if that is old news."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an APP whose previous index was `rejected`.

        `match_hint` is the leader's best guess (from the follower's hint) of
        the last index where the logs may agree. Returns False when the
        rejection is stale (answers a message sent before some newer state).
        """
        if self.state == ProgressState.REPLICATE:
            # Stale unless it rejects something above what is known to match.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # PROBE (or SNAPSHOT): only the answer to the last probe counts.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """True when the leader should not send this peer another APP now."""
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: int | None) -> None:
        """Record that an APP ending at `last_index` (None: empty) went out."""
        if self.state == ProgressState.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True


class ProgressTracker:
    """The configuration, every member's Progress, and the current votes."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.conf = ConfState()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    # -- configuration -------------------------------------------------

    def voter_ids(self) -> set[int]:
        return set(self.conf.voters) | set(self.conf.voters_outgoing)

    def is_joint(self) -> bool:
        return bool(self.conf.voters_outgoing)

    def is_singleton(self) -> bool:
        return len(self.conf.voters) == 1 and not self.conf.voters_outgoing

    def members(self) -> set[int]:
        return self.voter_ids() | set(self.conf.learners)

    def set_conf(self, conf: ConfState, next_index: int) -> None:
        """Replace the configuration; keep the Progress of remaining members."""
        self.conf = conf
        voters = self.voter_ids()
        learners = set(conf.learners)
        old = self.progress
        self.progress = {}
        for nid in sorted(voters | learners):
            pr = old.get(nid)
            if pr is None:
                pr = Progress(match=0, next=next_index, inflights=Inflights(self.max_inflight))
            # learners_next are still voters of the outgoing half until the
            # joint configuration is left.
            pr.is_learner = nid in learners and nid not in voters
            self.progress[nid] = pr

    def reset_progress(self, next_index: int, self_id: int, self_match: int, now: int) -> None:
        """Start afresh (on a role change): nothing is known about peers."""
        for nid, pr in self.progress.items():
            pr.inflights.reset()
            pr.match = 0
            pr.next = next_index
            pr.state = ProgressState.PROBE
            pr.pending_snapshot = 0
            pr.probe_sent = False
            pr.recent_active = True
            pr.last_ack_tick = now
            if nid == self_id:
                pr.match = self_match
                pr.next = max(next_index, self_match + 1)

    # -- quorum questions -----------------------------------------------

    def committed(self) -> int:
        """Largest index acknowledged by a (joint) quorum of voters."""
        acked = {nid: pr.match for nid, pr in self.progress.items()}
        return quorum.joint_committed(self.conf.voters, self.conf.voters_outgoing, acked)

    def quorum_ack_tick(self) -> int:
        """Latest tick by which a (joint) quorum of voters had answered."""
        acked = {nid: pr.last_ack_tick for nid, pr in self.progress.items()}
        return quorum.joint_committed(self.conf.voters, self.conf.voters_outgoing, acked)

    def quorum_active(self, self_id: int) -> bool:
        """Did a quorum of voters answer since the last check?"""
        votes = {nid: (pr.recent_active or nid == self_id) for nid, pr in self.progress.items()}
        return self.vote_result_of(votes) == quorum.VoteResult.WON

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, nid: int, granted: bool) -> None:
        # The first answer counts: a duplicate or changed vote is ignored.
        self.votes.setdefault(nid, granted)

    def tally(self) -> tuple[int, int, quorum.VoteResult]:
        voters = self.voter_ids()
        granted = sum(1 for nid, v in self.votes.items() if v and nid in voters)
        rejected = sum(1 for nid, v in self.votes.items() if not v and nid in voters)
        return granted, rejected, self.vote_result_of(self.votes)

    def vote_result_of(self, votes: dict[int, bool]) -> quorum.VoteResult:
        return quorum.joint_vote_result(self.conf.voters, self.conf.voters_outgoing, votes)

    def peers(self, self_id: int) -> Iterable[int]:
        return (nid for nid in self.progress if nid != self_id)
