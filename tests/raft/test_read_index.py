"""ReadIndex linearizable reads: Raft thesis section 6.4 (and 6.4.1 batching)."""

from __future__ import annotations

from qcore.raft.types import MessageType

from .network import Network

MT = MessageType


def test_leader_read_index_after_quorum_heartbeat_round() -> None:
    """6.4 steps 1-4: record the commit index, confirm leadership with a
    heartbeat round acknowledged by a majority, then answer with that index."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    commit = net.status(1).commit
    net.nodes[1].read_index(b"r1")
    net.process(1)
    assert net.read_states[1] == []  # not before the round
    hbs = [m for m in net.queue if m.type == MT.HEARTBEAT]
    assert sorted(m.to for m in hbs) == [2, 3] and all(m.context for m in hbs)
    net.stabilize()
    [rs] = net.read_states[1]
    assert (rs.index, rs.request_ctx) == (commit, b"r1")


def test_read_index_not_served_without_quorum() -> None:
    net = Network([1, 2, 3], check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.nodes[1].read_index(b"r")
    net.tick_all(5)
    assert net.read_states[1] == []
    net.heal()
    net.tick_all(1)
    assert [rs.request_ctx for rs in net.read_states[1]] == [b"r"]


def test_deposed_leader_serves_no_reads() -> None:
    """A leader cut off from the majority must not answer reads: the other side may have moved on."""
    net = Network([1, 2, 3], check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.propose(2, b"newer")
    net.nodes[1].read_index(b"stale?")
    net.tick_all(5)
    assert net.read_states[1] == []


def test_reads_are_batched_into_one_round() -> None:
    """6.4.1: many reads that arrive together share one heartbeat round;
    reads arriving while a round is in flight share the next one."""
    net = Network([1, 2, 3, 4, 5])
    net.elect(1)
    net.sent.clear()
    for i in range(50):
        net.nodes[1].read_index(b"a%d" % i)
    net.process(1)
    for i in range(50):  # arrive while the first round is in flight
        net.nodes[1].read_index(b"b%d" % i)
    net.stabilize()
    rounds = {m.context for m in net.sent if m.type == MT.HEARTBEAT}
    assert len(rounds) == 2  # not 100
    ctxs = [rs.request_ctx for rs in net.read_states[1]]
    assert ctxs == [b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)]


def test_follower_read_index_is_forwarded_to_leader() -> None:
    """6.4: a follower asks the leader for the read index, then serves the
    read itself once it has applied up to that index."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    net.nodes[3].read_index(b"f")
    net.stabilize()
    [rs] = net.read_states[3]
    assert rs.request_ctx == b"f" and rs.index == net.status(1).commit
    assert any(m.type == MT.READ_INDEX_RESP and m.to == 3 for m in net.sent)
    assert net.read_states[1] == []


def test_follower_without_leader_drops_read() -> None:
    net = Network([1, 2, 3])
    net.nodes[2].read_index(b"x")
    net.stabilize()
    assert net.read_states[2] == []


def test_new_leader_waits_for_own_term_commit_before_reads() -> None:
    """6.4 step 1: a new leader's commit index may be stale until it commits
    an entry of its own term, so reads wait for that."""
    net = Network([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.restart(1)
    net.drop_types.add(MT.APP)  # the new leader's entries do not reach anyone
    net.nodes[1].campaign()
    net.stabilize()
    assert net.status(1).role == "Leader" and net.status(1).term == 3
    net.nodes[1].read_index(b"r")
    net.tick_all(2)
    assert net.read_states[1] == []
    net.heal()
    net.tick_all(2)
    assert [rs.request_ctx for rs in net.read_states[1]] == [b"r"]
    assert net.read_states[1][0].index == net.status(1).commit


def test_single_node_read_index() -> None:
    net = Network([1])
    net.elect(1)
    net.nodes[1].read_index(b"s")
    net.process(1)
    assert [rs.request_ctx for rs in net.read_states[1]] == [b"s"]


def test_lost_heartbeats_repaired_by_next_round() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.drop_types.add(MT.HEARTBEAT_RESP)
    net.nodes[1].read_index(b"r")
    net.stabilize()
    assert net.read_states[1] == []
    net.heal()
    net.tick_all(1)  # the next heartbeat carries the round again
    assert [rs.request_ctx for rs in net.read_states[1]] == [b"r"]
