"""Early campaign when the link to the leader goes down (LINK_DOWN, `Config.link_down_tick`).

A crashed leader's connections close at once; its followers need not wait an
election timeout. Pre-vote and check-quorum (thesis 9.6, 6.2) must still keep
a follower whose link merely flapped from deposing a leader the others hear.
"""

from __future__ import annotations

import pytest

from qcore.raft.types import MessageType

from .network import Network

MT = MessageType

ELECTION = 20  # election timeout [20, 40) ticks: well apart from link_down_tick's [1, 2]


def _cluster(ids: list[int], **cfg: object) -> Network:
    net = Network(ids, election_tick=ELECTION, **cfg)
    net.elect(1)
    return net


def _tick_until_leader(net: Network, among: list[int], limit: int) -> int:
    """Tick `among` one tick at a time, delivering everything between ticks;
    the number of ticks until one of them leads."""
    for ticks in range(1, limit + 1):
        for nid in among:
            net.nodes[nid].tick()
        net.stabilize()
        leaders = [n for n in net.leaders() if n in among]
        if leaders:
            return ticks
    raise AssertionError(f"no leader among {among} within {limit} ticks")


@pytest.mark.parametrize("seed", range(20))
def test_followers_elect_a_new_leader_within_a_few_ticks_of_losing_its_link(seed: int) -> None:
    """The leader crashes (its links drop): a follower leads within a few ticks,
    not an election timeout, without a second term lost to a split vote most of the time."""
    net = Network([1, 2, 3], election_tick=ELECTION, seed=seed)
    net.elect(1)
    net.isolate(1)
    for nid in (2, 3):
        net.nodes[nid].report_link_down(1)
    ticks = _tick_until_leader(net, [2, 3], ELECTION)
    assert ticks < ELECTION
    st = net.status(net.leaders()[-1])
    assert st.term >= 3
    # A fresh entry commits under the new leader (the old one cannot answer).
    leader = [n for n in net.leaders() if n != 1][0]
    net.propose(leader, b"after")
    assert net.status(leader).commit == net.status(leader).last_log_index


def test_five_nodes_elect_early_when_every_follower_lost_the_leader() -> None:
    net = _cluster([1, 2, 3, 4, 5])
    net.isolate(1)
    for nid in (2, 3, 4, 5):
        net.nodes[nid].report_link_down(1)
    assert _tick_until_leader(net, [2, 3, 4, 5], ELECTION) <= 6


def test_a_flapping_link_does_not_depose_a_leader_the_others_hear() -> None:
    """One follower's link to the leader drops and the leader stays silent to it
    (say its heartbeats are held up): it pre-votes, the others still hear the
    leader and ignore it (leader stickiness), and nothing changes."""
    net = _cluster([1, 2, 3])
    net.sent.clear()
    net.cut.add((1, 3))  # 3 hears nothing from the leader for now
    net.nodes[3].report_link_down(1)
    for _ in range(3):
        net.nodes[3].tick()
    net.stabilize()
    st3 = net.status(3)
    assert st3.role == "PreCandidate" and st3.term == 2
    assert any(m.type == MT.PRE_VOTE and m.frm == 3 for m in net.sent)
    assert not any(m.type == MT.PRE_VOTE_RESP and m.to == 3 and not m.reject for m in net.sent)
    # The leader's next heartbeat brings 3 back; the leader never noticed.
    net.heal()
    for _ in range(2):
        net.nodes[1].tick()
    net.stabilize()
    assert net.leaders() == [1] and net.status(1).term == 2
    assert net.status(3).role == "Follower" and net.status(3).leader_id == 1


