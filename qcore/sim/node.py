"""One simulated node: the node's own runtime core, on simulated I/O.

A `SimNode` runs `qcore.node.replica.Replica`, the code a real node runs
around its `RawNode` (ordering of sends, writes and applies, group commit,
forwarded writes, held commit notices, own snapshots, ReadIndex batching,
request deadlines), with a simulated disk (`SimDisk` behind `SimStorage`),
network (the cluster's), clock (simulator ticks) and application
(`RegisterApp`). `process()` is the round the asyncio driver runs, with
crash points between its steps. A crash throws the replica away; `start()`
builds a new one from what the simulated disk kept, the way a `kill -9`-ed
process comes back.

The node reports what it persists, applies and becomes to the checkers and
keeps its own view of its log (`LogView`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from qcore.node.own_snapshots import MakeBuilder
from qcore.node.replica import Replica, ReplicaOptions
from qcore.protocol.raft_codec import PeerMessage
from qcore.raft.config import Config
from qcore.raft.rawnode import RawNode, Ready, Role, SoftState
from qcore.raft.types import ConfChange, ConfState, Entry, EntryType, HardState, Snapshot
from qcore.sim.checkers import SafetyViolation
from qcore.sim.disk import SimDisk
from qcore.sim.logview import LogView
from qcore.sim.options import SimOptions, derive_rng
from qcore.sim.register import Register, RegisterApp
from qcore.storage import RecoveredState

if TYPE_CHECKING:
    from qcore.sim.cluster import Cluster


MAX_READY_ROUNDS = 1000  # a core that never runs out of Readys would hang the run


class CrashNow(Exception):
    """Raised inside Ready handling to simulate a crash at that point."""


class SimWaiter:
    """A request's waiter (`qcore.node.waiting.Waiter`) that calls back at once."""

    __slots__ = ("_done", "_on_result", "_on_error", "error")

    def __init__(self, on_result: Callable[[Any], None], on_error: Callable[[BaseException], None] | None = None) -> None:
        self._done = False
        self._on_result = on_result
        self._on_error = on_error
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any, /) -> None:
        self._done = True
        self._on_result(result)

    def set_exception(self, exception: BaseException, /) -> None:
        self._done = True
        self.error = exception
        if self._on_error is not None:
            self._on_error(exception)


class SimStorage:
    """`qcore.storage.Storage` on a `SimDisk`, reporting every write to the checkers."""

    def __init__(self, node: "SimNode") -> None:
        self._node = node

    def recover(self) -> RecoveredState:
        img = self._node.disk.recover()
        return RecoveredState(img.hard_state, img.snapshot, img.entries)

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], snapshot: Snapshot | None, sync: bool) -> None:
        node = self._node
        c = node.cluster
        ck = c.checker
        node.disk.save(hard_state, entries, snapshot, sync)
        if snapshot is not None:
            reg = Register.restore(snapshot.data)
            if reg.applied != snapshot.meta.index:
                raise AssertionError("snapshot data does not match its index")
            ck.on_snapshot(node.id, snapshot.meta.index, snapshot.meta.term, reg.chain)
            node.log.restore(snapshot.meta.index, snapshot.meta.term, reg.chain)
            c.trace.add(c.now, f"n{node.id} persists snapshot @{snapshot.meta.index}/t{snapshot.meta.term}")
            c.counters["snapshots_installed"] += 1
        ck.log_write(node.id, node.log, list(entries))
        if hard_state is not None:
            ck.on_hard_state(node.id, hard_state.term, hard_state.vote)
            node.term = hard_state.term
            node.commit = hard_state.commit
            ck.on_commit(node.id, node.commit, node.log)

    def save_snapshot(self, snap: Snapshot) -> None:
        node = self._node
        node.disk.save_snapshot(snap)
        node.log.compact(snap.meta.index)
        node.cluster.trace.add(node.cluster.now, f"n{node.id} snapshots and compacts @{snap.meta.index}")

    def close(self) -> None:
        pass


