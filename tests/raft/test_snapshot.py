"""Log compaction and InstallSnapshot: Raft paper section 7."""

from __future__ import annotations

import pytest

from qcore.raft.types import ConfChangeType, MessageType

from .network import Network

MT = MessageType


def compact_leader(net: Network, nid: int) -> int:
    """Snapshot `nid`'s state machine at its applied index and compact."""
    applied = net.status(nid).applied
    snap = net.nodes[nid].create_snapshot(applied, net.machines[nid].snapshot_bytes())
    net.disks[nid].snapshot = snap
    net.disks[nid].entries = [e for e in net.disks[nid].entries if e.index > applied]
    net.nodes[nid].compact(applied)
    return applied


def test_create_snapshot_fills_term_and_configuration() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    idx = compact_leader(net, 1)
    snap = net.disks[1].snapshot
    assert snap is not None
    assert (snap.meta.index, snap.meta.term) == (idx, 2)
    assert snap.meta.conf_state.voters == (1, 2, 3)
    st = net.status(1)
    assert st.snapshot_index == idx and st.first_index == idx + 1 and st.purged == idx
    with pytest.raises(ValueError):
        net.nodes[1].create_snapshot(idx + 5, b"")  # beyond applied
    with pytest.raises(ValueError):
        net.nodes[1].compact(idx + 1)  # beyond the snapshot


def test_snapshot_configuration_is_the_one_at_its_index() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    before = net.status(1).applied
    net.change(1, (ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    assert net.status(1).applied > before
    snap = net.nodes[1].create_snapshot(before, b"")
    assert snap.meta.conf_state.learners == ()
    snap2 = net.nodes[1].create_snapshot(net.status(1).applied, b"")
    assert snap2.meta.conf_state.learners == (4,)


def test_lagging_follower_gets_snapshot_and_catches_up() -> None:
    """7: the leader sends InstallSnapshot to a follower that lags too far behind."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"e%d" % i)
    idx = compact_leader(net, 1)
    net.propose(1, b"after")
    net.heal()
    net.tick_all(3)
    assert [m.to for m in net.snapshots_sent] == [3]
    assert net.snapshots_sent[0].snapshot.meta.index == idx
    # The follower has not been told the snapshot went through yet: the
    # transport reports it.
    assert net.status(1).progress[3].state in ("snapshot", "replicate")
    net.nodes[1].report_snapshot(3, True)
    net.tick_all(3)
    assert net.status(1).progress[3].state == "replicate"
    assert net.machines[3].data == net.machines[1].data
    assert net.machines[3].data[-1] == b"after"
    st = net.status(3)
    assert st.snapshot_index == idx and st.first_index == idx + 1
    assert st.conf_state.voters == (1, 2, 3)
    # Its disk holds the snapshot and only the entries after it.
    assert net.disks[3].snapshot.meta.index == idx
    assert all(e.index > idx for e in net.disks[3].entries)


def test_a_restarted_follower_waiting_for_a_snapshot_knows_the_leaders_commit() -> None:
    """While the snapshot it needs is on its way, the leader's heartbeats alone tell
    a follower how far the log is committed; its own commit stays at its log's end."""
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"e%d" % i)
    compact_leader(net, 1)
    net.restart(3)
    st = net.status(3)
    assert st.leader_commit == 0 and st.commit == st.applied
    net.heal()
    net.drop_types |= {MT.SNAP, MT.APP}  # the snapshot is still being sent; no append gets through
    net.tick_all(3)
    st, lead = net.status(3), net.status(1)
    assert st.leader_id == 1 and st.applied == st.commit == st.last_log_index < lead.commit
    assert st.leader_commit == lead.commit


def test_follower_restarts_from_snapshot() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    compact_leader(net, 1)
    net.heal()
    net.tick_all(3)
    net.nodes[1].report_snapshot(3, True)
    net.propose(1, b"x")
    net.restart(3)
    assert net.machines[3].data == net.machines[1].data
    assert net.status(3).conf_state.voters == (1, 2, 3)
    net.propose(1, b"y")
    assert net.machines[3].data[-1] == b"y"


def test_failed_snapshot_is_retried() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    compact_leader(net, 1)
    net.heal()
    net.drop_types.add(MT.SNAP)
    net.tick_all(2)
    assert net.status(1).progress[3].state == "snapshot"
    net.nodes[1].report_snapshot(3, False)
    assert net.status(1).progress[3].state == "probe"
    net.drop_types.clear()
    net.tick_all(3)
    assert len(net.snapshots_sent) >= 2
    assert net.machines[3].data == net.machines[1].data


def test_new_learner_added_after_compaction_gets_snapshot() -> None:
    net = Network([1, 2, 3])
    net.add_node(4)
    net.elect(1)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    compact_leader(net, 1)
    net.change(1, (ConfChangeType.ADD_LEARNER, 4))
    net.stabilize()
    net.tick_all(3)
    net.nodes[1].report_snapshot(4, True)
    net.tick_all(3)
    assert net.machines[4].data == net.machines[1].data
    assert net.status(4).role == "Learner"
    assert net.status(1).progress[4].match == net.status(1).last_log_index


def test_snapshot_older_than_commit_is_ignored() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    snap = net.nodes[1].create_snapshot(2, b"")
    from qcore.raft.types import Message

    net.nodes[2].step(Message(MT.SNAP, to=2, frm=1, term=2, snapshot=snap))
    rd = net.nodes[2].ready()
    assert rd.snapshot is None
    assert [(m.type, m.index) for m in rd.messages] == [(MT.APP_RESP, 3)]
    net.nodes[2].advance(rd)
