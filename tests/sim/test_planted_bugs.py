"""The simulator must catch real bugs: plant one in the code, expect a failure.

Each test breaks one rule of Raft in the real core, or one ordering rule in
the node's runtime core (qcore.node.replica, which the simulator runs as a
real node does), monkeypatched for the test only, and runs seeds until the
simulator reports the expected kind of failure. A simulator whose checkers, crashes or partitions silently stopped
working would let these pass clean, and fail here.
"""

from __future__ import annotations

import pytest

from qcore.node import replica
from qcore.raft import Ready
from qcore.raft import core as raft_core
from qcore.raft import log as raft_log
from qcore.raft import quorum as raft_quorum
from qcore.raft import rawnode as raft_rawnode
from qcore.raft import tracker as raft_tracker
from qcore.raft.types import ConfState
from qcore.sim.runner import ExitCode, RunResult, run_seed

MAX_SEEDS = 150


def first_failure(nodes: int | None = 3, start: int = 0) -> RunResult | None:
    for seed in range(start, start + MAX_SEEDS):
        result = run_seed(seed, nodes=nodes)
        if not result.ok:
            return result
    return None


def test_granting_votes_to_stale_logs_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Election restriction (paper 5.4.1) removed: any candidate gets votes."""
    monkeypatch.setattr(raft_log.RaftLog, "is_up_to_date", lambda self, index, term: True)
    result = first_failure()
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert any(k in result.message for k in ("leader completeness", "committed entry lost", "state machine"))


def test_not_syncing_the_log_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ready.must_sync always False: votes and entries are acknowledged
    before they are durable, and crashes lose them."""
    real_ready = raft_rawnode.RawNode.ready

    def ready(self: raft_rawnode.RawNode) -> raft_rawnode.Ready:
        rd = real_ready(self)
        rd.must_sync = False
        return rd

    monkeypatch.setattr(raft_rawnode.RawNode, "ready", ready)
    result = first_failure()
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message


def test_reads_without_a_quorum_round_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """ReadIndex answered from the leader's commit index without confirming
    leadership: a deposed leader serves stale reads."""
    monkeypatch.setattr(
        raft_core.Raft, "_leader_read_index", lambda self, m: self._respond_read(m, self.log.committed)
    )
    result = first_failure()
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert "linearizable read" in result.message


def _send_before_persist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's runtime core sends every Ready's messages before its
    write, as only a leader's appends may go: a follower acknowledges
    entries and a voter grants its vote before they are durable."""
    real_order = replica.order

    def order(rd: Ready, leader: bool, durable_term_vote: tuple[int, int], clients_waiting: bool) -> replica.Order:
        right = real_order(rd, leader, durable_term_vote, clients_waiting)
        return replica.Order(True, right.send_first, right.apply_first)

    monkeypatch.setattr(replica, "order", order)


def test_sending_before_persisting_in_the_runtime_core_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    _send_before_persist(monkeypatch)
    result = first_failure()
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert "persist before send" in result.message


# Membership: the learner and removal paths. Any-size clusters from seed 0,
# whose seeds add and remove learners early.


def test_learners_counted_towards_the_commit_quorum_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader counts learners' acknowledgements as if they were voters'."""
    def committed(self: raft_tracker.ProgressTracker) -> int:
        acked = {nid: pr.match for nid, pr in self.progress.items()}
        voters = (*self.conf.voters, *self.conf.learners)
        return raft_quorum.joint_committed(voters, self.conf.voters_outgoing, acked)

    monkeypatch.setattr(raft_tracker.ProgressTracker, "committed", committed)
    result = first_failure(nodes=None)
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert "commit quorum" in result.message


def test_replicating_to_removed_nodes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new configuration keeps the progress of the members it removed, so
    the leader goes on sending them appends and heartbeats."""
    real_set_conf = raft_tracker.ProgressTracker.set_conf

    def set_conf(self: raft_tracker.ProgressTracker, conf: ConfState, next_index: int) -> None:
        old = dict(self.progress)
        real_set_conf(self, conf, next_index)
        for nid, pr in old.items():
            self.progress.setdefault(nid, pr)

    monkeypatch.setattr(raft_tracker.ProgressTracker, "set_conf", set_conf)
    result = first_failure(nodes=None)
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert "replication" in result.message


def test_a_learner_that_campaigns_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every member, learners included, may campaign."""
    monkeypatch.setattr(
        raft_core.Raft, "promotable", lambda self: self.id in self.trk.members() and self.log.pending_snapshot is None
    )
    result = first_failure(nodes=None)
    assert result is not None and result.code == ExitCode.SAFETY, result and result.message
    assert "not a voter" in result.message
