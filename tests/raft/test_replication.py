"""Log replication and commitment: Raft paper sections 5.3 and 5.4 (Figures 7 and 8)."""

from __future__ import annotations

import pytest

from qcore.raft.types import Message, MessageType

from .network import Network, network_from_logs

MT = MessageType


def terms(net: Network, nid: int) -> list[int]:
    return [e.term for e in net.disks[nid].entries]


def test_leader_replicates_and_commits_on_majority() -> None:
    """5.3: an entry is committed once the leader has replicated it on a majority."""
    net = Network([1, 2, 3, 4, 5])
    net.elect(1)
    net.isolate(4)
    net.isolate(5)
    term, index = net.propose(1, b"x")
    for n in (1, 2, 3):
        assert net.status(n).commit == index
        assert net.machines[n].data == [b"x"]
    assert net.machines[4].data == [] and net.machines[5].data == []
    # The lagging followers catch up once they can be reached.
    net.heal()
    net.tick_all(2)
    for n in (4, 5):
        assert net.machines[n].data == [b"x"]


def test_no_commit_without_majority() -> None:
    net = Network([1, 2, 3, 4, 5], check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.isolate(4)
    net.isolate(5)
    _, index = net.propose(1, b"x")
    net.tick_all(5)
    assert net.status(1).commit < index
    assert net.machines[1].data == []
    net.heal()
    net.tick_all(2)
    assert net.status(1).commit == index


def test_follower_accepts_append_only_if_previous_entry_matches() -> None:
    """5.3 (consistency check): reject when (prevLogIndex, prevLogTerm) is not in the log."""
    net = Network([1, 2])
    node = net.nodes[2]
    node.step(Message(MT.APP, to=2, frm=1, term=2, index=1, log_term=2, commit=1))
    rd = node.ready()
    [resp] = rd.messages
    assert resp.type == MT.APP_RESP and resp.reject and resp.index == 1
    # The hint: our last (index, term) with term <= 2 at or before index 1.
    assert (resp.reject_hint, resp.log_term) == (1, 1)
    node.advance(rd)


def test_a_follower_behind_reports_the_commit_its_leader_told_it() -> None:
    """Our commit stops at our last index; the leader's (past it) shows in status
    only, so that a restarted follower knows it is catching up (/ready)."""
    net = Network([1, 2])
    node = net.nodes[2]
    node.step(Message(MT.APP, to=2, frm=1, term=2, index=40, log_term=2, commit=50))
    node.advance(node.ready())
    st = node.status()
    assert (st.commit, st.last_log_index, st.leader_commit) == (1, 1, 50)
    # A heartbeat says it too (in `index`: its `commit` stops at what we are known to have).
    node.step(Message(MT.HEARTBEAT, to=2, frm=1, term=2, index=60, commit=1))
    node.advance(node.ready())
    assert (node.status().commit, node.status().leader_commit) == (1, 60)


# Figure 7: the leader (term 8) and six possible follower logs (a-f).
FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIG7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("name", sorted(FIG7_FOLLOWERS))
def test_leader_repairs_follower_log_figure7(name: str) -> None:
    """5.3 / Figure 7: whatever the follower's log, the leader makes it equal
    to its own, deleting extraneous entries and filling in missing ones."""
    # Node 3 has the leader's log too, so node 1 can win an election.
    net = network_from_logs(
        {1: (7, FIG7_LEADER), 2: (7, FIG7_FOLLOWERS[name]), 3: (7, FIG7_LEADER)}, pre_vote=False
    )
    net.isolate(2)
    net.elect(1)
    assert net.status(1).term == 8
    net.heal()
    net.tick_all(3)
    leader_log = terms(net, 1)
    assert leader_log == [1] + FIG7_LEADER + [8]
    assert terms(net, 2) == leader_log
    assert net.status(2).commit == len(leader_log)


def test_fast_backoff_skips_whole_terms() -> None:
    """5.3 (optimisation): with the conflicting term in the rejection, the
    leader needs about one round trip per term, not one per entry."""
    net = network_from_logs(
        {1: (7, FIG7_LEADER), 2: (7, FIG7_FOLLOWERS["f"]), 3: (7, FIG7_LEADER)}, pre_vote=False
    )
    net.isolate(2)
    net.elect(1)
    net.heal()
    net.sent.clear()
    net.tick_all(3)
    rejects = [m for m in net.sent if m.type == MT.APP_RESP and m.frm == 2 and m.reject]
    assert 1 <= len(rejects) <= 3  # f diverges in terms 2 and 3 over 8 entries
    assert terms(net, 2) == terms(net, 1)


def test_figure8_leader_does_not_commit_old_term_entry_by_counting() -> None:
    """5.4.2 / Figure 8: an entry from an earlier term on a majority is not
    committed by counting; it could still be overwritten."""
    net = Network([1, 2, 3, 4, 5], pre_vote=False, check_quorum=False, max_size_per_msg=1)
    # (a) S1 leads term 2 and replicates index 3 only to S2.
    net.elect(1)  # index 2: S1's no-op, committed everywhere
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"from-term-2")  # index 3, term 2, on S1 and S2
    assert terms(net, 1) == terms(net, 2) == [1, 2, 2]
    # (b) S5 is elected for term 3 by S3, S4 and itself; appends index 3 (its no-op).
    net.drop_if = lambda m: m.frm == 5 and m.type in (MT.APP, MT.HEARTBEAT)  # S5's appends do not get out
    net.nodes[5].campaign()
    net.stabilize()
    assert net.status(5).role == "Leader" and net.status(5).term == 3
    assert terms(net, 5) == [1, 2, 3]
    # (c) S5 crashes; S1 is elected for term 4 (S1, S2, S3) and replicates
    # index 3 (term 2) to S3: now on a majority, but not committed...
    net.heal()
    net.isolate(5)
    net.cut |= {(1, 4), (4, 1)}
    # S1's own term-4 entries do not reach anyone: cut them off the appends
    # (what is left is a valid, shorter append).
    def strip_term4(m: Message) -> bool:
        if m.type == MT.APP:
            m.entries = [e for e in m.entries if e.term != 4]
        return False

    net.drop_if = strip_term4
    net.restart(1)  # S1 crashed too, and comes back
    while net.status(1).role != "Leader":
        net.nodes[1].campaign()  # term 3 is split (S3 voted for S5); term 4 wins
        net.stabilize()
    assert net.status(1).term == 4
    assert terms(net, 3)[:3] == [1, 2, 2]
    assert net.status(1).progress[3].match >= 3
    assert net.status(1).commit == 2, "term-2 entry must not be committed by counting"
    assert all(3 not in net.machines[n].log for n in net.nodes)
    # (d) ...because S5 could still be elected (by S2, S3, S4: its last term
    # 3 beats their 2) and overwrite it. Simulate S1 crashing now.
    net.queue.clear()
    net.heal()
    net.isolate(1)
    net.restart(5)
    while net.status(5).role != "Leader":
        net.nodes[5].campaign()
        net.stabilize()
    for n in (2, 3, 4, 5):
        assert terms(net, n)[2] == 3  # index 3 now holds S5's term-3 entry
    assert net.machines[2].log[3][0] == 3


