"""Leadership transfer: Raft thesis section 3.10."""

from __future__ import annotations

import pytest

from qcore.raft import ProposalDropped
from qcore.raft.types import ConfChangeType, MessageType

from .network import Network

MT = MessageType


def test_transfer_to_up_to_date_follower() -> None:
    """3.10: the leader sends TimeoutNow; the target campaigns at once and wins."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    net.nodes[1].transfer_leader(2)
    net.stabilize()
    assert net.leaders() == [2]
    assert net.status(2).term == 3
    assert any(m.type == MT.TIMEOUT_NOW and m.to == 2 for m in net.sent)
    net.propose(2, b"b")
    assert all(net.machines[n].data == [b"a", b"b"] for n in (1, 2, 3))


def test_transfer_to_lagging_follower_catches_it_up_first() -> None:
    """3.10 step 2: the leader brings the target's log up to date before TimeoutNow."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"%d" % i)
    net.heal()
    net.nodes[1].transfer_leader(3)
    net.stabilize()
    net.tick_all(2)
    assert net.leaders() == [3]
    assert net.machines[3].data == [b"%d" % i for i in range(5)]


def test_proposals_refused_during_transfer_and_accepted_after_abort() -> None:
    """3.10 step 1: the leader stops accepting requests while transferring;
    a transfer that does not finish within an election timeout is aborted."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"a")  # 3 lags and cannot be reached
    net.nodes[1].transfer_leader(3)
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"b")
    net.tick_all(10)
    assert net.leaders() == [1]
    assert net.status(1).lead_transferee == 0
    net.propose(1, b"c")
    assert net.machines[2].data == [b"a", b"c"]


def test_transfer_request_on_follower_is_forwarded() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[3].transfer_leader(3)
    net.stabilize()
    assert net.leaders() == [3]


def test_transfer_to_learner_or_self_is_ignored() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    net.nodes[1].transfer_leader(4)
    net.nodes[1].transfer_leader(1)
    net.stabilize()
    assert net.leaders() == [1]
    assert net.status(1).lead_transferee == 0
    net.propose(1, b"ok")


def test_transfer_passes_leader_stickiness_with_check_quorum() -> None:
    """The voters heard from the leader recently, yet grant the transferee's vote."""
    net = Network([1, 2, 3], check_quorum=True, pre_vote=True)
    net.elect(1)
    net.tick_all(1)
    net.nodes[1].transfer_leader(2)
    net.stabilize()
    assert net.leaders() == [2]
