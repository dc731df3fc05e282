"""Simulated clients: writes, ReadIndex reads, membership changes, transfers.

Writes carry unique values and go to whichever node believes it leads (or,
with no leader known, to a random node that may forward once, as the
runtime does with ProposalDropped.leader_id). A write is acknowledged when
the node that accepted it applies that very entry at the index it was given;
the acknowledgement feeds the linearizable-read checker.

Membership changes keep the cluster sane: never fewer than one voter, only
one change at a time (the core refuses a second; the workload also avoids
asking), new nodes get fresh ids that are never reused.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from qcore.raft.errors import ConfChangeRejected, ProposalDropped
from qcore.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    Entry,
)
from qcore.sim.node import Proposal, SimNode, address

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

    # -- writes --------------------------------------------------------------

    def _target(self) -> SimNode | None:
        leader = self.cluster.leader()
        if leader is not None and self.rng.random() < 0.9:
            return leader
        running = self.cluster.running()
        return self.rng.choice(running) if running else None

    def propose(self) -> bool:
        """Try one client write; True if some node accepted it."""
        node = self._target()
        if node is None or len(node.proposals) >= MAX_IN_FLIGHT:
            return False  # clients wait for answers: bounded in-flight writes
        self.next_value += 1
        value = f"v{self.next_value}".encode()
        for _hop in range(2):
            assert node.raw is not None
            try:
                term, index = node.raw.propose(value)
            except ProposalDropped as exc:
                fwd = self.cluster.nodes.get(exc.leader_id)
                if fwd is None or fwd.raw is None or fwd is node:
                    return False
                node = fwd
                continue
            self.proposed += 1
            node.proposals[index] = Proposal(value, term, index, self.cluster.now)
            self.cluster.trace.add(self.cluster.now, f"n{node.id} accepts write {value!r} at {index}/t{term}")
            node.process()
            return True
        return False

    def on_proposal_result(self, node: SimNode, prop: Proposal, entry: Entry) -> None:
        """`node` applied the entry at the index it gave a proposal."""
        if entry.term == prop.term and entry.data == prop.value:
            self.acked += 1
            self.cluster.checker.on_write_acked(entry.index)
            self.cluster.trace.add(self.cluster.now, f"n{node.id} acks write {prop.value!r} at {entry.index}")

    # -- reads ---------------------------------------------------------------

    def read(self, watched: bool = False) -> None:
        """A ReadIndex read at the leader or any running node; `watched`
        reads are the ones the liveness phase waits for."""
        running = self.cluster.running()
        if not running:
            return
        node = self._target() if self.rng.random() < 0.5 else self.rng.choice(running)
        if node is None or node.raw is None:
            return
        self.next_read += 1
        ctx = f"r{self.next_read}".encode()
        self.cluster.checker.on_read_issued(ctx, node.id, self.cluster.now, watched)
        self.cluster.trace.add(self.cluster.now, f"n{node.id} read_index {ctx!r} (need >= {self.cluster.checker.acked_index})")
        node.raw.read_index(ctx)
        node.process()

    # -- leadership transfer -------------------------------------------------

    def transfer(self) -> None:
        leader = self.cluster.leader()
        if leader is None or leader.raw is None or leader.conf is None:
            return
        voters = [v for v in leader.conf.voters if v != leader.id]
        if not voters:
            return
        to = self.rng.choice(voters)
        self.cluster.trace.add(self.cluster.now, f"n{leader.id} transfer_leader({to})")
        leader.raw.transfer_leader(to)
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
        if cc is not None:
            self._propose_cc(leader, cc, new_id)

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
            choices += ["add_learner", "add_learner", "add_voter"]
        if learners:
            choices += ["promote", "promote", "remove_learner"]
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
        if kind in ("add_learner", "add_voter"):
            new_id = self.cluster.next_id
            changes.append(ConfChangeSingle(ADD_LEARNER if kind == "add_learner" else ADD_NODE, new_id))
            addresses[new_id] = address(new_id)
        elif kind == "promote":
            changes.append(ConfChangeSingle(ADD_NODE, rng.choice(learners)))
        elif kind == "remove_learner":
            changes.append(ConfChangeSingle(REMOVE, rng.choice(learners)))
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

    def _propose_cc(self, leader: SimNode, cc: ConfChange, new_id: int | None) -> None:
        assert leader.raw is not None
        desc = ", ".join(f"{c.type.name} {c.node_id}" for c in cc.changes) or "leave joint"
        try:
            term, index = leader.raw.propose_conf_change(cc)
        except (ProposalDropped, ConfChangeRejected) as exc:
            self.cluster.trace.add(self.cluster.now, f"n{leader.id} refuses conf change [{desc}]: {exc}")
            return
        self.conf_changes += 1
        self.cluster.trace.add(
            self.cluster.now, f"n{leader.id} accepts conf change [{desc}] {cc.transition.name} at {index}/t{term}"
        )
        if new_id is not None:
            self.extra_nodes += 1
            node = self.cluster.add_node()
            assert node.id == new_id
        leader.process()

