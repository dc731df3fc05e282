"""The node's runtime core, sans-I/O: one Raft replica and what it owes its clients.

A `Replica` owns the `RawNode` and decides, for every Ready, what to send,
persist, apply and answer, and in what order; it batches client writes
into log entries (group commit), hands a follower's writes to the leader,
shares ReadIndex rounds between reads, holds back a leader's commit-only
appends and schedules the node's own snapshots. It touches no socket, file,
clock or event loop: storage, the network, the application, the clock and
the snapshot builder are handed in, and requests are settled through
`Waiter`s. The asyncio driver (qcore.node.driver) and the simulator
(qcore.sim.node) run this same code, each with its own I/O:

    while (rd := replica.next_ready()) is not None:   # inputs drained, then a Ready
        replica.before_persist(rd)    # what may go ahead of the local write
        replica.save(rd)              # storage.save: the write (and fsync)
        replica.after_persist(rd)     # what had to wait for it; advance
    snap = replica.end_round()        # a snapshot built meanwhile, to save
    if snap is not None:
        storage.save_snapshot(snap); replica.snapshot_saved(snap)

Inputs (`step`, `tick`, proposals, reads, ...) only queue; the runtime
starts a round after giving them. `order()` is the ordering policy, kept
small and on its own so that the simulator's planted-bug tests can break it.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from qcore.node.commit_notices import CommitNotices
from qcore.node.entries import HELD_BY_LOG, LEVEL_BEFORE_LEVELS, proposal_level
from qcore.node.errors import NO_LEADER_TEXT, LeaderChanged, NotLeader, OutcomeUnknown, RequestFailed
from qcore.node.own_snapshots import Builder, MakeBuilder, OwnSnapshots
from qcore.node.reads import ReadBatcher
from qcore.node.stats import NodeStats
from qcore.node.waiting import Deadlines, Waiter
from qcore.protocol.errors import Kind
from qcore.protocol.raft_codec import BatchRefused, ForwardBatch, PeerMessage
from qcore.raft import ConfChangeRejected, ProposalDropped, RawNode, Ready, SoftState, Status
from qcore.raft.types import ConfChange, ConfState, Entry, EntryType, HardState, Message, Snapshot
from qcore.storage import Storage

log = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 512 * 1024
_NOT_TAKEN = "the leader did not take the write (it changed, or is handing over); it was not applied"
_LOST = "leadership changed before the write committed; it was not applied"

Send = Callable[[Sequence[PeerMessage]], None]


class Application(Protocol):
    """The replicated state machine and its entry format, as the replica sees them."""

    #: The highest semantics level (qcore.node.entries) it writes and applies.
    entry_level: int
    #: The highest level of any entry it applied (its snapshots carry it): entries are not
    #: proposed below it (entries.proposal_level).
    applied_level: int

    def encode_batch(self, commands: list[list[Any]], level: int) -> tuple[bytes, Any]:
        """One entry's payload for `commands` ([origin, seq, request] each) at semantics
        `level`, and the decoded batch, handed back to `apply` for that entry."""
        ...

    def lowered(self, data: bytes, level: int) -> bytes:
        """A follower's batch `data` (one it can apply) at `level` at most: the same
        commands, applied by that level's rules."""
        ...

    def cannot_apply(self, data: bytes) -> str | None:
        """Why this node could not apply an entry of payload `data` (None: it could). A leader
        does not append a follower's batch it could not apply (a newer build's, mid-upgrade)."""
        ...

    def level_of(self, data: bytes) -> int:
        """The semantics level of a NORMAL entry's payload (1 for one that does not decode)."""
        ...

    def apply(self, entry: Entry, origin: str, decoded: dict[int, Any], own: Any) -> list[tuple[int, Any]]:
        """Apply a committed entry (any type); return (seq, response) for the
        requests of `origin` in it. `decoded` holds requests this replica
        decoded already (by seq; taken out when used), `own` the batch
        `encode_batch` returned if this replica proposed the entry."""
        ...

    def restore(self, data: bytes, index: int) -> None:
        """Replace the state with a snapshot's, taken at `index`."""
        ...

    def snapshot_builder(self, copy: bool = True) -> Builder:
        """A function that serialises the state as it is now: with `copy`,
        safe to run on another thread while the replica goes on applying
        (so it holds a copy of the state, or of what it needs of it);
        without, it reads the live state (for a process forked now)."""
        ...

    def size(self) -> int:
        """How many items (entities) the state holds: a small state's
        snapshots are cheap, so it takes them after less log."""
        ...


