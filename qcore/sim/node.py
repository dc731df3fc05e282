"""One simulated node: a RawNode driven exactly as the runtime drives it.

`SimNode.process()` is the runtime loop of docs/ARCHITECTURE.md — persist
(snapshot, entries, hard state; fsync if must_sync), send, restore/apply,
serve reads, advance — with crash points between the steps. A crash throws
the RawNode away; `start()` builds a new one from what the simulated disk
kept, the way a `kill -9`-ed process comes back.

The node reports everything it sees to the checkers and keeps its own view
of its log (`LogView`) and of its application state (`Register`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qcore.raft.config import Config
from qcore.raft.rawnode import RawNode, SoftState
from qcore.raft.types import ConfChange, ConfState, EntryType, Message, ReadState
from qcore.sim.checkers import SafetyViolation
from qcore.sim.disk import SimDisk
from qcore.sim.logview import LogView
from qcore.sim.options import SimOptions, derive_rng
from qcore.sim.statemachine import Register

if TYPE_CHECKING:
    from qcore.sim.cluster import Cluster


MAX_READY_ROUNDS = 1000  # a core that never runs out of Readys would hang the run


class CrashNow(Exception):
    """Raised inside Ready handling to simulate a crash at that point."""


@dataclass(slots=True)
class Proposal:
    value: bytes
    term: int
    index: int
    issued_at: int


@dataclass(eq=False)
class SimNode:
    id: int
    opts: SimOptions
    cluster: "Cluster"
    disk: SimDisk
    raw: RawNode | None = None
    log: LogView = field(default_factory=LogView)
    sm: Register = field(default_factory=Register)
    boots: int = 0
    retired: bool = False  # removed from the cluster and shut down for good
    down_until: int = 0
    next_tick_at: int = 0
    tick_period: int = 10
    term: int = 0
    commit: int = 0
    lead: int = 0
    is_leader: bool = False
    conf: ConfState | None = None
    proposals: dict[int, Proposal] = field(default_factory=dict)  # index -> proposal made here
    read_states: list[ReadState] = field(default_factory=list)  # awaiting apply
    last_snapshot: int = 0
    no_crash_once: bool = False

    def config(self) -> Config:
        o = self.opts
        return Config(
            id=self.id,
            election_tick=o.election_tick,
            heartbeat_tick=o.heartbeat_tick,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
            max_size_per_msg=o.max_size_per_msg,
            max_inflight_msgs=o.max_inflight_msgs,
        )

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """(Re)start from the durable disk image."""
        rec = self.disk.recover()
        self.boots += 1
        rng = derive_rng(self.opts.seed, f"node{self.id}/boot{self.boots}")
        self.raw = RawNode(
            self.config(),
            rng=rng,
            hard_state=rec.hard_state,
            snapshot=rec.snapshot,
            entries=rec.entries,
        )
        if rec.snapshot is not None and not rec.snapshot.is_empty():
            self.sm = Register.restore(rec.snapshot.data)
            self.log = LogView(rec.snapshot.meta.index, rec.snapshot.meta.term, self.sm.chain)
            self.conf = rec.snapshot.meta.conf_state
        else:
            self.sm = Register()
            self.log = LogView()
            self.conf = None  # until the configuration entries are applied again
        self.last_snapshot = self.sm.applied
        ck = self.cluster.checker
        ck.log_write(self.id, self.log, rec.entries)
        ck.on_hard_state(self.id, rec.hard_state.term, rec.hard_state.vote)
        self.term = rec.hard_state.term
        self.commit = rec.hard_state.commit
        ck.on_commit(self.id, self.commit, self.log)
        self.lead = 0
        self.is_leader = False
        self.read_states.clear()
        self.proposals.clear()

    def crash(self) -> None:
        lost = self.disk.crash()
        self.raw = None
        self.is_leader = False
        self.cluster.checker.forget_reads(self.id)
        self.read_states.clear()
        self.proposals.clear()
        self.cluster.trace.add(self.cluster.now, f"n{self.id} CRASH (lost {lost} unsynced writes)")
        self.cluster.check_durable(f"the crash of n{self.id}")

    def retire(self) -> None:
        self.retired = True
        self.raw = None
        self.is_leader = False
        self.cluster.checker.forget_reads(self.id)
        self.cluster.trace.add(self.cluster.now, f"n{self.id} RETIRED (removed from the configuration)")
        self.cluster.check_durable(f"retiring n{self.id}")

    # -- the runtime loop ----------------------------------------------------

    def process(self) -> None:
        """Handle every pending Ready; may crash the node part-way."""
        try:
            rounds = 0
            while self.raw is not None and self.raw.has_ready():
                rounds += 1
                if rounds > MAX_READY_ROUNDS:
                    raise SafetyViolation(
                        "ready contract", f"node {self.id} still has a Ready after {MAX_READY_ROUNDS} in a row"
                    )
                self._handle_ready()
        except CrashNow:
            c = self.cluster
            c.crash(self, c.fault_rng.randint(1, 2 * self.opts.restart_ticks))

    def _crash_point(self, point: int) -> None:
        rate = self.cluster.crash_in_ready
        if not rate or self.no_crash_once:
            return
        if self.cluster.fault_rng.random() < rate:
            self.cluster.trace.add(self.cluster.now, f"n{self.id} crashes at ready step {point}")
            self.cluster.counters["crashes_in_ready"] += 1
            raise CrashNow()

    def _handle_ready(self) -> None:
        raw = self.raw
        assert raw is not None
        c = self.cluster
        ck = c.checker
        rd = raw.ready()
        self._crash_point(0)

        # 1. Persist: snapshot, entries, hard state (one fsync if must_sync).
        snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        self.disk.save(rd.hard_state, rd.entries, snap, rd.must_sync)
        if snap is not None:
            reg = Register.restore(snap.data)
            if reg.applied != snap.meta.index:
                raise AssertionError("snapshot data does not match its index")
            ck.on_snapshot(self.id, snap.meta.index, snap.meta.term, reg.chain)
            self.log.restore(snap.meta.index, snap.meta.term, reg.chain)
            c.trace.add(c.now, f"n{self.id} persists snapshot @{snap.meta.index}/t{snap.meta.term}")
            c.counters["snapshots_installed"] += 1
        ck.log_write(self.id, self.log, rd.entries)
        if rd.hard_state is not None:
            hs = rd.hard_state
            ck.on_hard_state(self.id, hs.term, hs.vote)
            self.term = hs.term
            self.commit = hs.commit
            ck.on_commit(self.id, self.commit, self.log)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        self._crash_point(1)

        # 2. Send, only after the persist step.
        for m in rd.messages:
            c.send(self.id, m)
        self._crash_point(2)

        # 3. Restore / apply, serve reads.
        if snap is not None:
            self.sm = Register.restore(snap.data)
            self.conf = snap.meta.conf_state
            self.last_snapshot = self.sm.applied
        conf_index = snap.meta.index if snap is not None else 0
        for e in rd.committed_entries:
            if e.index <= self.sm.applied:
                continue  # already covered by a restored snapshot
            self.sm.apply(e)
            value = e.data if e.type == EntryType.NORMAL and e.data else None
            ck.on_apply(self.id, e.index, self.sm.chain, value)
            prop = self.proposals.pop(e.index, None)
            if prop is not None:
                c.workload.on_proposal_result(self, prop, e)
            if e.type == EntryType.CONF_CHANGE:
                conf_index = e.index
                c.trace.add(c.now, f"n{self.id} applies conf change @{e.index}: {_describe_cc(e.data)}")
        if rd.read_states:
            self.read_states.extend(rd.read_states)
        self._serve_reads()

        # 4. Advance.
        raw.advance(rd)
        self.no_crash_once = False
        if conf_index:
            self._on_conf_change(conf_index)
        c.after_apply(self)
        self._maybe_snapshot()

    def _on_soft_state(self, ss: SoftState) -> None:
        c = self.cluster
        lead, leader = ss.leader_id, ss.role == "Leader"
        was = self.is_leader
        self.lead = lead
        self.is_leader = leader
        if leader and not was:
            term = self.raw.status().term if self.raw is not None else self.term
            self.term = term
            c.trace.add(c.now, f"n{self.id} becomes LEADER of term {term}")
            c.checker.on_leader(self.id, term, self.log)
        elif was and not leader:
            c.trace.add(c.now, f"n{self.id} steps down (lead={lead})")

    def _serve_reads(self) -> None:
        if not self.read_states:
            return
        keep = []
        for rs in self.read_states:
            if rs.index <= self.sm.applied:
                self.cluster.checker.on_read_served(rs.request_ctx, self.id, rs.index, self.sm.applied)
            else:
                keep.append(rs)
        self.read_states = keep

    def _on_conf_change(self, index: int) -> None:
        assert self.raw is not None
        self.conf = self.raw.status().conf_state
        self.cluster.on_conf_applied(self, self.conf, index)

    def _maybe_snapshot(self) -> None:
        """Application snapshots + compaction at the run's threshold."""
        raw = self.raw
        if raw is None or self.sm.applied - self.last_snapshot < self.opts.snapshot_threshold:
            return
        index = self.sm.applied
        snap = raw.create_snapshot(index, self.sm.snapshot_data())
        self.disk.save_snapshot(snap)
        raw.compact(index)
        self.log.compact(index)
        self.last_snapshot = index
        self.cluster.trace.add(self.cluster.now, f"n{self.id} snapshots and compacts @{index}")

    # -- inputs --------------------------------------------------------------

    def tick(self) -> None:
        assert self.raw is not None
        self.raw.tick()
        self.process()

    def step(self, msg: Message) -> None:
        assert self.raw is not None
        self.raw.step(msg)
        self.process()


def _describe_cc(data: bytes) -> str:
    try:
        cc = ConfChange.decode(data)
    except Exception:  # noqa: BLE001 - only for the trace
        return repr(data[:40])
    if not cc.changes:
        return "leave joint"
    parts = [f"{c.type.name} {c.node_id}" for c in cc.changes]
    return ", ".join(parts) + f" ({cc.transition.name})"


def address(node_id: int) -> str:
    """The opaque address a simulated node is known by in configurations."""
    return f"sim-{node_id}:1"


def members(conf: ConfState | None) -> set[int]:
    if conf is None:
        return set()
    return set(conf.voters) | set(conf.voters_outgoing) | set(conf.learners) | set(conf.learners_next)