def test_a_word_from_the_leader_cancels_the_early_campaign() -> None:
    """The link flapped but the leader's heartbeat arrives before the grace runs out."""
    net = _cluster([1, 2, 3])
    net.sent.clear()
    net.nodes[2].report_link_down(1)
    net.nodes[1].tick()  # heartbeat_tick = 1: a heartbeat round
    net.stabilize()
    for _ in range(3 * ELECTION // 4):
        net.nodes[2].tick()
    net.stabilize()
    assert net.status(2).role == "Follower" and net.status(2).term == 2
    assert not any(m.type == MT.PRE_VOTE for m in net.sent)


def test_a_peer_other_than_the_leader_going_down_changes_nothing() -> None:
    net = _cluster([1, 2, 3])
    net.sent.clear()
    net.nodes[2].report_link_down(3)
    for _ in range(ELECTION - 1):
        net.nodes[2].tick()
    net.stabilize()
    assert net.status(2).role == "Follower"
    assert not any(m.type == MT.PRE_VOTE for m in net.sent)


@pytest.mark.parametrize(
    "cfg", [{"pre_vote": False}, {"check_quorum": False}, {"link_down_tick": 0}],
    ids=["no-pre-vote", "no-check-quorum", "off"],
)
def test_off_without_pre_vote_and_check_quorum(cfg: dict[str, object]) -> None:
    """Without both guards an early campaign could depose a healthy leader:
    the report is ignored and the follower waits an election timeout."""
    net = _cluster([1, 2, 3], **cfg)
    net.isolate(1)
    net.nodes[2].report_link_down(1)
    net.nodes[3].report_link_down(1)
    for _ in range(ELECTION - 1):
        net.nodes[2].tick()
        net.nodes[3].tick()
    net.stabilize()
    assert net.status(2).role == net.status(3).role == "Follower"


def test_followers_campaigning_at_once_do_not_split_the_vote() -> None:
    """Both followers' timers run out before either hears of the other: each
    grants the other's pre-vote, and the higher id gives way, so the lower id
    becomes the one candidate (no term lost to a split vote)."""
    net = _cluster([1, 2, 3])
    net.isolate(1)
    for nid in (2, 3):
        net.nodes[nid].report_link_down(1)
    for _ in range(2):  # both timers ([1, 2] ticks) run out
        net.nodes[2].tick()
        net.nodes[3].tick()
    assert net.status(2).role == net.status(3).role == "PreCandidate"
    net.stabilize()
    assert net.leaders() == [1, 2]  # 1 is cut off and still thinks it leads
    assert net.status(2).term == 3 and net.status(3).role == "Follower" and net.status(3).leader_id == 2


def _split_vote(net: Network) -> None:
    """Five nodes, leader 1 gone; 2 and 3 campaign without hearing of each
    other, both win their pre-votes, then 4 votes for 2 and 5 for 3."""
    net.isolate(1)
    for nid in (2, 3, 4, 5):
        net.nodes[nid].report_link_down(1)
    net.cut |= {(2, 3), (3, 2)}
    net.drop_if = lambda m: m.type == MT.VOTE and (m.frm, m.to) in ((2, 5), (3, 4))
    for _ in range(2):
        net.nodes[2].tick()
        net.nodes[3].tick()
    net.stabilize()
    assert net.status(2).role == net.status(3).role == "Candidate"
    assert net.status(2).term == net.status(3).term == 3
    net.heal()
    net.isolate(1)


def test_a_split_vote_after_losing_the_leader_is_retried_fast() -> None:
    """The campaign began with a lost link, so a split vote is retried after
    [1, 2] ticks, not an election timeout."""
    net = _cluster([1, 2, 3, 4, 5])
    _split_vote(net)
    assert _tick_until_leader(net, [2, 3], 2 * 2) <= 4
    assert max(net.status(n).term for n in (2, 3)) == 4


def test_a_fast_pre_vote_that_goes_unanswered_falls_back_to_the_election_timeout() -> None:
    """The follower that lost its link is cut off from everyone: it pre-votes
    once early, then only at the normal pace (no flood of pre-votes)."""
    net = _cluster([1, 2, 3])
    net.isolate(3)
    net.nodes[3].report_link_down(1)
    for _ in range(4 * ELECTION):
        net.nodes[3].tick()
        net.stabilize()
    rounds = sum(1 for m in net.sent if m.type == MT.PRE_VOTE and m.frm == 3 and m.to == 1)
    assert 2 <= rounds <= 5  # one early, then one per election timeout [20, 40)
    assert net.status(3).term == 2


def test_a_follower_that_lost_the_leader_too_grants_the_first_early_pre_vote() -> None:
    """Followers that lost their link to the leader stop vouching for it (leader
    stickiness): the first of them to campaign wins, the others need not have
    campaigned as well."""
    net = _cluster([1, 2, 3])
    net.isolate(1)
    net.nodes[2].report_link_down(1)
    net.nodes[3].report_link_down(1)
    assert _tick_until_leader(net, [2], 3) <= 3  # 3 never ticks: its vote alone elects 2
    assert net.status(3).role == "Follower" and net.status(3).leader_id == 2


def test_fast_retries_stop_once_a_pre_vote_goes_unanswered() -> None:
    """After a split vote, a candidate cut off from everyone retries fast once,
    then at the normal pace: a pre-vote that is not answered ends the fast mode."""
    net = _cluster([1, 2, 3, 4, 5])
    _split_vote(net)
    for other in (2, 4, 5):
        net.isolate(other)
    net.sent.clear()
    for _ in range(4 * ELECTION):
        net.nodes[3].tick()
        net.stabilize()
    rounds = sum(1 for m in net.sent if m.type == MT.PRE_VOTE and m.frm == 3 and m.to == 2)
    assert 2 <= rounds <= 6  # two short timeouts, then one per election timeout [20, 40)