@dataclass(slots=True)
class ReplicaOptions:
    id: int
    timeout_ticks: int  # a request not settled within this many ticks fails: outcome unknown
    timeout_s: float  # the same, as said in the error
    read_retry_ticks: int  # a ReadIndex round unanswered this long is asked again
    no_leader_ticks: int = 0  # a read this old fails (no_leader) if no leader is known then (0: only at the deadline)
    max_batch_commands: int = 1024  # commands per log entry (group commit)
    snapshot_threshold: int = 20_000  # applied entries between own snapshots
    snapshot_keep: int = 2_000  # entries kept in memory behind a snapshot, for slow followers
    snapshot_threshold_bytes: int = 64 << 20  # ... or applied log bytes between them (fewer for a small state)
    snapshot_keep_bytes: int = 16 << 20  # ... and at most this many bytes of them kept
    notice_delay: float = 0.002  # how long a leader may hold a commit-only append (clock units)


@dataclass(frozen=True, slots=True)
class Order:
    """Where one Ready's messages and committed entries go relative to the
    local write: `send_early` before it, `send_first` before the apply too;
    `apply_first` applies before the write."""

    send_early: bool
    send_first: bool
    apply_first: bool


def order(rd: Ready, leader: bool, durable_term_vote: tuple[int, int], clients_waiting: bool) -> Order:
    """The ordering policy of one Ready.

    - A leader may replicate entries while it writes them to its own disk
      (Raft thesis 10.2.1): the core counts it towards a commit only once
      its write is done, and none of its messages promise anything about
      its disk, unless this Ready changes its term or vote, which must be
      durable before anyone hears of it. Everyone else sends after the write:
      a vote or an append response promises what the write makes durable.
    - Messages carrying entries go out before the apply (the followers'
      disks are the commit's critical path); those that only carry the
      commit index after it, once the clients of the committed entries are
      answered.
    - Committed entries are durable on a quorum already, so they may be
      applied (and their clients answered) before this Ready's own write, as
      etcd does; not when the Ready installs a snapshot, and a follower does
      so only when its own clients wait for them (otherwise its
      acknowledgement, which a write on the leader waits for, goes first).
    """
    restoring = rd.snapshot is not None and not rd.snapshot.is_empty()
    hs = rd.hard_state
    early = leader and rd.snapshot is None and (hs is None or (hs.term, hs.vote) == durable_term_vote)
    first = early and bool(rd.messages) and (not rd.committed_entries or any(m.entries for m in rd.messages))
    apply_first = not restoring and (not rd.must_sync or leader or clients_waiting)
    return Order(early, first, apply_first)


@dataclass(slots=True)
class _Proposal:
    term: int
    seqs: list[int]
    data: bytes  # the entry's payload, and the batch it was encoded from:
    batch: Any  # applying our own entry need not parse it again


@dataclass(slots=True)
class _Forwarded:
    """A batch of writes this follower handed to the leader of `term`."""

    term: int
    batch: int
    seqs: list[int]


@dataclass(frozen=True, slots=True)
class _LinkDown:
    """The transport's report that a connection to `peer` closed."""

    peer: int


@dataclass(slots=True)
class _Inputs:
    """What arrived since the last round; drained at the top of the next."""

    inbox: list[PeerMessage | _LinkDown] = field(default_factory=list)
    local: list[Callable[[], None]] = field(default_factory=list)
    ticks: int = 0
    commands: list[tuple[Any, Any, Waiter]] = field(default_factory=list)
    conf_changes: list[tuple[ConfChange, Waiter]] = field(default_factory=list)
    reads: list[Waiter] = field(default_factory=list)


