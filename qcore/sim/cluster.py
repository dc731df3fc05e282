"""The simulated cluster: nodes, the network between them, and the clock.

Time advances one simulator tick at a time. In each tick the fault injector
and the workload get a chance to act, then every packet due is delivered,
then every node whose clock says so ticks, then the nodes' timers (held
commit notices) and snapshot builds that fall due run. Each node has its
own tick period (clock drift) and phase, so nodes do not tick in lock-step.
Every event is followed by the node's round (its runtime core's Ready
handling) and, with it, by the checkers.
"""

from __future__ import annotations

from collections import Counter

from qcore.node.own_snapshots import Builder
from qcore.protocol.raft_codec import PeerMessage
from qcore.raft.types import ConfState, Message, MessageType
from qcore.sim.checkers import Checker
from qcore.sim.disk import SimDisk
from qcore.sim.network import Network
from qcore.sim.node import SimNode, SimWaiter, address, members
from qcore.sim.options import SimOptions, derive_rng
from qcore.sim.trace import Trace


class MessageToSelf(Exception):
    """A Ready carried a message addressed to its own node."""


class Cluster:
    def __init__(self, opts: SimOptions, trace: Trace) -> None:
        from qcore.sim.workload import Workload  # circular: the workload drives the cluster

        self.opts = opts
        self.trace = trace
        self.checker = Checker()
        self.now = 0
        self.network = Network(derive_rng(opts.seed, "network"), opts.network, derive_rng(opts.seed, "links"))
        self.fault_rng = derive_rng(opts.seed, "faults")
        self.clock_rng = derive_rng(opts.seed, "clock")
        self.crash_in_ready = opts.crash_in_ready
        self.nodes: dict[int, SimNode] = {}
        self.next_id = 1
        self.workload = Workload(self, derive_rng(opts.seed, "workload"))
        self.events = 0
        self.counters: Counter[str] = Counter()
        self.members_ever: set[int] = set()
        self.conf_index = 0  # index of the newest configuration applied anywhere
        self._retire_at: tuple[int, set[int], set[int]] | None = None
        # Transport reports (unreachable, snapshot status) to hand to a sender
        # once it is outside its Ready handling, as the runtime's inbox would.
        self._reports: list[tuple[int, int, bool | None]] = []
        # Own snapshots being built: (due at, node, its boot, index, builder).
        self._builds: list[tuple[int, SimNode, int, int, Builder]] = []
        # Simulator ticks from a leader's crash to the next leader elected.
        self.failovers: list[int] = []
        self._leader_lost_at: int | None = None

    # -- membership of the simulation ----------------------------------------

    def add_node(self) -> SimNode:
        node_id = self.next_id
        self.next_id += 1
        disk = SimDisk(derive_rng(self.opts.seed, f"disk{node_id}"), self.opts.torn_unsynced)
        node = SimNode(node_id, self.opts, self, disk)
        drift = self.opts.clock_drift
        node.tick_period = self.opts.raft_tick + self.clock_rng.randint(-drift, drift)
        node.next_tick_at = self.now + self.clock_rng.randint(1, node.tick_period)
        self.nodes[node_id] = node
        node.start()
        return node

    def bootstrap(self, size: int) -> None:
        """Create `size` empty nodes and Init the cluster on one of them."""
        created = [self.add_node() for _ in range(size)]
        seed_node = created[self.fault_rng.randrange(size)]
        assert seed_node.replica is not None
        init = SimWaiter(lambda _: None)
        seed_node.replica.bootstrap({n.id: address(n.id) for n in created}, [b"init"], init)
        self.members_ever.update(n.id for n in created)
        self.trace.add(self.now, f"n{seed_node.id} bootstraps a {size}-node cluster")
        seed_node.no_crash_once = True  # Init persists before it returns
        seed_node.process()
        assert init.done() and init.error is None, init.error

    def on_conf_applied(self, node: SimNode, conf: ConfState, index: int) -> None:
        """A committed configuration (in effect after `index`) was applied.
        Older configurations, applied again by a node catching up, change
        nothing."""
        if index <= self.conf_index:
            return
        self.conf_index = index
        keep = members(conf)
        self.members_ever |= keep
        if conf.voters_outgoing:
            self._retire_at = None
            return
        # Only nodes some applied configuration included can have been
        # removed; a node whose addition never committed is left alone.
        removed = {i for i in self.members_ever - keep if not self.nodes[i].retired}
        self._retire_at = (index, removed, set(conf.voters)) if removed else None

    def after_apply(self, node: SimNode) -> None:
        """Shut down removed nodes once every voter of the new configuration
        has its commit index durably past the change (ids are never reused,
        so removed nodes are never needed again). Not earlier: a voter that
        does not know the change committed still counts the removed nodes
        (in the old or the joint configuration) and could never win an
        election without them (docs/simulator-findings.md)."""
        pending = self._retire_at
        if pending is None or node.applied < pending[0]:
            return
        index, removed, voters = pending
        for voter_id in voters:
            durable = self.nodes[voter_id].disk.durable
            snap_index = durable.snapshot.meta.index if durable.snapshot is not None else 0
            if max(durable.hard_state.commit, snap_index) < index:
                return
        self._retire_at = None
        for node_id in sorted(removed):
            other = self.nodes[node_id]
            if not other.retired:
                other.retire()

    # -- network plumbing ----------------------------------------------------

    def send(self, src: int, msg: PeerMessage) -> None:
        if msg.to == src:
            raise MessageToSelf(f"node {src} sent {type(msg).__name__} to itself")
        if isinstance(msg, Message):
            self.checker.check_promise(src, msg, self.nodes[src].disk.durable)
        if self.network.send(msg, self.now, src):
            return
        self.trace.add(self.now, f"lost (sent by {src})", msg)
        if isinstance(msg, Message) and msg.type == MessageType.SNAP:
            self._reports.append((src, msg.to, False))
        elif isinstance(msg, Message) and msg.type == MessageType.APP and not self.network.reachable(src, msg.to):
            self._reports.append((src, msg.to, None))

    def reachable(self, frm: int, to: int) -> bool:
        """What a node's transport knows: is its link to `to` up?"""
        node = self.nodes.get(to)
        return node is not None and node.replica is not None and self.network.reachable(frm, to)

    def flush_reports(self) -> None:
        """Hand queued transport reports to their senders."""
        while self._reports:
            frm, to, ok = self._reports.pop(0)
            sender = self.nodes.get(frm)
            if sender is None or sender.replica is None:
                continue
            if ok is None:
                sender.replica.report_unreachable(to)
            else:
                self.trace.add(self.now, f"n{frm} report_snapshot({to}, {ok})")
                sender.replica.report_snapshot(to, ok)
            sender.process()

    def close_links(self, node_id: int) -> None:
        """`node_id`'s process is gone: every connection to it closes."""
        for other in self.nodes.values():
            if other.id != node_id and other.raw is not None:
                self.network.close_link(node_id, other.id, self.now)

    def deliver_links_closed(self) -> None:
        """Tell nodes of their links that closed (as the transport does)."""
        while (item := self.network.pop_link_closed(self.now)) is not None:
            observer, peer = item
            node = self.nodes.get(observer)
            if node is None or node.replica is None:
                continue
            self.events += 1
            self.counters["links_down"] += 1
            self.trace.add(self.now, f"n{observer} link to n{peer} down")
            node.replica.report_link_down(peer)
            node.process()
            self.flush_reports()

    def deliver_due(self) -> None:
        """Every packet due, then every link closing due (after the data, as in TCP)."""
        while True:
            item = self.network.pop_due(self.now)
            if item is None:
                self.deliver_links_closed()
                return
            src, msg, delivered = item
            target = self.nodes.get(msg.to)
            snap = type(msg) is Message and msg.type == MessageType.SNAP
            if not delivered or target is None or target.raw is None:
                self.trace.add(self.now, "drop", msg)
                if snap:
                    self._reports.append((src, msg.to, False))
                self.flush_reports()
                continue
            self.events += 1
            self.trace.add(self.now, "recv", msg)
            target.step(msg)
            if snap:
                self._reports.append((src, msg.to, True))
            self.flush_reports()

    # -- time ----------------------------------------------------------------

    def tick_nodes(self) -> None:
        for node in self.nodes.values():
            if node.raw is None or node.next_tick_at > self.now:
                continue
            node.next_tick_at = self.now + node.tick_period
            self.events += 1
            node.tick()
            self.flush_reports()

    def schedule_build(self, node: SimNode, index: int, builder: Builder) -> None:
        """`node` starts building a snapshot at `index`; it is done
        `snapshot_build_ticks` later, if the node is still up by then."""
        self._builds.append((self.now + self.opts.snapshot_build_ticks, node, node.boots, index, builder))
        self.trace.add(self.now, f"n{node.id} starts building a snapshot @{index}")

    def run_timers(self) -> None:
        """Held commit notices and snapshot builds that fall due now."""
        for node in self.nodes.values():
            replica = node.replica
            if replica is not None:
                due = replica.timer_due_at()
                if due is not None and due <= self.now:
                    replica.on_timer(self.now)
        if self._builds:
            due_builds = [b for b in self._builds if b[0] <= self.now]
            self._builds = [b for b in self._builds if b[0] > self.now]
            for _, node, boots, index, builder in due_builds:
                if node.replica is None or node.boots != boots:
                    continue  # crashed meanwhile: the build died with the process
                node.replica.snapshot_built(index, builder())
                node.process()
                self.flush_reports()

    def restart_due(self, force: bool = False) -> None:
        for node in self.nodes.values():
            if node.raw is None and not node.retired and (force or node.down_until <= self.now):
                node.start()
                node.next_tick_at = self.now + self.clock_rng.randint(1, node.tick_period)
                self.trace.add(
                    self.now,
                    f"n{node.id} RESTART term={node.term} commit={node.commit} "
                    f"log={node.log.base_index}..{node.log.last_index}",
                )
                node.process()
                self.flush_reports()

    def crash(self, node: SimNode, downtime: int) -> None:
        if node.is_leader:
            self._leader_lost_at = self.now
        node.crash()
        node.down_until = self.now + downtime

    def on_new_leader(self) -> None:
        """A node became leader: after a leader crash, how long that took."""
        if self._leader_lost_at is not None:
            self.failovers.append(self.now - self._leader_lost_at)
            self._leader_lost_at = None

    def check_durable(self, what: str) -> None:
        disks = {n.id: n.disk.durable for n in self.nodes.values() if not n.retired}
        self.checker.check_durable(disks, what)

    def leader(self) -> SimNode | None:
        """The running node that believes it leads with the highest term."""
        best = None
        for node in self.nodes.values():
            if node.raw is not None and node.is_leader and (best is None or node.term > best.term):
                best = node
        return best

    def writes_pending(self) -> int:
        """Writes taken by running nodes and not answered yet."""
        return sum(n.replica.pending_writes() for n in self.nodes.values() if n.replica is not None)

    def running(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]
