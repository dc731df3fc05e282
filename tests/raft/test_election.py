"""Leader election: Raft paper section 5.2 / 5.4.1, thesis 9.6 (pre-vote) and 6.2 (check-quorum, leader stickiness)."""

from __future__ import annotations

import random

from qcore.raft import Config, RawNode
from qcore.raft.types import Message, MessageType

from .network import Network, addr, network_from_logs

MT = MessageType


def test_follower_campaigns_after_randomized_election_timeout() -> None:
    """5.2: a follower that hears nothing for an election timeout starts an election."""
    net = Network([1, 2, 3], pre_vote=False)
    node = net.nodes[1]
    for _ in range(10 - 1):
        node.tick()
    assert net.status(1).role == "Follower"
    for _ in range(10):
        node.tick()
    st = net.status(1)
    assert st.role == "Candidate" and st.term == 2 and st.vote == 1
    rd = node.ready()
    assert sorted((m.to, m.type) for m in rd.messages) == [(2, MT.VOTE), (3, MT.VOTE)]
    node.advance(rd)


def test_election_timeouts_are_randomized_within_one_to_two_timeouts() -> None:
    """5.2: randomized timeouts in [et, 2*et) so that split votes are rare."""
    seen = set()
    for seed in range(30):
        node = RawNode(Config(id=1, election_tick=10, pre_vote=False), random.Random(seed))
        node.bootstrap({1: addr(1), 2: addr(2)}, [])
        while node.has_ready():
            node.advance(node.ready())
        ticks = 0
        while node.status().role == "Follower":
            node.tick()
            ticks += 1
        assert 10 <= ticks < 20
        seen.add(ticks)
    assert len(seen) > 3


def test_candidate_wins_with_majority_and_sends_appends() -> None:
    """5.2: a candidate that receives votes from a majority becomes leader."""
    net = Network([1, 2, 3, 4, 5])
    net.isolate(4)
    net.isolate(5)
    net.elect(1)
    assert net.leaders() == [1]
    assert all(net.status(n).leader_id == 1 for n in (1, 2, 3))


def test_candidate_without_majority_does_not_win() -> None:
    net = Network([1, 2, 3, 4, 5], pre_vote=False)
    net.isolate(1)
    net.nodes[1].campaign()
    net.stabilize()
    assert net.status(1).role == "Candidate"


def test_each_node_votes_at_most_once_per_term() -> None:
    """5.2: each server votes for at most one candidate in a given term, first come first served."""
    net = Network([1, 2, 3], pre_vote=False, check_quorum=False)
    net.nodes[1].campaign()
    net.nodes[2].campaign()
    net.process_all()
    # Node 3 gets 1's request first, then 2's, both at term 2.
    net.deliver(lambda m: m.to == 3 and m.frm == 1)
    net.deliver(lambda m: m.to == 3 and m.frm == 2)
    net.process(3)
    resps = [m for m in net.queue if m.frm == 3 and m.type == MT.VOTE_RESP]
    assert [(m.to, m.reject) for m in resps] == [(1, False), (2, True)]
    net.stabilize()
    assert net.leaders() == [1]


def test_vote_refused_to_candidate_with_less_up_to_date_log() -> None:
    """5.4.1: a voter denies its vote if its own log is more up to date than the candidate's."""
    # Node 1's last entry has term 2; node 2's log is longer but older (term 1).
    net = network_from_logs({1: (2, [2]), 2: (2, [1, 1, 1]), 3: (2, [1, 1, 1])}, pre_vote=False)
    net.nodes[2].campaign()
    net.process(2)
    net.deliver()
    net.process_all()
    answers = {m.frm: m.reject for m in net.queue if m.type == MT.VOTE_RESP}
    assert answers == {1: True, 3: False}
    net.stabilize()
    assert net.leaders() == [2]
    # Node 1's uncommitted term-2 entry is overwritten by the leader's log.
    assert [e.term for e in net.disks[1].entries] == [e.term for e in net.disks[2].entries]


def test_candidate_becomes_follower_on_append_from_leader_of_same_term() -> None:
    """5.2: a candidate that receives AppendEntries from a leader of its term returns to follower."""
    net = Network([1, 2, 3], pre_vote=False, check_quorum=False)
    net.isolate(3)
    net.elect(1)
    net.nodes[3].campaign()  # term 2 too, same as the leader's... then 3
    net.process(3)
    assert net.status(3).role == "Candidate"
    term = net.status(3).term
    app = Message(MT.APP, to=3, frm=1, term=term, index=1, log_term=1, commit=1)
    net.nodes[3].step(app)
    assert net.status(3).role == "Follower" and net.status(3).leader_id == 1