@dataclass(eq=False)
class SimNode:
    id: int
    opts: SimOptions
    cluster: "Cluster"
    disk: SimDisk
    replica: Replica | None = None
    log: LogView = field(default_factory=LogView)
    register: Register = field(default_factory=Register)
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
    conf_applied: int = 0  # a configuration was applied at this index in the current Ready
    conf_restored: bool = False  # a snapshot brought its configuration in the current Ready
    # Members of the configuration before the one applied in the last Ready:
    # what the core handed out in that Ready was addressed under it.
    conf_before: set[int] = field(default_factory=set)
    no_crash_once: bool = False

    @property
    def raw(self) -> RawNode | None:
        return self.replica.raw if self.replica is not None else None

    @property
    def applied(self) -> int:
        return self.register.applied

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

    def replica_options(self) -> ReplicaOptions:
        o = self.opts
        return ReplicaOptions(
            id=self.id,
            timeout_ticks=o.request_timeout,
            timeout_s=o.request_timeout,
            read_retry_ticks=o.election_tick,
            no_leader_ticks=min(o.request_timeout, 2 * o.election_tick),  # as the node's driver sets it
            max_batch_commands=o.max_batch_commands,
            snapshot_threshold=o.snapshot_threshold,
            snapshot_keep=o.snapshot_keep,
            notice_delay=o.notice_delay,
        )

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """(Re)start from the durable disk image."""
        storage = SimStorage(self)
        rec = storage.recover()
        self.boots += 1
        rng = derive_rng(self.opts.seed, f"node{self.id}/boot{self.boots}")
        raw = RawNode(self.config(), rng=rng, hard_state=rec.hard_state, snapshot=rec.snapshot, entries=rec.entries)
        snap_index = 0
        if rec.snapshot is not None and not rec.snapshot.is_empty():
            self.register = Register.restore(rec.snapshot.data)
            snap_index = rec.snapshot.meta.index
            self.log = LogView(snap_index, rec.snapshot.meta.term, self.register.chain)
            self.conf = rec.snapshot.meta.conf_state
        else:
            self.register = Register()
            self.log = LogView()
            self.conf = None  # until the configuration entries are applied again
        c = self.cluster
        app = RegisterApp(self.register, self._on_apply, self._on_restore)
        self.replica = Replica(
            self.replica_options(), raw, storage, app, self._send,
            origin=f"n{self.id}/boot{self.boots}",
            clock=lambda: c.now,
            start_build=self._start_build,
            reachable=lambda peer: c.reachable(self.id, peer),
            applied=snap_index,
            snapshot_index=snap_index,
            persisted_index=rec.entries[-1].index if rec.entries else snap_index,
            durable=rec.hard_state,
        )
        self.replica.on_soft_state = self._on_soft_state
        ck = c.checker
        ck.log_write(self.id, self.log, rec.entries)
        ck.on_hard_state(self.id, rec.hard_state.term, rec.hard_state.vote)
        self.term = rec.hard_state.term
        self.commit = rec.hard_state.commit
        ck.on_commit(self.id, self.commit, self.log)
        self.lead = 0
        self.is_leader = False
        self.conf_applied, self.conf_restored = 0, False
        self.conf_before = set()

    def crash(self) -> None:
        lost = self.disk.crash()
        self.replica = None
        self.cluster.close_links(self.id)
        self.is_leader = False
        self.cluster.checker.forget_reads(self.id)
        self.cluster.trace.add(self.cluster.now, f"n{self.id} CRASH (lost {lost} unsynced writes)")
        self.cluster.check_durable(f"the crash of n{self.id}")

    def retire(self) -> None:
        self.retired = True
        self.replica = None
        self.cluster.close_links(self.id)
        self.is_leader = False
        self.cluster.checker.forget_reads(self.id)
        self.cluster.trace.add(self.cluster.now, f"n{self.id} RETIRED (removed from the configuration)")
        self.cluster.check_durable(f"retiring n{self.id}")

    # -- the round (as qcore.node.driver runs it) --------------------------------

    def process(self) -> None:
        """Run a round of the replica: every pending Ready, then its own
        snapshot work; may crash the node part-way."""
        replica = self.replica
        if replica is None:
            return
        try:
            rounds = 0
            while (rd := replica.next_ready()) is not None:
                rounds += 1
                if rounds > MAX_READY_ROUNDS:
                    raise SafetyViolation(
                        "ready contract", f"node {self.id} still has a Ready after {MAX_READY_ROUNDS} in a row"
                    )
                self._check_replication(rd)
                self._crash_point(0)
                replica.before_persist(rd)
                self._crash_point(1)
                commit_before = self.commit
                replica.save(rd)
                self._check_commit_quorum(rd, commit_before)
                self._crash_point(2)
                replica.after_persist(rd)
                self.no_crash_once = False
                self._after_ready()
            snap = replica.end_round()
            if snap is not None:
                replica._storage.save_snapshot(snap)  # noqa: SLF001 (the simulator's own storage)
                replica.snapshot_saved(snap)
        except CrashNow:
            c = self.cluster
            c.crash(self, c.fault_rng.randint(1, 2 * self.opts.restart_ticks))

    def _check_replication(self, rd: Ready) -> None:
        if self.conf is not None and rd.messages:
            self.cluster.checker.check_replication(self.id, rd.messages, members(self.conf) | self.conf_before)

    def _check_commit_quorum(self, rd: Ready, commit_before: int) -> None:
        """A commit index this node advanced as leader (with the
        configuration it had applied by the last round) is on a majority
        of the voters' disks."""
        leading = rd.soft_state.role == Role.LEADER if rd.soft_state is not None else self.is_leader
        if not leading or self.commit <= commit_before or self.conf is None:
            return
        conf, nodes = self.conf, self.cluster.nodes
        disks = {v: nodes[v].disk.durable for v in (*conf.voters, *conf.voters_outgoing)}
        self.cluster.checker.check_commit_quorum(self.id, self.commit, conf.voters, conf.voters_outgoing, disks)

    def _crash_point(self, point: int) -> None:
        rate = self.cluster.crash_in_ready
        if not rate or self.no_crash_once:
            return
        if self.cluster.fault_rng.random() < rate:
            self.cluster.trace.add(self.cluster.now, f"n{self.id} crashes at ready step {point}")
            self.cluster.counters["crashes_in_ready"] += 1
            raise CrashNow()

    def _send(self, msgs: Sequence[PeerMessage]) -> None:
        for m in msgs:
            self.cluster.send(self.id, m)

    def _start_build(self, index: int, make_builder: MakeBuilder) -> None:
        self.cluster.schedule_build(self, index, make_builder(True))

    def _after_ready(self) -> None:
        """After `advance`: configurations applied in this Ready are in effect."""
        self.conf_before = set()
        if self.conf_applied or self.conf_restored:
            assert self.raw is not None
            self.conf_before = members(self.conf)
            self.conf = dataclasses.replace(self.raw.conf_state, addresses=dict(self.raw.conf_state.addresses))
            self.conf_restored = False
        if self.conf_applied:
            index, self.conf_applied = self.conf_applied, 0
            assert self.conf is not None
            self.cluster.on_conf_applied(self, self.conf, index)
        self.cluster.after_apply(self)

    # -- what the replica reports ---------------------------------------------

    def _on_apply(self, entry: Entry, values: list[bytes], chain: bytes) -> None:
        c = self.cluster
        ck = c.checker
        if values:
            for value in values:
                ck.on_apply(self.id, entry.index, chain, value)
        else:
            ck.on_apply(self.id, entry.index, chain, None)
        if entry.type == EntryType.CONF_CHANGE:
            self.conf_applied = entry.index
            c.trace.add(c.now, f"n{self.id} applies conf change @{entry.index}: {_describe_cc(entry.data)}")

    def _on_restore(self, register: Register) -> None:
        self.register = register
        self.conf_restored = True

    def _on_soft_state(self, ss: SoftState) -> None:
        c = self.cluster
        lead, leader = ss.leader_id, ss.role == Role.LEADER
        was = self.is_leader
        self.lead = lead
        self.is_leader = leader
        if leader and not was:
            term = self.raw.term if self.raw is not None else self.term
            self.term = term
            c.trace.add(c.now, f"n{self.id} becomes LEADER of term {term}")
            voters = None if self.conf is None else (*self.conf.voters, *self.conf.voters_outgoing)
            c.checker.on_leader(self.id, term, self.log, voters)
            c.on_new_leader()
        elif was and not leader:
            c.trace.add(c.now, f"n{self.id} steps down (lead={lead})")

    # -- inputs --------------------------------------------------------------

    def tick(self) -> None:
        assert self.replica is not None
        self.replica.tick()
        self.process()

    def step(self, msg: PeerMessage) -> None:
        assert self.replica is not None
        self.replica.step(msg)
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
    return set(conf.members())
