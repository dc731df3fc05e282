"""One seed, two phases: safety with faults on, then liveness with faults off.

Safety phase (`opts.steps` ticks): crashes, crashes inside Ready handling,
partitions, lossy/duplicating/reordering links, membership changes,
leadership transfers, client writes and reads; every event is checked.

Liveness phase (at most `opts.liveness_steps` ticks): the network heals and
stops losing packets, crashed nodes restart, no more crashes and no more
membership changes (except leaving a joint configuration). Within the bound
a leader must be elected, a few new writes must be acknowledged, a
ReadIndex read (retried by its client) must be answered, and every member
of the configuration must know the leader and have applied the leader's
whole log. Otherwise: liveness failure.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TextIO

from qcore.sim.checkers import SafetyViolation
from qcore.sim.cluster import Cluster, MessageToSelf
from qcore.sim.disk import DiskContractError
from qcore.sim.faults import Faults
from qcore.sim.logview import LogGapError
from qcore.sim.network import MessageMutated
from qcore.sim.node import SimNode, members
from qcore.sim.options import SimOptions, derive_options, derive_rng
from qcore.sim.register import ApplyOrderError
from qcore.sim.trace import Trace

LIVENESS_WRITES = 3  # writes that must be acknowledged in the liveness phase


class ExitCode(IntEnum):
    OK = 0
    SAFETY = 3  # a checker failed: the core broke a Raft/linearizability property
    LIVENESS = 4  # the cluster did not converge after the faults stopped
    CRASH = 5  # an exception escaped the Raft core, the node's runtime core or the simulator itself


class LivenessFailure(Exception):
    pass


@dataclass
class RunResult:
    seed: int
    code: ExitCode
    opts: SimOptions
    now: int = 0
    phase: str = "safety"
    events: int = 0  # trace events up to the failure
    message: str = ""
    trace: str = ""
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code == ExitCode.OK


def replay_command(opts: SimOptions, explicit_nodes: bool, explicit_steps: bool) -> str:
    cmd = f"python -m qcore.sim --seeds 1 --start {opts.seed}"
    if explicit_nodes:
        cmd += f" --nodes {opts.nodes}"
    if explicit_steps:
        cmd += f" --steps {opts.steps}"
    return cmd + " -v"


class Simulation:
    def __init__(self, opts: SimOptions, trace: Trace) -> None:
        self.opts = opts
        self.cluster = Cluster(opts, trace)
        self.faults = Faults(self.cluster, derive_rng(opts.seed, "fault-schedule"))
        self.rng = derive_rng(opts.seed, "schedule")
        self.phase = "safety"

    def run(self) -> None:
        c = self.cluster
        c.bootstrap(self.opts.nodes)
        for _ in range(self.opts.steps):
            c.now += 1
            c.restart_due()
            self.faults.step()
            self._client_step(self.opts.propose_rate, self.opts.read_rate)
            c.deliver_due()
            c.tick_nodes()
            c.run_timers()
        self.phase = "liveness"
        self._liveness()

    def _client_step(self, propose_rate: float, read_rate: float) -> None:
        c, rng, o = self.cluster, self.rng, self.opts
        if rng.random() < propose_rate:
            c.workload.propose()
        if rng.random() < read_rate:
            c.workload.read()
        if rng.random() < o.conf_change_rate:
            c.workload.change_membership()
        if rng.random() < o.transfer_rate:
            c.workload.transfer()
        c.workload.follow_up()
        c.flush_reports()

    def _liveness(self) -> None:
        c = self.cluster
        c.trace.add(c.now, "LIVENESS PHASE: heal, restart all, stop faults and membership changes")
        c.network.heal()
        c.network.options = replace(c.network.options, loss=0.0)
        c.crash_in_ready = 0.0
        c.workload.membership_changes = False
        c.restart_due(force=True)
        start_acked = c.workload.acked
        bound = self.liveness_bound()
        deadline = c.now + bound
        period = self.opts.raft_tick
        while c.now < deadline:
            c.now += 1
            if c.now % period == 0:
                if c.workload.acked - start_acked < LIVENESS_WRITES and not c.writes_pending():
                    c.workload.propose()  # one client: the next write once the last is answered
                elif c.checker.watched_served == 0 and c.now % (period * self.opts.election_tick) == 0:
                    c.workload.read(watched=True)  # a client retrying until one read is answered
                c.workload.change_membership(leave_joint_only=True)
                c.flush_reports()
            c.deliver_due()
            c.tick_nodes()
            c.run_timers()
            if c.workload.acked - start_acked >= LIVENESS_WRITES and c.checker.watched_served and self._converged():
                c.trace.add(c.now, "converged")
                return
        raise LivenessFailure(
            f"no convergence within {bound} ticks after faults stopped: {self._state()}"
        )

    def liveness_bound(self) -> int:
        """Ticks the cluster gets to converge: `liveness_steps` (40 election
        timeouts) plus one worst-case round trip per log entry a node may
        have to fetch again. With one 64-byte message in flight a follower
        gets one entry per round trip: slow, but not a liveness bug."""
        nodes = [n for n in self.cluster.nodes.values() if not n.retired]
        backlog = max(n.log.last_index for n in nodes) - min(n.log.base_index for n in nodes)
        return self.opts.liveness_steps + max(0, backlog) * 2 * self.opts.network.delay_max

    def _converged(self) -> bool:
        leader = self.cluster.leader()
        if leader is None or leader.conf is None or leader.conf.voters_outgoing:
            return False
        last = leader.log.last_index
        if leader.commit != last:
            return False
        for node_id in members(leader.conf):
            node = self.cluster.nodes.get(node_id)
            if node is None or node.raw is None or node.lead != leader.id or node.applied != last:
                return False
        return True

    def _state(self) -> str:
        parts = []
        for n in self.cluster.nodes.values():
            state = "retired" if n.retired else ("down" if n.raw is None else ("LEADER" if n.is_leader else "up"))
            parts.append(
                f"n{n.id}[{state} term={n.term} lead={n.lead} commit={n.commit} applied={n.applied} "
                f"log={n.log.base_index}..{n.log.last_index} conf={_conf(n)}]"
            )
        return " ".join(parts)

    def stats(self) -> dict[str, int]:
        c = self.cluster
        return {
            "nodes": len(c.nodes),
            "events": c.events,
            "commit": c.checker.commit_index,
            "writes_acked": c.workload.acked,
            "reads_checked": c.checker.reads_checked,
            "crashes": self.faults.crashes,
            "partitions": self.faults.partitions,
            "conf_changes": c.workload.conf_changes,
            "learners_removed": c.workload.learners_removed,
            "leaders": len(c.checker.leaders),
            "packets": c.network.sent,
            "packets_dropped": c.network.dropped,
            "snapshots_installed": c.counters["snapshots_installed"],
            "crashes_in_ready": c.counters["crashes_in_ready"],
            "links_down": c.counters["links_down"],
        }


def _conf(n: SimNode) -> str:
    if n.conf is None:
        return "-"
    s = "v" + ",".join(map(str, n.conf.voters))
    if n.conf.voters_outgoing:
        s += "&" + ",".join(map(str, n.conf.voters_outgoing))
    if n.conf.learners:
        s += " l" + ",".join(map(str, n.conf.learners))
    return s


def run_seed(
    seed: int,
    nodes: int | None = None,
    steps: int | None = None,
    verbose: bool = False,
    out: TextIO | None = None,
    keep: int = 50,
) -> RunResult:
    """Run one seed; never raises (a failure is a result with its trace)."""
    opts = derive_options(seed, nodes, steps)
    trace = Trace(keep=keep, echo=(out or sys.stdout) if verbose else None)
    sim = Simulation(opts, trace)
    result = RunResult(seed, ExitCode.OK, opts)
    try:
        sim.run()
    except (
        SafetyViolation, DiskContractError, LogGapError, ApplyOrderError, MessageMutated, MessageToSelf
    ) as exc:
        result.code = ExitCode.SAFETY
        result.message = f"{type(exc).__name__}: {exc}"
    except LivenessFailure as exc:
        result.code = ExitCode.LIVENESS
        result.message = str(exc)
    except Exception as exc:  # noqa: BLE001 - any escape from the core is the finding
        result.code = ExitCode.CRASH
        frames = traceback.extract_tb(exc.__traceback__)
        if any("/qcore/raft/" in f.filename for f in frames):
            where = "the Raft core"
        elif any("/qcore/node/" in f.filename for f in frames):
            where = "the node's runtime core"
        else:
            where = "the simulator"
        result.message = f"exception in {where}:\n" + traceback.format_exc()
    result.now = sim.cluster.now
    result.phase = sim.phase
    result.trace = trace.dump()
    result.events = trace.count
    result.stats = sim.stats()
    return result