def test_figure8_entry_commits_with_current_term_entry() -> None:
    """5.4.2 / Figure 8 (e): once an entry of the leader's own term is
    committed, the earlier entries before it are committed too."""
    net = Network([1, 2, 3, 4, 5], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"old")
    net.heal()
    net.isolate(5)
    net.restart(1)  # S1 crashes before "old" spreads, and is re-elected
    net.elect(1)  # term 3: its no-op carries "old" along and commits it
    assert net.status(1).commit == 4
    for n in (1, 2, 3, 4):
        assert net.machines[n].data == [b"old"]


def test_batching_many_entries_per_message_with_byte_cap() -> None:
    net = Network([1, 2, 3], max_size_per_msg=300)
    net.elect(1)
    net.sent.clear()
    leader = net.nodes[1]
    for i in range(20):
        leader.propose(bytes(50) + bytes([i]))
    net.stabilize()
    apps = [m for m in net.sent if m.type == MT.APP and m.to == 2 and m.entries]
    # Proposals made back to back travel together, up to the byte cap.
    assert sum(len(m.entries) for m in apps) == 20
    assert 1 < max(len(m.entries) for m in apps) and len(apps) < 20
    assert all(sum(len(e.data) + 24 for e in m.entries) <= 300 for m in apps)
    # And a lagging follower is caught up in capped batches too.
    net.isolate(3)
    for i in range(20):
        leader.propose(bytes(50) + bytes([i]))
    net.stabilize()
    net.heal()
    net.sent.clear()
    net.tick_all(3)
    apps = [m for m in net.sent if m.type == MT.APP and m.to == 3 and m.entries]
    sizes = [sum(len(e.data) + 24 for e in m.entries) for m in apps]
    assert max(len(m.entries) for m in apps) > 1  # batched
    assert all(s <= 300 for s in sizes)  # capped
    assert net.machines[3].data == net.machines[1].data


