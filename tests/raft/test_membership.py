"""Membership changes: Raft thesis chapter 4 (single-server changes 4.1,
joint consensus 4.3, learners 4.2.1, leader removal 4.2.2) - and the rule
that a configuration takes effect when its entry is applied."""

from __future__ import annotations

import pytest

from qcore.raft import ConfChangeRejected, ProposalDropped
from qcore.raft.types import ConfChange, ConfChangeTransition, ConfChangeType, MessageType

from .network import Network, addr

ADD = ConfChangeType.ADD_NODE
LEARN = ConfChangeType.ADD_LEARNER
REMOVE = ConfChangeType.REMOVE_NODE
MT = MessageType


def conf(net: Network, nid: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    cs = net.status(nid).conf_state
    return cs.voters, cs.voters_outgoing, cs.learners


def test_add_learner_replicates_but_never_votes_or_counts() -> None:
    """4.2.1: a learner receives the log but is not part of any majority."""
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.tick_all(2)
    assert conf(net, 1) == ((1, 2, 3), (), (4,))
    assert conf(net, 4) == ((1, 2, 3), (), (4,))
    assert net.status(4).conf_state.addresses[4] == addr(4)
    assert net.status(1).progress[4].is_learner
    net.propose(1, b"x")
    assert net.machines[4].data == [b"x"]
    # With 2 and 3 gone, 1 + learner 4 is no majority.
    net.isolate(2)
    net.isolate(3)
    _, idx = net.propose(1, b"y")
    assert net.status(1).commit < idx


def test_learner_vote_does_not_count() -> None:
    """4.2.1: a learner is not part of any majority: a candidate that can
    reach only a learner neither asks it nor wins."""
    net = Network([1, 2, 3], pre_vote=False)
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.partition([1, 3], [2, 4])  # 2 can only reach learner 4
    net.tick_all(40)
    assert net.status(2).role == "Candidate"
    assert not any(m.type == MT.VOTE and m.to == 4 for m in net.sent)


def test_promote_learner_with_a_simple_change() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.change(1, (ADD, 4))
    net.stabilize()
    assert all(conf(net, n) == ((1, 2, 3, 4), (), ()) for n in (1, 2, 3, 4))
    assert net.status(4).role == "Follower"
    # Now 4 counts: with 2 and 3 gone, {1, 4} is still no majority of 4, but
    # with only 3 gone, {1, 2, 4} is.
    net.isolate(3)
    _, idx = net.propose(1, b"x")
    assert net.status(1).commit == idx


def test_second_change_refused_while_one_is_pending() -> None:
    net = Network([1, 2, 3], check_quorum=False)
    net.add_node(4)
    net.add_node(5)
    net.elect(1)
    net.isolate(2)
    net.isolate(3)  # the first change cannot commit
    net.change(1, (LEARN, 4))
    net.process_all()
    with pytest.raises(ConfChangeRejected):
        net.change(1, (LEARN, 5))
    net.heal()
    net.tick_all(2)
    net.change(1, (LEARN, 5))  # fine once the first is applied


def test_invalid_changes_are_rejected_up_front() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    with pytest.raises(ConfChangeRejected):
        net.change(1, (REMOVE, 9))  # not a member
    with pytest.raises(ConfChangeRejected):
        net.change(1, (REMOVE, 1), (REMOVE, 2), (REMOVE, 3))  # no voters left
    with pytest.raises(ConfChangeRejected):
        net.nodes[1].propose_conf_change(ConfChange())  # "leave joint" outside a joint configuration
    with pytest.raises(ProposalDropped):
        net.change(2, (LEARN, 4))  # not the leader


def test_joint_consensus_replaces_all_voters_and_leaves_automatically() -> None:
    """4.3: C_old -> C_old,new -> C_new; the leader proposes the leave entry itself."""
    net = Network([1, 2, 3])
    for n in (4, 5, 6):
        net.add_node(n)
    net.elect(1)
    for n in (4, 5, 6):
        net.change(1, (LEARN, n))
        net.stabilize()
    net.change(1, (ADD, 4), (ADD, 5), (ADD, 6), (REMOVE, 2), (REMOVE, 3))
    # Step by step: after the joint entry is applied, the configuration is joint.
    seen_joint = False
    for _ in range(50):
        net.process_all()
        if net.status(1).conf_state.voters_outgoing:
            seen_joint = True
            assert net.status(1).conf_state.voters == (1, 4, 5, 6)
            assert net.status(1).conf_state.voters_outgoing == (1, 2, 3)
        if not net.queue:
            break
        net.deliver()
    assert seen_joint
    net.tick_all(2)
    for n in (1, 4, 5, 6):
        assert conf(net, n) == ((1, 4, 5, 6), (), ()), n
    assert 2 not in net.status(1).conf_state.addresses
    # The old members are gone: C_new alone commits.
    net.isolate(2)
    net.isolate(3)
    _, idx = net.propose(1, b"x")
    assert all(net.status(n).commit >= idx for n in (1, 4, 5, 6))


def test_joint_configuration_needs_both_majorities() -> None:
    """4.3: in C_old,new, agreement requires separate majorities from both."""
    net = Network([1, 2, 3], check_quorum=False)
    for n in (4, 5):
        net.add_node(n)
    net.elect(1)
    for n in (4, 5):
        net.change(1, (LEARN, n))
        net.stabilize()
    net.change(1, (ADD, 4), (ADD, 5), (REMOVE, 2), (REMOVE, 3), transition=ConfChangeTransition.JOINT_EXPLICIT)
    net.stabilize()
    net.tick_all(2)
    assert conf(net, 1) == ((1, 4, 5), (1, 2, 3), ())  # explicit: stays joint
    # C_new = {1,4,5} has its majority, C_old = {1,2,3} has not.
    net.isolate(2)
    net.isolate(3)
    _, idx = net.propose(1, b"x")
    assert net.status(1).commit < idx
    net.heal()
    net.tick_all(2)
    assert net.status(1).commit >= idx
    # Leaving an explicit joint configuration: an empty change.
    net.nodes[1].propose_conf_change(ConfChange())
    net.stabilize()
    net.tick_all(2)
    assert conf(net, 1) == ((1, 4, 5), (), ())


def test_demoting_a_voter_passes_through_learners_next() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.change(1, (ADD, 4), (LEARN, 3))
    seen = False
    for _ in range(50):
        net.process_all()
        cs = net.status(1).conf_state
        if cs.voters_outgoing:
            assert cs.learners_next == (3,)
            seen = True
        if not net.queue:
            break
        net.deliver()
    assert seen
    net.tick_all(2)
    assert conf(net, 3) == ((1, 2, 4), (), (3,))
    assert net.status(3).role == "Learner"


def test_remove_follower() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.change(1, (REMOVE, 3))
    net.stabilize()
    assert conf(net, 1) == ((1, 2), (), ())
    assert 3 not in net.status(1).progress
    net.isolate(3)
    _, idx = net.propose(1, b"x")
    assert net.status(1).commit == idx


def test_removed_leader_steps_down_after_change_is_applied() -> None:
    """4.2.2: the leader may be removed; it steps down once C_new is
    committed, and the remaining servers elect a leader among themselves."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"before")
    net.change(1, (REMOVE, 1))
    steps = 0
    while net.status(1).role == "Leader" and steps < 20:
        net.process_all()
        net.deliver()
        steps += 1
    assert net.status(1).role == "Follower"
    net.stabilize()
    # Leadership was handed over at once (TIMEOUT_NOW) to an up-to-date voter.
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in (2, 3)
    new = leaders[0]
    assert conf(net, new) == ((2, 3), (), ())
    # The removed node never campaigns again.
    for _ in range(50):
        net.tick(1)
        net.process(1)
    assert net.status(1).role == "Follower"
    net.queue.clear()
    net.isolate(1)
    net.propose(new, b"after")
    for n in (2, 3):
        assert net.machines[n].data == [b"before", b"after"]


def test_removed_leader_refuses_proposals() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.change(1, (REMOVE, 1))
    net.stabilize()
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"x")


def test_replace_leader_via_joint_consensus() -> None:
    """Removing the leader as part of a joint change (move {1,2,3} -> {2,3,4})."""
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.change(1, (ADD, 4), (REMOVE, 1))
    net.stabilize()
    net.tick_all(30)
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] in (2, 3, 4)
    assert conf(net, leaders[0]) == ((2, 3, 4), (), ())
    net.propose(leaders[0], b"x")
    assert all(net.machines[n].data == [b"x"] for n in (2, 3, 4))


def test_new_node_joins_from_seed_node_bootstrap() -> None:
    """Init with several nodes: only the seed has the log; the others join
    when the elected seed contacts them."""
    net = Network([1, 2, 3], bootstrap=False)
    net.nodes[1].bootstrap({n: addr(n) for n in (1, 2, 3)}, [b"i1", b"i2"])
    net.stabilize()
    net.tick_all(30)
    assert net.leaders() == [1]
    for n in (1, 2, 3):
        assert net.machines[n].data == [b"i1", b"i2"]
        assert conf(net, n) == ((1, 2, 3), (), ())


def test_configuration_is_restored_from_log_on_restart() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    net.change(1, (LEARN, 4))
    net.stabilize()
    net.restart(2)
    assert conf(net, 2) == ((1, 2, 3), (), (4,))


def test_remaining_voter_learns_commit_of_its_removal_change_from_vote_answer() -> None:
    """{1,2} -> {2} by joint consensus, leader 1 removed. Node 2 has the leave
    entry but never hears that it committed, and 1 has a longer log (an entry
    proposed before it applied its removal), so 1 refuses 2's votes. 1's
    rejection carries its commit index: 2, whose log matches there, commits
    and applies the change, and then needs nobody's vote but its own."""
    net = Network([1, 2], pre_vote=True, check_quorum=True)
    net.elect(1)
    net.change(1, (REMOVE, 1), transition=ConfChangeTransition.JOINT_IMPLICIT)
    # Run until leader 1 has appended the leave entry (index 4)...
    for _ in range(40):
        net.process_all()
        if net.status(1).last_log_index == 4:
            break
        net.deliver()
    assert net.status(1).last_log_index == 4
    net.nodes[1].propose(b"late")  # ...then index 5, which 2 will never get.
    # 2 gets the leave entry, but nothing that says it committed, nor index 5.
    net.drop_if = lambda m: m.frm == 1 and (m.commit >= 4 or any(e.index == 5 for e in m.entries))
    net.stabilize()
    assert net.status(1).role == "Follower" and net.status(1).commit >= 4
    assert net.status(1).last_log_index == 5
    assert net.status(2).last_log_index == 4 and net.status(2).commit < 4
    assert net.status(2).conf_state.voters_outgoing == (1, 2)
    net.heal()
    net.queue.clear()
    net.tick_all(60)
    assert net.leaders() == [2]
    assert net.status(2).conf_state.voters == (2,) and not net.status(2).conf_state.voters_outgoing
