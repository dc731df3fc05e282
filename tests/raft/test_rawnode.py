"""The Ready/advance contract of RawNode (rawnode.py's module docstring)."""

from __future__ import annotations

import random

import pytest

from qcore.raft import Config, ProposalDropped, RawNode
from qcore.raft.types import EntryType, HardState, MessageType

from .network import Network, addr


def single_node() -> RawNode:
    node = RawNode(Config(id=1), random.Random(1))
    node.bootstrap({1: addr(1)}, [b"init"])
    return node


def test_bootstrap_writes_term1_conf_then_data_entries() -> None:
    node = single_node()
    rd = node.ready()
    assert [(e.term, e.index, e.type) for e in rd.entries] == [
        (1, 1, EntryType.CONF_CHANGE),
        (1, 2, EntryType.NORMAL),
    ]
    assert rd.entries[1].data == b"init"
    # Only the configuration entry is committed by fiat; the data entries
    # commit with the first leader's entry.
    assert rd.hard_state == HardState(term=1, vote=0, commit=1)
    assert rd.must_sync
    # Not durable yet: nothing to apply.
    assert rd.committed_entries == []
    node.advance(rd)
    rd = node.ready()
    assert [e.index for e in rd.committed_entries] == [1]
    node.advance(rd)
    assert node.status().conf_state.voters == (1,)
    assert node.status().conf_state.addresses == {1: addr(1)}


def test_bootstrap_refused_on_non_empty_node() -> None:
    node = single_node()
    with pytest.raises(RuntimeError):
        node.bootstrap({1: addr(1)}, [])


def test_committed_entries_only_after_persist_single_node() -> None:
    node = single_node()
    while node.has_ready():
        node.advance(node.ready())
    node.campaign()
    rd = node.ready()
    assert rd.soft_state is not None and rd.soft_state.role == "Leader"
    # The leader's no-op is to be persisted; it is not committed before that.
    assert [e.data for e in rd.entries] == [b""]
    assert rd.committed_entries == []
    node.advance(rd)
    rd = node.ready()
    assert [e.index for e in rd.committed_entries] == [2, 3]
    node.advance(rd)
    term, index = node.propose(b"x")
    assert (term, index) == (2, 4)
    rd = node.ready()
    assert [e.data for e in rd.entries] == [b"x"] and rd.committed_entries == []
    node.advance(rd)
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert rd.hard_state is not None and rd.hard_state.commit == 4
    assert not rd.must_sync  # only the commit index changed
    node.advance(rd)
    assert not node.has_ready()


def test_ready_twice_without_advance_is_an_error() -> None:
    node = single_node()
    node.ready()
    assert not node.has_ready()
    with pytest.raises(RuntimeError):
        node.ready()


def test_follower_drops_proposal_naming_leader() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    with pytest.raises(ProposalDropped) as ei:
        net.nodes[2].propose(b"x")
    assert ei.value.leader_id == 1


def test_messages_wait_for_ready_and_vote_is_in_same_ready() -> None:
    net = Network([1, 2, 3])
    net.nodes[1].campaign()
    rd = net.nodes[1].ready()
    # With pre-vote, the first round does not change term or vote.
    assert {m.type for m in rd.messages} == {MessageType.PRE_VOTE}
    assert all(m.term == 2 for m in rd.messages)
    net.nodes[1].advance(rd)
    for m in rd.messages:
        net.nodes[m.to].step(m)
    for nid in (2, 3):
        rd2 = net.nodes[nid].ready()
        assert rd2.hard_state is None  # a pre-vote is not a vote
        for m in rd2.messages:
            net.nodes[1].step(m)
        net.nodes[nid].advance(rd2)
    rd = net.nodes[1].ready()
    # Now a real candidate: the term and self-vote travel in the same Ready
    # as the vote requests, and must be persisted before they are sent.
    assert rd.hard_state == HardState(term=2, vote=1, commit=1)
    assert rd.must_sync
    assert {m.type for m in rd.messages} == {MessageType.VOTE}
    net.nodes[1].advance(rd)


def test_status_of_leader_reports_progress_and_quorum_ack() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    st = net.status(1)
    assert st.role == "Leader" and st.leader_id == 1 and st.term == 2
    assert st.last_log_index == 3 and st.commit == 3 and st.applied == 3
    assert {n: p.match for n, p in st.progress.items()} == {1: 3, 2: 3, 3: 3}
    assert all(p.state == "replicate" for p in st.progress.values())
    assert st.ticks_since_quorum_ack == 0
    assert st.purged == 0
    net.isolate(2)
    net.isolate(3)
    net.tick_all(3)
    assert net.status(1).ticks_since_quorum_ack == 3
    assert net.status(2).ticks_since_quorum_ack is None