def test_pipelining_bounded_by_inflight_window() -> None:
    """Replicate state streams up to max_inflight_msgs unacknowledged APPs."""
    net = Network([1, 2, 3], max_inflight_msgs=3, max_size_per_msg=1)
    net.elect(1)
    leader = net.nodes[1]
    assert net.status(1).progress[2].state == "replicate"
    net.drop_types.add(MT.APP_RESP)  # acknowledgements are held back
    for i in range(10):
        leader.propose(b"p%d" % i)
    net.process(1)
    apps = [m for m in net.queue if m.type == MT.APP and m.to == 2]
    assert len(apps) == 3  # the window, not 10
    assert net.status(1).progress[2].inflight == 3
    net.heal()
    net.stabilize()
    assert net.machines[2].data == [b"p%d" % i for i in range(10)]


def test_probe_state_after_rejection_then_replicate() -> None:
    net = network_from_logs({1: (7, FIG7_LEADER), 2: (7, FIG7_FOLLOWERS["e"]), 3: (7, FIG7_LEADER)}, pre_vote=False)
    net.isolate(2)
    net.elect(1)
    assert net.status(1).progress[2].state == "probe"
    net.heal()
    net.tick_all(3)
    assert net.status(1).progress[2].state == "replicate"


def test_lost_appends_are_repaired() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.drop_types.add(MT.APP)
    net.propose(1, b"a")
    net.propose(1, b"b")
    net.heal()
    net.propose(1, b"c")  # arrives with a gap: rejected, then repaired
    net.tick_all(3)
    for n in (1, 2, 3):
        assert net.machines[n].data == [b"a", b"b", b"c"]


def test_restart_keeps_persisted_log_and_vote() -> None:
    """5.1 / Figure 2: currentTerm, votedFor and log[] survive a crash."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    for n in (1, 2, 3):
        net.restart(n)
    st = net.status(2)
    assert st.term == 2 and st.vote == 1 and st.last_log_index == 3
    net.stabilize()  # re-apply from the start (nothing but the log is kept)
    assert net.machines[2].data == [b"a"]
    net.tick_all(30)
    assert len(net.leaders()) == 1
    net.propose(net.leaders()[0], b"b")
    assert all(net.machines[n].data == [b"a", b"b"] for n in (1, 2, 3))


def test_leader_sends_heartbeats_every_heartbeat_tick() -> None:
    """5.2: the leader sends periodic heartbeats (empty AppendEntries) to keep its authority."""
    net = Network([1, 2, 3], heartbeat_tick=2)
    net.elect(1)
    net.sent.clear()
    net.tick(1)
    net.process(1)
    assert not [m for m in net.queue if m.type == MT.HEARTBEAT]
    net.tick(1)
    net.process(1)
    hbs = [m for m in net.queue if m.type == MT.HEARTBEAT]
    assert sorted(m.to for m in hbs) == [2, 3]
    assert all(m.commit == net.status(1).commit and m.term == 2 for m in hbs)


def test_heartbeat_never_commits_past_what_the_follower_has() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"a")
    net.heal()
    net.drop_types.add(MT.APP)
    net.tick(1)
    net.process(1)
    [hb] = [m for m in net.queue if m.type == MT.HEARTBEAT and m.to == 3]
    assert hb.commit == 2 < net.status(1).commit


def test_lost_pipeline_is_repaired_by_heartbeat_answers() -> None:
    """A full window of lost APPs is repaired: a heartbeat answer frees a slot."""
    net = Network([1, 2, 3], max_inflight_msgs=2, max_size_per_msg=1, check_quorum=False)
    net.elect(1)
    net.drop_if = lambda m: m.type == MT.APP and m.to == 2
    for i in range(4):
        net.nodes[1].propose(b"%d" % i)
    net.stabilize()
    assert net.status(1).progress[2].inflight == 2
    net.heal()
    net.tick_all(3)
    assert net.machines[2].data == [b"0", b"1", b"2", b"3"]
