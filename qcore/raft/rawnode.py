"""RawNode: the whole contract between the Raft core and its runtime.

The core is sans-I/O: it owns no sockets, files, timers, clock or global
randomness. The runtime (qcore.node, or the simulator) drives it with inputs
and carries out the outputs, in one loop that owns the RawNode:

    while True:
        # 1. Input: exactly one of
        node.tick()                      # a logical clock tick (e.g. every 100 ms)
        node.step(msg)                   # a message from a peer
        node.propose(data) / node.propose_conf_change(cc) / node.read_index(ctx)
        node.transfer_leader(to) / node.report_unreachable(to) / node.report_snapshot(to, ok)
        node.report_link_down(peer)

        # 2. Output
        if node.has_ready():
            rd = node.ready()
            # 3. Persist: rd.snapshot (if any), then rd.entries (they replace
            #    any stored entries from rd.entries[0].index on), then
            #    rd.hard_state; fsync when rd.must_sync.
            # 4. Send rd.messages - only now: they may promise what step 3
            #    made durable (a vote, an appended entry).
            # 5. Apply: restore rd.snapshot into the state machine (if any),
            #    apply rd.committed_entries in order, serve each ReadState in
            #    rd.read_states once the applied index reaches its index.
            # 6. node.advance(rd)

Rules the runtime must keep:

* Persist before send (step 3 before 4); that is what makes a vote or an
  acknowledged append survive a crash.
* Call `advance(rd)` before the next `ready()`. `has_ready()` is False while
  a Ready is outstanding. Inputs may be given between `ready()` and
  `advance()`; their outputs come in the next Ready.
* Proposals and ReadIndex requests are batched: they are sent (one APP per
  follower, one heartbeat round) when `has_ready()`/`ready()` is next
  called, so give the core all the requests at hand before asking.
* fsync when `rd.must_sync`: term/vote changed, entries or a snapshot to
  persist, or the commit index passed a conf change (see docs/raft.md).
* Entries in `rd.entries` count as persisted when `advance(rd)` is called;
  `committed_entries` only ever contains entries persisted by an earlier
  Ready, so applying them in step 5 never gets ahead of the disk. The leader
  too counts itself towards a quorum only for entries it has persisted.
* Configuration changes take effect when their CONF_CHANGE entry is applied:
  the core switches configuration inside `advance(rd)` for each such entry
  in `rd.committed_entries` (as etcd-raft). The runtime only reads them, e.g.
  to learn peer addresses (`ConfState.addresses`, also in `status()`).
* A leader leaves a joint configuration automatically: once the joint entry
  is applied it appends the leave entry itself.
* A leader removed from the configuration steps down when the change is
  applied: it sends a last heartbeat round carrying the commit index, asks
  the most up-to-date remaining voter to campaign (TIMEOUT_NOW), and becomes
  a follower that never campaigns. The runtime may shut it down once a
  remaining voter has applied the change (docs/raft.md says why not sooner).
* Snapshots: `create_snapshot(index, data)` records the application's state
  at an applied index (the core fills in term and configuration); persist it,
  then `compact(index)` drops the in-memory log up to it. When a follower
  needs compacted entries the leader sends one SNAP message with the whole
  snapshot; cutting it into `RaftSnapshot` frames and reassembling them
  before `step()` is the transport's job, and it must call
  `report_snapshot(to, ok)` when the transfer ends.
* Restart: build the RawNode from what storage recovered (hard state,
  snapshot, entries after it). The configuration is the snapshot's; the
  committed entries after the snapshot are handed out again (applied index
  starts at the snapshot), and their conf changes re-applied on advance.
* `report_link_down(peer)` when a connection to `peer` closes (not when it
  merely goes quiet): a follower that loses its leader that way campaigns
  within a few ticks instead of an election timeout.
* A node with no configuration (fresh, or not yet told it is a voter) never
  campaigns, but answers votes and appends: a new node joins when the leader
  contacts it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from .config import Config
from .core import LOCAL_MESSAGES, Raft, Role
from .status import ProgressStatus, Status
from .types import (
    NONE,
    ConfChange,
    ConfState,
    ConfChangeSingle,
    ConfChangeType,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
)

__all__ = ["RawNode", "Ready", "Role", "SoftState"]

logger = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class SoftState:
    """Volatile state worth reporting, never persisted."""

    leader_id: int
    role: Role  # as Status.role


@dataclass(slots=True)
class Ready:
    soft_state: SoftState | None = None  # None: unchanged since the last Ready
    hard_state: HardState | None = None  # None: unchanged; else persist it
    entries: list[Entry] = field(default_factory=list)  # persist (may replace a stored suffix)
    snapshot: Snapshot | None = None  # received from the leader: persist, then restore
    messages: list[Message] = field(default_factory=list)  # send after persisting
    committed_entries: list[Entry] = field(default_factory=list)  # apply in order
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False  # fsync needed (term/vote changed, entries, snapshot, commit past a conf change)


class RawNode:
    def __init__(
        self,
        cfg: Config,
        rng: random.Random | None = None,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        self._raft = Raft(cfg, rng if rng is not None else random.Random(cfg.id), hard_state, snapshot, entries)
        hs = hard_state or HardState()
        self._prev_hard = HardState(hs.term, hs.vote, hs.commit)
        self._prev_soft = self._soft_state()
        self._outstanding: Ready | None = None

    @property
    def id(self) -> int:
        return self._raft.id

    # -- inputs ------------------------------------------------------------

    def bootstrap(self, addresses: dict[int, str], initial_data: list[bytes]) -> None:
        """Make this empty node the seed of a new cluster (SPEC 2.1 Init).

        Writes term-1 entries: index 1 is the conf change making every node
        in `addresses` a voter (committed at once), then one NORMAL entry per
        `initial_data` item (committed by the first leader, with its own
        entry). The other nodes stay empty; they join when this node, having
        elected itself, contacts them.
        """
        if self.id not in addresses:
            raise ValueError(f"bootstrap: this node ({self.id}) must be one of the initial nodes")
        cc = ConfChange(
            changes=tuple(ConfChangeSingle(ConfChangeType.ADD_NODE, n) for n in sorted(addresses)),
            addresses=dict(addresses),
        )
        ents = [Entry(term=1, index=1, type=EntryType.CONF_CHANGE, data=cc.encode())]
        ents += [Entry(term=1, index=2 + i, type=EntryType.NORMAL, data=d) for i, d in enumerate(initial_data)]
        self._raft.bootstrap(ents)

    def tick(self) -> None:
        self._raft.tick()

    def step(self, m: Message) -> None:
        """Feed a message received from a peer."""
        if m.type in LOCAL_MESSAGES:
            logger.warning("node %d: dropping local message type %s received from peer %d", self.id, m.type.name, m.frm)
            return
        if m.to not in (NONE, self.id):
            logger.warning("node %d: dropping %s addressed to %d", self.id, m.type.name, m.to)
            return
        self._raft.step(m)

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append `data` as a NORMAL entry; returns its (term, index).

        Raises ProposalDropped (with the known leader) if this node cannot
        take it. The entry may still be lost (leader change): the caller
        learns the outcome by seeing (term, index) applied, or a different
        entry at that index.
        """
        return self._raft.propose(EntryType.NORMAL, data)

    def propose_conf_change(self, cc: ConfChange) -> tuple[int, int]:
        """Propose a membership change; raises ProposalDropped or
        ConfChangeRejected (invalid, or another change still pending)."""
        return self._raft.propose(EntryType.CONF_CHANGE, cc.encode())

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read index; a ReadState carrying `ctx`
        comes later in Ready.read_states, or never (the caller times out)."""
        self._raft.step(Message(MessageType.READ_INDEX, context=ctx))

    def transfer_leader(self, to: int) -> None:
        self._raft.step(Message(MessageType.TRANSFER_LEADER, frm=to))

    def campaign(self) -> None:
        """Start an election now (with pre-vote if configured)."""
        self._raft.step(Message(MessageType.HUP, frm=self.id))

    def report_unreachable(self, to: int) -> None:
        self._raft.step(Message(MessageType.UNREACHABLE, frm=to))

    def report_link_down(self, peer: int) -> None:
        """The connection to `peer` closed (its process may have died). If
        `peer` is this follower's leader, it campaigns soon unless the leader
        speaks again first (`Config.link_down_tick`)."""
        self._raft.step(Message(MessageType.LINK_DOWN, frm=peer))

    def report_snapshot(self, to: int, ok: bool) -> None:
        self._raft.step(Message(MessageType.SNAP_STATUS, frm=to, reject=not ok))

    # -- outputs -------------------------------------------------------------

    def _soft_state(self) -> SoftState:
        return SoftState(leader_id=self._raft.lead, role=self._role_name())

    def _role_name(self) -> Role:
        r = self._raft
        if r.role == Role.FOLLOWER and r.is_learner():
            return Role.LEARNER
        return r.role

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        r = self._raft
        r.flush()
        log = r.log
        return bool(
            r.msgs
            or r.read_states
            or log.stable < log.last_index()
            or log.pending_snapshot is not None
            or log.has_next_committed_entries()
            or r.hard_state() != self._prev_hard
            or self._soft_state() != self._prev_soft
        )

    def ready(self) -> Ready:
        if self._outstanding is not None:
            raise RuntimeError("ready() called again before advance()")
        r = self._raft
        r.flush()
        rd = Ready()
        soft = self._soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
        hs = r.hard_state()
        if hs != self._prev_hard:
            rd.hard_state = hs
        rd.entries = r.log.unstable_entries()
        rd.snapshot = r.log.pending_snapshot
        rd.messages, r.msgs = r.msgs, []
        rd.committed_entries = r.log.next_committed_entries(r.cfg.max_committed_size_per_ready)
        rd.read_states, r.read_states = r.read_states, []
        rd.must_sync = (
            bool(rd.entries)
            or rd.snapshot is not None
            or (hs.term, hs.vote) != (self._prev_hard.term, self._prev_hard.vote)
            or self._commit_crosses_conf_change(hs.commit)
        )
        self._outstanding = rd
        return rd

    def _commit_crosses_conf_change(self, commit: int) -> bool:
        """Did the commit index pass a CONF_CHANGE entry since the last Ready?

        Then the new commit index is made durable before anything is sent:
        otherwise a voter that crashes may forget that a removal committed
        while the removed node, told of it, has already been shut down; the
        voter, still counting the removed node, could never win an election
        (e.g. {2,4} -> {2}: node 2 alone must know). A commit index alone is
        otherwise safe to lose: it is learned again from the leader.
        """
        prev = self._prev_hard.commit
        if commit <= prev:
            return False
        ents = self._raft.log.slice(prev + 1, commit + 1)
        return ents is None or any(e.type == EntryType.CONF_CHANGE for e in ents)

    def advance(self, rd: Ready) -> None:
        """The runtime has persisted, sent and applied `rd`."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() must be given the Ready last returned by ready()")
        self._outstanding = None
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        self._raft.on_persisted(rd.entries, rd.snapshot)
        self._raft.on_applied(rd.committed_entries)

    # -- snapshots -----------------------------------------------------------

    def create_snapshot(self, index: int, data: bytes) -> Snapshot:
        """Record the state machine's `data` as of applied `index`; the core
        fills in the term and the configuration at that index."""
        return self._raft.create_snapshot(index, data)

    def compact(self, index: int) -> None:
        """Drop in-memory entries <= index (once a snapshot at or past
        `index` is durable)."""
        self._raft.compact(index)

    # -- cheap observers -----------------------------------------------------
    # The runtime asks these on every request; status() builds a full copy.

    @property
    def leader_id(self) -> int:
        return self._raft.lead

    @property
    def is_leader(self) -> bool:
        return self._raft.role == Role.LEADER

    @property
    def term(self) -> int:
        return self._raft.term

    @property
    def conf_state(self) -> ConfState:
        """The live configuration: read it, never mutate it."""
        return self._raft.trk.conf

    @property
    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot the core knows (taken here or received); read only."""
        return self._raft.snapshot

    def entries_after(self, index: int) -> list[Entry]:
        """The log's entries after `index` (read only); [] if none, or compacted past it."""
        return self._raft.log.entries_from(index + 1) or []

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`; None if compacted or not there."""
        return self._raft.log.term(index)

    # -- status --------------------------------------------------------------

    def status(self) -> Status:
        r = self._raft
        log = r.log
        snap = r.snapshot
        conf = r.trk.conf
        conf_index, conf_term, _ = r.conf_history[-1] if r.conf_history else (0, 0, conf)
        st = Status(
            id=r.id,
            role=self._role_name(),
            term=r.term,
            vote=r.vote,
            leader_id=r.lead,
            last_log_index=log.last_index(),
            last_log_term=log.last_term(),
            commit=log.committed,
            applied=log.applied,
            snapshot_index=snap.meta.index if snap else 0,
            snapshot_term=snap.meta.term if snap else 0,
            first_index=log.first_index(),
            conf_state=ConfState(
                voters=conf.voters,
                voters_outgoing=conf.voters_outgoing,
                learners=conf.learners,
                learners_next=conf.learners_next,
                auto_leave=conf.auto_leave,
                addresses=dict(conf.addresses),
            ),
            conf_index=conf_index,
            conf_term=conf_term,
            lead_transferee=r.lead_transferee,
            leader_commit=r.leader_commit,
        )
        if r.role == Role.LEADER:
            st.progress = {
                nid: ProgressStatus(
                    match=pr.match,
                    next=pr.next,
                    state=pr.state.value,
                    is_learner=pr.is_learner,
                    recent_active=pr.recent_active,
                    inflight=pr.inflights.count(),
                )
                for nid, pr in sorted(r.trk.progress.items())
            }
            st.ticks_since_quorum_ack = r.ticks_since_quorum_ack()
        return st

