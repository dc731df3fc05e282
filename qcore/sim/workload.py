"""Simulated clients: writes, ReadIndex reads, membership changes, transfers.

Every request goes through the node's runtime core (`Replica`), as a
client's request does on a real node. Writes carry unique values and go to
whichever node believes it leads, or now and then to any running node,
which hands them to the leader in a forwarded batch. A write is
acknowledged when the replica settles its waiter (it applied the write);
the acknowledgement is checked against what was applied and feeds the
linearizable-read checker.

Membership changes keep the cluster sane: never fewer than one voter, only
one change at a time (the core refuses a second; the workload also avoids
asking), new nodes get fresh ids that are never reused. Learners are
removed as `RemoveNode` does (one simple change, or now and then a joint
one), and on purpose in the awkward states: one that has not caught up, one
that is down or cut off from the leader, one crashed just before, and one
added and removed again before it has anything of the log.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

from qcore.raft.confchange import enters_joint
from qcore.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
)
from qcore.sim.node import SimNode, SimWaiter, address

if TYPE_CHECKING:
    from qcore.sim.cluster import Cluster

ADD_LEARNER = ConfChangeType.ADD_LEARNER
ADD_NODE = ConfChangeType.ADD_NODE
REMOVE = ConfChangeType.REMOVE_NODE
MAX_IN_FLIGHT = 32  # unanswered writes per node: a real client pool is bounded


class Workload:
    def __init__(self, cluster: "Cluster", rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.next_value = 0
        self.next_read = 0
        self.acked = 0
        self.proposed = 0
        self.conf_changes = 0
        self.extra_nodes = 0
        self.membership_changes = True
        self.learners_removed = 0  # accepted removals of a learner (simple or joint)
        # The same by (simple or joint, the learner's state as the leader saw it):
        # "down", "cut off", "empty" (nothing replicated), "behind", "caught up".
        self.learner_removals: Counter[tuple[str, str]] = Counter()
        # A learner added to be removed again before it catches up: its id
        # and the tick after which the workload stops waiting for its addition.
        self.quick_remove: tuple[int, int] | None = None

    # -- writes --------------------------------------------------------------

    def _target(self) -> SimNode | None:
        leader = self.cluster.leader()
        if leader is not None and self.rng.random() < 0.9:
            return leader
        running = self.cluster.running()
        return self.rng.choice(running) if running else None

    def propose(self) -> None:
        """One client write, to the leader or, now and then, to any node."""
        node = self._target()
        if node is None or node.replica is None or node.replica.pending_writes() >= MAX_IN_FLIGHT:
            return  # clients wait for answers: bounded in-flight writes
        self.next_value += 1
        value = f"v{self.next_value}"
        c = self.cluster
        nid = node.id

        def acked(index: int) -> None:
            self.acked += 1
            c.checker.on_write_acked(index, value.encode())
            c.trace.add(c.now, f"n{nid} acks write {value!r} at {index}")

        def failed(exc: BaseException) -> None:
            c.trace.add(c.now, f"n{nid} fails write {value!r}: {exc}")

        self.proposed += 1
        c.trace.add(c.now, f"n{nid} takes write {value!r}")
        node.replica.propose_command(value, None, SimWaiter(acked, failed))
        node.process()

    # -- reads ---------------------------------------------------------------

    def read(self, watched: bool = False) -> None:
        """A ReadIndex read at the leader or any running node; `watched`
        reads are the ones the liveness phase waits for."""
        running = self.cluster.running()
        if not running:
            return
        node = self._target() if self.rng.random() < 0.5 else self.rng.choice(running)
        if node is None or node.replica is None:
            return
        self.next_read += 1
        ctx = f"r{self.next_read}".encode()
        c = self.cluster
        c.checker.on_read_issued(ctx, node.id, c.now, watched)
        c.trace.add(c.now, f"n{node.id} read barrier {ctx!r} (need >= {c.checker.acked_index})")

        def served(read_index: int) -> None:
            c.checker.on_read_served(ctx, node.id, read_index, node.applied)

        node.replica.read_barrier(SimWaiter(served))
        node.process()

    # -- leadership transfer -------------------------------------------------

    def transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None or leader.replica is None or leader.conf is None:
            return
        voters = [v for v in leader.conf.voters if v != leader.id]
        if not voters:
            return
        to = self.rng.choice(voters)
        self.cluster.trace.add(self.cluster.now, f"n{leader.id} transfer_leader({to})")
        leader.replica.transfer_leader(to)
        leader.process()

    # -- membership ----------------------------------------------------------

    def change_membership(self, leave_joint_only: bool = False) -> None:
        leader = self.cluster.leader()
        if leader is None or leader.raw is None or leader.conf is None:
            return
        conf = leader.conf
        if conf.voters_outgoing:
            if not conf.auto_leave:
                self._propose_cc(leader, ConfChange(), None)
            return
        if leave_joint_only or not self.membership_changes:
            return
        cc, new_id = self._pick_change(leader)
        if cc is not None and not self._propose_cc(leader, cc, new_id):
            if self.quick_remove is not None and self.quick_remove[0] == new_id:
                self.quick_remove = None  # its addition was refused

    def _pick_change(self, leader: SimNode) -> tuple[ConfChange | None, int | None]:
        conf = leader.conf
        assert conf is not None
        rng = self.rng
        voters = list(conf.voters)
        learners = list(conf.learners)
        can_add = self.extra_nodes < self.cluster.opts.max_extra_nodes
        transition = rng.choice(list(ConfChangeTransition))
        choices = []
        if can_add:
            choices += ["add_learner", "add_learner", "add_voter", "add_remove_learner"]
        if learners:
            choices += ["promote", "promote", "remove_learner", "remove_learner"]
            if self.cluster.opts.crash_rate:
                choices += ["crash_remove_learner"]
        if len(voters) > 1:
            choices += ["remove_voter", "demote"]
        if learners and len(voters) > 1:
            choices += ["swap"]
        if not choices:
            return None, None
        kind = rng.choice(choices)
        new_id = None
        changes: list[ConfChangeSingle] = []
        addresses: dict[int, str] = {}
        if kind in ("add_learner", "add_voter", "add_remove_learner"):
            new_id = self.cluster.next_id
            changes.append(ConfChangeSingle(ADD_NODE if kind == "add_voter" else ADD_LEARNER, new_id))
            addresses[new_id] = address(new_id)
            if kind == "add_remove_learner":
                transition = ConfChangeTransition.AUTO
                self.quick_remove = (new_id, self.cluster.now + 10 * self._election_ticks())
        elif kind == "promote":
            changes.append(ConfChangeSingle(ADD_NODE, rng.choice(learners)))
        elif kind == "remove_learner":
            # As RemoveNode does it (one simple change), two times in three;
            # half the time a learner the leader cannot reach or that lags.
            stragglers = self._stragglers(leader, learners)
            pick = stragglers if stragglers and rng.random() < 0.5 else learners
            changes.append(ConfChangeSingle(REMOVE, rng.choice(pick)))
            transition = rng.choice((ConfChangeTransition.AUTO, ConfChangeTransition.AUTO, transition))
        elif kind == "crash_remove_learner":
            # Remove a learner that is down: the leader's configuration
            # drops it while it cannot hear about it.
            gone = self.cluster.nodes[rng.choice(learners)]
            if gone.raw is not None:
                c = self.cluster
                c.trace.add(c.now, f"n{gone.id} crashed by the workload, to be removed while down")
                c.crash(gone, rng.randint(1, 2 * c.opts.restart_ticks))
            changes.append(ConfChangeSingle(REMOVE, gone.id))
            transition = ConfChangeTransition.AUTO
        elif kind == "remove_voter":
            changes.append(ConfChangeSingle(REMOVE, rng.choice(voters)))
        elif kind == "demote":
            changes.append(ConfChangeSingle(ADD_LEARNER, rng.choice(voters)))
        else:  # swap: promote a learner and remove a voter in one joint change
            changes.append(ConfChangeSingle(ADD_NODE, rng.choice(learners)))
            changes.append(ConfChangeSingle(REMOVE, rng.choice(voters)))
            if transition == ConfChangeTransition.AUTO:
                transition = ConfChangeTransition.JOINT_IMPLICIT
        return ConfChange(tuple(changes), transition, addresses), new_id

    def _election_ticks(self) -> int:
        """One election timeout, in simulator ticks."""
        return self.cluster.opts.election_tick * self.cluster.opts.raft_tick

    def _stragglers(self, leader: SimNode, learners: list[int]) -> list[int]:
        """The learners that are down, cut off from the leader, or behind its log."""
        assert leader.raw is not None
        progress = leader.raw.status().progress or {}
        last = leader.raw.status().last_log_index
        out = []
        for nid in learners:
            node = self.cluster.nodes[nid]
            pr = progress.get(nid)
            if node.raw is None or not self.cluster.network.reachable(leader.id, nid) or pr is None or pr.match < last:
                out.append(nid)
        return out

    def follow_up(self) -> None:
        """Every tick of the safety phase: remove the learner added to be
        removed again, once its addition is in effect on the leader and as
        long as the leader has not seen it catch up (then it is too late)."""
        if self.quick_remove is None:
            return
        new_id, give_up_at = self.quick_remove
        c = self.cluster
        leader = c.leader()
        if c.now > give_up_at or not self.membership_changes:
            self.quick_remove = None
            return
        if leader is None or leader.raw is None or leader.conf is None or leader.conf.voters_outgoing:
            return
        if new_id not in leader.conf.learners:
            return  # not applied yet on this leader (or never will be: give_up_at)
        status = leader.raw.status()
        pr = (status.progress or {}).get(new_id)
        if pr is not None and pr.match >= status.last_log_index:
            c.trace.add(c.now, f"n{new_id} caught up before its quick removal")
            self.quick_remove = None
            return
        cc = ConfChange((ConfChangeSingle(REMOVE, new_id),), ConfChangeTransition.AUTO, {})
        if self._propose_cc(leader, cc, None):
            self.quick_remove = None

    def _propose_cc(self, leader: SimNode, cc: ConfChange, new_id: int | None) -> bool:
        """Propose `cc` at `leader`; whether the leader accepted it."""
        assert leader.replica is not None
        c = self.cluster
        desc = ", ".join(f"{ch.type.name} {ch.node_id}" for ch in cc.changes) or "leave joint"
        waiter = SimWaiter(lambda at: c.trace.add(c.now, f"n{leader.id} applied conf change [{desc}] at {at[1]}/t{at[0]}"))
        c.trace.add(c.now, f"n{leader.id} proposes conf change [{desc}] {cc.transition.name}")
        learners = {
            ch.node_id: self._learner_state(leader, ch.node_id) for ch in cc.changes
            if ch.type == REMOVE and leader.conf is not None and ch.node_id in leader.conf.learners
        }
        leader.replica.propose_conf_change(cc, waiter)
        if new_id is not None:
            # Before the round: the change may be applied within it, and the
            # cluster must know the node by then (it idles if the change is refused).
            self.extra_nodes += 1
            node = c.add_node()
            assert node.id == new_id
        leader.process()
        if waiter.error is not None:
            c.trace.add(c.now, f"n{leader.id} refuses conf change [{desc}]: {waiter.error}")
            return False
        self.conf_changes += 1
        kind = "joint" if enters_joint(cc) else "simple"
        for state in learners.values():
            self.learners_removed += 1
            self.learner_removals[kind, state] += 1
        return True

    def _learner_state(self, leader: SimNode, nid: int) -> str:
        """How learner `nid` stands, as far as the simulation and `leader` know."""
        assert leader.raw is not None
        node = self.cluster.nodes[nid]
        status = leader.raw.status()
        pr = (status.progress or {}).get(nid)
        if node.raw is None:
            return "down"
        if not self.cluster.network.reachable(leader.id, nid):
            return "cut off"
        if pr is None or pr.match == 0:
            return "empty"
        return "behind" if pr.match < status.last_log_index else "caught up"