class Replica:
    def __init__(
        self,
        opts: ReplicaOptions,
        raw: RawNode,
        storage: Storage,
        app: Application,
        send: Send,
        *,
        origin: str,
        clock: Callable[[], float],
        start_build: Callable[[int, MakeBuilder], None],
        reachable: Callable[[int], bool] = lambda peer: True,
        declared_level: Callable[[int], int | None] = lambda peer: None,
        applied: int = 0,
        snapshot_index: int = 0,
        persisted_index: int = 0,
        durable: HardState | None = None,
        stats: NodeStats | None = None,
    ) -> None:
        """`origin` names this process in the entries it proposes (unique
        per boot); `clock` is read for held commit notices (in the units of
        `opts.notice_delay`); `start_build` runs a snapshot builder away
        from the round (see own_snapshots); `reachable(peer)` says whether a
        message sent to `peer` now is likely to arrive; `declared_level(peer)`
        the semantics level the peer's Raft link declared (None: none yet); the
        rest is what storage recovered; `stats` is bumped for /metrics."""
        self.opts = opts
        self.raw = raw
        self._storage = storage
        self._app = app
        self._send = send
        self._reachable = reachable
        self._declared_level = declared_level
        # The semantics level this replica proposes at (entries.proposal_level), as last worked
        # out; 0 until then (no leader known yet since the start: it proposes nothing).
        self.entry_level = 0
        self._level_why: tuple[int, int | None, int | None] = (0, None, None)  # (level, held by, its level) logged
        self._log_level = LEVEL_BEFORE_LEVELS  # as leader: the highest level of the entries it led with unapplied
        self.origin = origin
        self.applied = applied
        self.applied_bytes = 0  # entry payload bytes applied by this process (own snapshots' byte bound)
        self.snapshot_index = snapshot_index
        self.persisted_index = persisted_index
        self.tick_count = 0
        hs = durable or HardState()
        self._durable_term_vote = (hs.term, hs.vote)  # as last written to storage
        self._in = _Inputs()
        self._order = Order(False, False, False)
        self.stats = stats if stats is not None else NodeStats()
        self._notices = CommitNotices(send, opts.notice_delay, clock)
        self._snapshots = OwnSnapshots(opts, raw, start_build, self.stats)
        self._reads = ReadBatcher(raw.read_index, opts.read_retry_ticks, prefix=origin.encode())
        self._deadlines = Deadlines(opts.timeout_ticks, opts.timeout_s)
        self._seq = itertools.count(1)
        self._waiters: dict[int, Waiter] = {}  # seq -> a write's waiter
        self._proposed: dict[int, _Proposal] = {}  # index -> what this leader proposed there
        self._refused: set[tuple[int, str]] = set()  # (follower, why) of batches this leader could not apply
        self._forwarded: deque[_Forwarded] = deque()  # handed to the leader, oldest first (terms never decrease)
        self._batch_ids = itertools.count(1)
        self._conf_proposed: dict[int, tuple[int, Waiter]] = {}  # index -> (term, waiter)
        self._local_cmds: dict[int, Any] = {}  # seq -> decoded command, so the proposer decodes once
        self._last_leader = 0
        # (tick, read waiter): at that tick a read still waiting fails if no leader is known (then
        # a ReadIndex round cannot complete), else it is looked at again no_leader_ticks later.
        self._leader_checks: deque[tuple[int, Waiter]] = deque()
        # Called once a Ready's committed entries are applied: the node
        # flushes the replies their waiters queued.
        self.after_apply: Callable[[], None] = lambda: None
        # Called with every change of role or leader, once it is durable.
        self.on_soft_state: Callable[[SoftState], None] = lambda ss: None

    # ------------------------------------------------------------ observers
    def status(self) -> Status:
        return self.raw.status()

    def is_leader(self) -> bool:
        return self.raw.is_leader

    def leader_id(self) -> int:
        return self.raw.leader_id

    def conf_state(self) -> ConfState:
        return self.raw.conf_state

    def initialised(self) -> bool:
        cs = self.raw.conf_state
        return bool(cs.voters or cs.learners or cs.voters_outgoing) or self.persisted_index > 0

    def removed(self) -> bool:
        """Was this node part of the cluster and has since been removed?"""
        members = self.raw.conf_state.members()
        return bool(members) and self.opts.id not in members

    def address_of(self, node_id: int) -> str | None:
        return self.raw.conf_state.addresses.get(node_id)

    def snapshots_idle(self) -> bool:
        """Neither building a snapshot nor holding a built one."""
        return self._snapshots.idle()

    def pending_writes(self) -> int:
        """Writes taken and not answered yet."""
        return sum(1 for w in self._waiters.values() if not w.done())

    def waiting(self) -> list[Waiter]:
        """Every waiter not yet settled (for shutdown)."""
        return [
            *self._waiters.values(),
            *(w for _, _, w in self._in.commands),
            *(w for _, w in self._in.conf_changes),
            *self._in.reads,
            *(w for _, w in self._conf_proposed.values()),
            *self._reads.pending(),
        ]

    # --------------------------------------------------------------- inputs
    def step(self, msg: PeerMessage) -> None:
        self._in.inbox.append(msg)

    def tick(self) -> None:
        self._in.ticks += 1

    def report_unreachable(self, to: int) -> None:
        self._in.local.append(lambda: self.raw.report_unreachable(to))

    def report_snapshot(self, to: int, ok: bool) -> None:
        self._in.local.append(lambda: self.raw.report_snapshot(to, ok))

    def report_link_down(self, peer: int) -> None:
        """A connection to `peer` closed (see RawNode.report_link_down). It
        queues with the peer's messages, in order: a message that arrived
        before the link closed must not cancel the early campaign it arms."""
        self._in.inbox.append(_LinkDown(peer))

    def transfer_leader(self, to: int) -> None:
        self._in.local.append(lambda: self.raw.transfer_leader(to))

    def campaign(self) -> None:
        self._in.local.append(self.raw.campaign)

    def campaign_if_sole_voter(self) -> None:
        """A cluster of one need not wait an election timeout to elect its
        only voter (at Init, and on every restart). On a restart without a snapshot the
        configuration is known only once the recovered committed entries are applied
        (the first Ready): until then this waits, one round at a time."""

        def do() -> None:
            cs = self.raw.conf_state
            if not cs.voters and self.applied < self.raw.status().commit:
                self._in.local.append(do)  # the configuration is in entries not applied yet
                return
            if tuple(cs.voters) == (self.opts.id,) and not cs.voters_outgoing and not self.raw.is_leader:
                self.raw.campaign()

        self._in.local.append(do)

    def bootstrap(self, addresses: dict[int, str], initial: list[bytes], waiter: Waiter) -> None:
        """Init: the initial configuration and entries (settles `waiter` once
        they are in the core; the runtime waits for `persisted_index`)."""

        def do() -> None:
            if waiter.done():  # its caller gave up (Ctrl-C at --init): nothing is written
                return
            if self.initialised():
                waiter.set_exception(RequestFailed("already initialised", Kind.INVALID))
                return
            try:
                self.raw.bootstrap(addresses, initial)
            except (ValueError, RuntimeError) as exc:  # the core refuses: report, don't stop
                waiter.set_exception(RequestFailed(f"cannot initialise: {exc}", Kind.INVALID))
                return
            log.info("bootstrapped cluster with members %s", addresses)
            waiter.set_result(None)

        self._in.local.append(do)

    def propose_command(self, command_json: Any, command: Any, waiter: Waiter) -> None:
        """A write: `waiter` gets the command's response once this replica
        applies it, or fails (NotLeader, RequestFailed, OutcomeUnknown;
        LeaderChanged, a RequestFailed, when leadership moved under it).

        On a follower the write is handed to the leader in a batch and
        answered when this replica applies it; NotLeader if no leader is
        known or reachable. `command` is the decoded `command_json`, if the
        caller has it: the proposer then applies it without decoding again.
        """
        self._in.commands.append((command_json, command, waiter))
        self._deadlines.add(waiter, "the write was proposed but not applied in time; outcome unknown", self.tick_count)

    def propose_conf_change(self, cc: ConfChange, waiter: Waiter) -> None:
        """`waiter` gets (term, index) once the change is applied (not just committed)."""
        self._in.conf_changes.append((cc, waiter))
        self._deadlines.add(
            waiter, "the membership change was proposed but not applied in time; outcome unknown", self.tick_count
        )

    def read_barrier(self, waiter: Waiter) -> None:
        """`waiter` gets the read index once the local state is at least as
        new as the cluster's commit index at the time of the call (ReadIndex)."""
        self._in.reads.append(waiter)
        self._deadlines.add(waiter, "could not confirm a linearizable read (no leader?)", self.tick_count)
        if self.opts.no_leader_ticks:
            self._leader_checks.append((self.tick_count + self.opts.no_leader_ticks, waiter))

    def request_snapshot(self, min_index: int, waiter: Waiter) -> None:
        """`waiter` gets a snapshot at `min_index` or later (for a backup)."""
        self._snapshots.request(min_index, waiter)

    def snapshot_built(self, index: int, data: bytes | None) -> None:
        """The builder started at `index` finished (`data` None: it failed)."""
        self._snapshots.built(index, data)

    # --------------------------------------------------------------- timers
    def timer_due_at(self) -> float | None:
        """When `on_timer` should next run (clock units), if at all."""
        return self._notices.due_at()

    def on_timer(self, now: float) -> None:
        self._notices.on_timer(now)

    # ------------------------------------------------------------ the round
    def next_ready(self) -> Ready | None:
        """Take in every queued input, then the next Ready, if there is one."""
        self._drain()
        raw = self.raw
        if not raw.has_ready():
            return None
        rd = raw.ready()
        self._order = order(rd, raw.is_leader, self._durable_term_vote, bool(self._waiters))
        return rd

    def before_persist(self, rd: Ready) -> bool:
        """Send and apply what may go ahead of the local write. True when
        replies were queued that should leave before the runtime blocks on
        the write (a follower answering its own clients)."""
        o = self._order
        if o.send_first:
            self._notices.send(rd.messages)
        queued_replies = False
        if o.apply_first:
            self._apply(rd)
            queued_replies = bool(rd.committed_entries) and rd.must_sync and not self.raw.is_leader
        if o.send_early and not o.send_first and rd.messages:
            self._notices.send(rd.messages)
        return queued_replies

    def save(self, rd: Ready) -> None:
        """Persist the Ready: snapshot, entries, hard state; fsync if must_sync.
        Runs nothing else, so the runtime may call it on another thread."""
        snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        if rd.hard_state is None and not rd.entries and snap is None:
            return
        self._storage.save(rd.hard_state, rd.entries, snap, rd.must_sync)

    def after_persist(self, rd: Ready) -> None:
        """The Ready is durable: send and apply the rest, then advance."""
        if rd.hard_state is not None:
            self._durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)
        if rd.entries:
            self.persisted_index = rd.entries[-1].index
        elif rd.snapshot is not None and not rd.snapshot.is_empty():
            self.persisted_index = max(self.persisted_index, rd.snapshot.meta.index)
        o = self._order
        if not o.send_early and rd.messages:
            self._notices.send(rd.messages)
        if not o.apply_first:
            self._apply(rd)
        self.raw.advance(rd)
        self._resolve_conf_waiters()
        self._reads.serve(self.applied)
        self._deadlines.forget_settled()
        checks = self._leader_checks
        while checks and checks[0][1].done():  # served reads, in about the order they came
            checks.popleft()
        if rd.soft_state is not None:
            self._observe(rd.soft_state)

    def end_round(self) -> Snapshot | None:
        """After the last Ready of a round: a snapshot of our own to save
        now (then `snapshot_saved`), or None; may start building one."""
        return self._snapshots.step(self.applied, self.snapshot_index, self._app.snapshot_builder,
                                    self.applied_bytes, self._app.size())

    def snapshot_saved(self, snap: Snapshot) -> None:
        self.snapshot_index = self._snapshots.saved(snap)

    def close(self, exc: Exception) -> None:
        """Fail everything still waiting with `exc`; send nothing more."""
        self._notices.close()
        self._snapshots.fail_wanted(str(exc))
        for waiter in self.waiting():
            if not waiter.done():
                waiter.set_exception(exc)

    # --------------------------------------------------------------- drain
    def _drain(self) -> None:
        raw = self.raw
        inputs = self._in
        if inputs.ticks:
            n, inputs.ticks = inputs.ticks, 0
            for _ in range(n):
                raw.tick()
                self.tick_count += 1
            self._reads.retry_stale(self.tick_count)
            self._check_reads_have_leader()
            self._deadlines.expire(self.tick_count)
            self._proposal_level()  # members' links come and go: keep /metrics and the log current
        if inputs.local:
            local, inputs.local = inputs.local, []
            for fn in local:
                fn()
        if inputs.inbox:
            inbox, inputs.inbox = inputs.inbox, []
            for msg in inbox:
                if type(msg) is Message:
                    raw.step(msg)
                elif type(msg) is ForwardBatch:
                    self._on_forward(msg)
                elif type(msg) is BatchRefused:
                    self._on_refused(msg)
                else:
                    assert type(msg) is _LinkDown
                    raw.report_link_down(msg.peer)
        if inputs.commands:
            self._propose_commands()
        if inputs.conf_changes:
            self._propose_conf_changes()
        if inputs.reads:
            waiters, inputs.reads = inputs.reads, []
            self._reads.issue(waiters, self.tick_count)

    def _check_reads_have_leader(self) -> None:
        """A read that has waited `no_leader_ticks` (an election would have ended) while no
        leader is known fails as not applied, so its client can go elsewhere instead of waiting
        out the request deadline (also one asked of a leader that died since); with a leader
        known it waits on, looked at again as often."""
        checks, now, limit = self._leader_checks, self.tick_count, self.opts.no_leader_ticks
        while checks and checks[0][0] <= now:
            _, waiter = checks.popleft()
            if waiter.done():
                continue
            if self._last_leader:
                checks.append((now + limit, waiter))
            else:
                waiter.set_exception(RequestFailed(NO_LEADER_TEXT, Kind.NO_LEADER))

    def _observe(self, ss: SoftState) -> None:
        raw = self.raw
        if ss.leader_id and ss.leader_id != self._last_leader:
            self.stats.leader_changes += 1
            self._reads.reissue(self.tick_count)
        self._last_leader = ss.leader_id
        log.info("role=%s term=%d leader=%d commit=%d applied=%d",
                 ss.role, raw.term, ss.leader_id, raw.status().commit, self.applied)
        self._log_level = self._unapplied_level() if raw.is_leader else LEVEL_BEFORE_LEVELS
        self._proposal_level()
        if not raw.is_leader and self._proposed:
            # Our uncommitted proposals may still commit under the new
            # leader, or be overwritten; the apply path tells which.
            log.info("stepped down with %d proposals in flight", len(self._proposed))
        self.on_soft_state(ss)

    # ------------------------------------------------------------- writes
    def _unapplied_level(self) -> int:
        """The highest level of the log's entries not applied yet. A new leader commits every
        one of them, so its own entries, which follow them, must not go below it (as below
        an applied level: entries.proposal_level's floor); scanned once per leadership, from
        the newest entry back, until one of this build's level (none can count for more)."""
        found, own = LEVEL_BEFORE_LEVELS, self._app.entry_level
        for e in reversed(self.raw.entries_after(self.applied)):
            if e.type == EntryType.NORMAL and e.data:
                found = max(found, self._app.level_of(e.data))
                if found >= own:
                    break
        return found

    def _proposal_level(self) -> int:
        """The semantics level this replica's entries take now (entries.proposal_level: the
        lowest its members can apply), kept in `entry_level`; a change of it, or of the node
        holding it down, is logged once. With no leader known, nothing is proposed: the last
        level stands."""
        raw, me = self.raw, self.opts.id
        got = proposal_level(self._app.entry_level, me, raw.leader_id, raw.conf_state.members(),
                             self._declared_level, max(self._app.applied_level, self._log_level))
        if got is None:
            return self.entry_level
        level, by = got
        declared = None if by is None or by == HELD_BY_LOG else self._declared_level(by)
        if (level, by, declared) != self._level_why:
            self._level_why = (level, by, declared)
            if by is None:
                why = "this build's level"
            elif by == HELD_BY_LOG:
                why = (f"entries of level {level} are applied already" if self._app.applied_level >= level
                       else f"the log holds entries of level {level} not applied yet")
            else:
                said = f"declared level {declared}" if declared is not None else "has declared no level yet"
                why = f"node {by}{', the leader,' if by == raw.leader_id else ''} {said}"
            log.info("proposing log entries at semantics level %d (%s)", level, why)
            self.entry_level = level
        return level

    def _propose_commands(self) -> None:
        inputs = self._in
        queue, inputs.commands = inputs.commands, []
        raw = self.raw
        submit: Callable[[bytes, Any, list[tuple[int, Waiter]]], None]
        if raw.is_leader:
            submit = self._propose_batch
        else:
            leader = raw.leader_id
            if not leader or leader == self.opts.id or not self._reachable(leader):
                err = self._not_leader()
                for _, _, waiter in queue:
                    if not waiter.done():
                        waiter.set_exception(err)
                return
            submit = self._forward_batch
        level = self._proposal_level()
        batch: list[list[Any]] = []
        waiters: list[tuple[int, Waiter]] = []
        for command_json, command, waiter in queue:
            if waiter.done():  # caller gave up already
                continue
            seq = next(self._seq)
            batch.append([self.origin, seq, command_json])
            waiters.append((seq, waiter))
            if command is not None:
                self._local_cmds[seq] = command
            if len(batch) >= self.opts.max_batch_commands:
                self._split(submit, batch, waiters, level)
                batch, waiters = [], []
        if batch:
            self._split(submit, batch, waiters, level)

    def _split(
        self,
        submit: Callable[[bytes, Any, list[tuple[int, Waiter]]], None],
        commands: list[list[Any]],
        waiters: list[tuple[int, Waiter]],
        level: int,
    ) -> None:
        """Encode a batch as one entry at `level`, halving it while the entry is too large."""
        data, batch = self._app.encode_batch(commands, level)
        if len(data) > _MAX_BATCH_BYTES and len(commands) > 1:
            half = len(commands) // 2
            self._split(submit, commands[:half], waiters[:half], level)
            self._split(submit, commands[half:], waiters[half:], level)
            return
        submit(data, batch, waiters)

    def _propose_batch(self, data: bytes, batch: Any, waiters: list[tuple[int, Waiter]]) -> None:
        try:
            term, index = self.raw.propose(data)
        except ProposalDropped:
            err = self._not_leader()
            for seq, waiter in waiters:
                self._local_cmds.pop(seq, None)
                if not waiter.done():
                    waiter.set_exception(err)
            return
        for seq, waiter in waiters:
            self._waiters[seq] = waiter
        self._proposed[index] = _Proposal(term, [seq for seq, _ in waiters], data, batch)
        self.stats.proposals += 1
        self.stats.proposed_commands += len(waiters)

    # ---------------------------------------------------- forwarded writes
    # A follower hands a batch to the leader naming the term it believes
    # the leader has. The leader appends it only if it is leader in exactly
    # that term, and otherwise refuses it. So a batch can only ever sit in
    # the log at that term, and once this replica applies any entry of a
    # later term, every entry of the batch's term that will ever commit has
    # been applied (log matching): a batch still unanswered then was not
    # applied and never will be. The follower answers its clients from its
    # own apply: no reply travels back from the leader.

    def _forward_batch(self, data: bytes, batch: Any, waiters: list[tuple[int, Waiter]]) -> None:
        raw = self.raw
        batch_id, term = next(self._batch_ids), raw.term
        self._send([ForwardBatch(raw.leader_id, self.opts.id, term, batch_id, data)])
        seqs = []
        for seq, waiter in waiters:
            self._waiters[seq] = waiter
            seqs.append(seq)
        self._forwarded.append(_Forwarded(term, batch_id, seqs))

    def _on_forward(self, msg: ForwardBatch) -> None:
        """A follower's batch: append it if we lead exactly its term and can apply it,
        lowered to our proposal level (a follower knows only our level, not the members')."""
        raw = self.raw
        if raw.is_leader and raw.term == msg.term:
            why = self._app.cannot_apply(msg.data)
            if why is not None:
                if (msg.frm, why) not in self._refused:  # once per follower and reason: not per batch
                    self._refused.add((msg.frm, why))
                    log.warning("refused a batch of writes from node %d: %s", msg.frm, why)
                self._send([BatchRefused(msg.frm, self.opts.id, msg.term, msg.batch)])
                return
            try:
                _, index = raw.propose(self._app.lowered(msg.data, self._proposal_level()))
                self._notices.note_forwarded(msg.frm, index)
                self.stats.proposals += 1
                return
            except ProposalDropped:
                pass
        self._send([BatchRefused(msg.frm, self.opts.id, msg.term, msg.batch)])

    def _on_refused(self, msg: BatchRefused) -> None:
        for fwd in self._forwarded:
            if fwd.batch == msg.batch:
                self._forwarded.remove(fwd)
                self._fail_seqs(fwd.seqs, LeaderChanged(_NOT_TAKEN))
                return

    def _fail_seqs(self, seqs: list[int], err: Exception) -> None:
        for seq in seqs:
            self._local_cmds.pop(seq, None)
            waiter = self._waiters.pop(seq, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(err)

    def _settle_forwarded(self, lost_before: int) -> None:
        """Fail the batches of terms before `lost_before` (an entry of that
        term was applied, so they were lost); forget the answered ones."""
        fw = self._forwarded
        waiters = self._waiters
        while fw:
            head = fw[0]
            if head.term < lost_before:
                fw.popleft()
                self._fail_seqs(head.seqs, LeaderChanged(_LOST))
            elif all((w := waiters.get(s)) is None or w.done() for s in head.seqs):
                fw.popleft()
                self._fail_seqs(head.seqs, LeaderChanged(_LOST))  # only drops what timed out
            else:
                return

    # -------------------------------------------------- membership changes
    def _propose_conf_changes(self) -> None:
        inputs = self._in
        queue, inputs.conf_changes = inputs.conf_changes, []
        for cc, waiter in queue:
            if waiter.done():
                continue
            try:
                term, index = self.raw.propose_conf_change(cc)
            except ProposalDropped:
                waiter.set_exception(self._not_leader())
                continue
            except (ConfChangeRejected, ValueError) as exc:  # invalid, or another change pending
                waiter.set_exception(RequestFailed(str(exc)))
                continue
            self._conf_proposed[index] = (term, waiter)

    def _resolve_conf_waiters(self) -> None:
        """Conf changes take effect when advanced past; answer after that."""
        if not self._conf_proposed:
            return
        for index in [i for i in self._conf_proposed if i <= self.applied]:
            term, waiter = self._conf_proposed.pop(index)
            if waiter.done():
                continue
            if self.raw.term_at(index) in (term, None):
                waiter.set_result((term, index))
            else:
                waiter.set_exception(RequestFailed("leadership changed before the membership change committed"))

    def _not_leader(self) -> NotLeader:
        leader = self.raw.leader_id
        return NotLeader(leader, self.address_of(leader) if leader else None)

    # ---------------------------------------------------------------- apply
    def _apply(self, rd: Ready) -> None:
        snap = rd.snapshot
        if snap is not None and not snap.is_empty() and snap.meta.index > self.applied:
            self._app.restore(snap.data, snap.meta.index)
            self.applied = snap.meta.index
            self.snapshot_index = snap.meta.index
            self.stats.snapshots_installed += 1
            log.info("installed snapshot at index %d term %d", snap.meta.index, snap.meta.term)
            # Whether our writes up to the snapshot (or forwarded ones) are
            # inside it is unknown; proposals past it are still settled by apply.
            err = OutcomeUnknown("a snapshot was installed while the write was in flight; outcome unknown")
            while self._forwarded:
                self._fail_seqs(self._forwarded.popleft().seqs, err)
            for index in [i for i in self._proposed if i <= snap.meta.index]:
                self._fail_seqs(self._proposed.pop(index).seqs, err)
        for rs in rd.read_states:
            self._reads.on_read_state(rs.request_ctx, rs.index)
        forwarded = self._forwarded
        app, origin, local_cmds, waiters = self._app, self.origin, self._local_cmds, self._waiters
        for entry in rd.committed_entries:
            if entry.index <= self.applied:
                continue
            if forwarded and entry.term > forwarded[0].term:
                self._settle_forwarded(entry.term)
            prop = self._proposed.pop(entry.index, None)
            own = prop.batch if prop is not None and prop.data is entry.data else None
            for seq, response in app.apply(entry, origin, local_cmds, own):
                waiter = waiters.pop(seq, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(response)
            self.applied = entry.index
            self.applied_bytes += len(entry.data)
            if prop is not None and prop.term != entry.term:
                self._fail_seqs(prop.seqs, LeaderChanged(_LOST))
        if forwarded:
            self._settle_forwarded(0)
        if rd.committed_entries:
            self.after_apply()