def test_leader_steps_down_on_higher_term() -> None:
    """5.1: a server that sees a higher term reverts to follower."""
    net = Network([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    assert net.status(1).role == "Leader"  # stale, cannot know yet
    net.heal()
    net.tick_all(1)
    assert net.leaders() == [2]
    assert net.status(1).term == net.status(2).term


def test_stale_term_request_is_answered_with_current_term() -> None:
    """5.1: a request with a stale term is rejected; the sender learns the current term."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[2].step(Message(MT.APP, to=2, frm=3, term=1, index=1, log_term=1))
    rd = net.nodes[2].ready()
    assert [(m.type, m.term, m.to) for m in rd.messages] == [(MT.APP_RESP, 2, 3)]
    net.nodes[2].advance(rd)


def test_prevote_keeps_rejoining_partitioned_node_from_disrupting() -> None:
    """Thesis 9.6: a node partitioned away cannot win a pre-vote, so its term
    does not grow and it does not depose the leader when it comes back."""
    net = Network([1, 2, 3], pre_vote=True, check_quorum=True)
    net.elect(1)
    net.isolate(3)
    net.tick_all(100)
    assert net.status(3).term == 2  # pre-votes never bumped the term
    assert net.status(3).role in ("PreCandidate", "Follower")
    net.heal()
    net.tick_all(20)
    assert net.leaders() == [1]
    assert all(net.status(n).term == 2 for n in (1, 2, 3))


def test_without_prevote_rejoining_node_disrupts_the_leader() -> None:
    """The contrast to the test above: without pre-vote the term races ahead."""
    net = Network([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.tick_all(100)
    assert net.status(3).term > 5
    net.heal()
    net.tick_all(40)
    assert net.status(1).term > 2  # the leader had to step down


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    """Thesis 6.2: a leader that hears no quorum within an election timeout steps down."""
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.isolate(1)
    net.tick(1, 9)
    net.process(1)
    assert net.status(1).role == "Leader"
    net.tick(1, 11)
    net.process(1)
    assert net.status(1).role == "Follower"
    # The majority side elects a new leader meanwhile.
    net.tick_all(30)
    assert len([n for n in net.leaders() if n != 1]) == 1


def test_leader_stickiness_ignores_votes_while_leader_is_alive() -> None:
    """Thesis 6.2/9.6: a follower that heard from a leader within the election
    timeout ignores vote requests, whatever their term..."""
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    vote = Message(MT.VOTE, to=2, frm=3, term=5, index=9, log_term=4)
    net.nodes[2].step(vote)
    assert net.status(2).term == 2 and net.status(2).vote == 1
    assert not net.nodes[2].has_ready()
    # ...unless the request is part of a leadership transfer.
    net.nodes[2].step(Message(MT.VOTE, to=2, frm=3, term=5, index=9, log_term=4, context=b"CampaignTransfer"))
    assert net.status(2).term == 5 and net.status(2).vote == 3
    # Once the election timeout passes without a leader, votes count again.
    net2 = Network([1, 2, 3], check_quorum=True)
    net2.elect(1)
    net2.isolate(1)
    net2.tick(2, 10)
    net2.nodes[2].step(vote)
    assert net2.status(2).term == 5


def test_learner_and_uninitialised_nodes_never_campaign() -> None:
    net = Network([1, 2, 3], learners=[4])
    net.add_node(5)  # knows nothing at all
    net.elect(1)
    net.change(1, (1, 4))  # ADD_LEARNER
    net.stabilize()
    assert net.status(4).role == "Learner"
    net.isolate(1)
    for _ in range(60):
        net.tick(4)
        net.tick(5)
        net.process_all()
    assert net.status(4).role == "Learner" and net.status(4).term == 2
    assert net.status(5).role == "Follower" and net.status(5).term == 0


def test_uninitialised_node_answers_votes() -> None:
    """A node named in Init but still empty votes, so the seed can be elected."""
    node = RawNode(Config(id=2), random.Random(0))
    node.step(Message(MT.VOTE, to=2, frm=1, term=2, index=1, log_term=1))
    rd = node.ready()
    assert [(m.type, m.reject) for m in rd.messages] == [(MT.VOTE_RESP, False)]
    assert rd.hard_state is not None and rd.hard_state.vote == 1


def test_split_vote_is_resolved_by_randomized_timeouts() -> None:
    for seed in range(5):
        net = Network([1, 2, 3, 4, 5], seed=seed, pre_vote=False)
        for _ in range(80):
            net.tick_all(1)
            if net.leaders():
                break
        assert len(net.leaders()) == 1
