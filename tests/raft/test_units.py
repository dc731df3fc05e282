"""Unit tests of the small modules: confchange, tracker (Progress, Inflights), log."""

from __future__ import annotations

import pytest

from qcore.raft.confchange import ConfChangeError, apply_conf_change
from qcore.raft.log import RaftLog
from qcore.raft.tracker import Inflights, Progress, ProgressState
from qcore.raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    Snapshot,
    SnapshotMeta,
)

ADD, LEARN, REMOVE = ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE_NODE


def cc(*changes: tuple[ConfChangeType, int], transition: ConfChangeTransition = ConfChangeTransition.AUTO) -> ConfChange:
    return ConfChange(changes=tuple(ConfChangeSingle(t, n) for t, n in changes), transition=transition)


BASE = ConfState(voters=(1, 2, 3), addresses={1: "a", 2: "b", 3: "c"})


def test_confchange_simple_and_joint() -> None:
    s = apply_conf_change(BASE, cc((ADD, 4)))
    assert s.voters == (1, 2, 3, 4) and not s.voters_outgoing
    j = apply_conf_change(BASE, cc((ADD, 4), (REMOVE, 1)))
    assert j.voters == (2, 3, 4) and j.voters_outgoing == (1, 2, 3) and j.auto_leave
    left = apply_conf_change(j, ConfChange())
    assert left.voters == (2, 3, 4) and left.voters_outgoing == () and not left.auto_leave
    assert 1 not in left.addresses and 1 in j.addresses
    assert BASE.voters == (1, 2, 3)  # the input is never modified


def test_confchange_rejections() -> None:
    with pytest.raises(ConfChangeError):
        apply_conf_change(BASE, ConfChange())  # not joint
    j = apply_conf_change(BASE, cc((ADD, 4), (ADD, 5)))
    with pytest.raises(ConfChangeError):
        apply_conf_change(j, cc((ADD, 6)))  # already joint
    with pytest.raises(ConfChangeError):
        apply_conf_change(BASE, cc((REMOVE, 9)))
    with pytest.raises(ConfChangeError):
        apply_conf_change(ConfState(voters=(1,)), cc((REMOVE, 1)))


def test_confchange_learners_next_and_promotion() -> None:
    j = apply_conf_change(BASE, cc((LEARN, 3), (ADD, 4)))
    assert j.learners_next == (3,) and j.learners == () and 3 in j.voters_outgoing
    left = apply_conf_change(j, ConfChange())
    assert left.learners == (3,) and left.voters == (1, 2, 4)
    promoted = apply_conf_change(left, cc((ADD, 3)))
    assert promoted.learners == () and promoted.voters == (1, 2, 3, 4)


def test_confchange_first_configuration_from_nothing() -> None:
    s = apply_conf_change(ConfState(), cc((ADD, 1), (ADD, 2), (ADD, 3)))
    assert s.voters == (1, 2, 3) and not s.voters_outgoing


def test_inflights_window() -> None:
    inf = Inflights(3)
    for i in (5, 7, 9):
        inf.add(i)
    assert inf.full()
    inf.free_le(7)
    assert inf.count() == 1 and not inf.full()
    inf.free_first()
    assert inf.count() == 0


def test_progress_probe_and_replicate_transitions() -> None:
    pr = Progress(match=0, next=11, inflights=Inflights(2))
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(None)
    assert pr.is_paused()  # one probe at a time
    # A rejection of the probe at index 10 with hint 4 moves next to 5.
    assert pr.maybe_decr_to(10, 4)
    assert pr.next == 5 and not pr.is_paused()
    assert not pr.maybe_decr_to(10, 4)  # stale: not the last probe
    assert pr.maybe_update(8)
    pr.become_replicate()
    assert pr.next == 9
    pr.sent_entries(12)
    pr.sent_entries(15)
    assert pr.next == 16 and pr.is_paused()
    assert not pr.maybe_decr_to(7, 0)  # rejects below match are stale
    pr.become_snapshot(20)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 21  # past the snapshot


def test_log_append_truncate_and_stable() -> None:
    log = RaftLog(entries=[Entry(1, 1), Entry(1, 2), Entry(2, 3)])
    assert log.stable == 3 and log.last_index() == 3
    assert log.maybe_append(2, 1, 2, [Entry(3, 3), Entry(3, 4)]) == 4
    assert [e.term for e in log.entries_from(1)] == [1, 1, 3, 3]
    assert log.stable == 2 and [e.index for e in log.unstable_entries()] == [3, 4]
    assert log.committed == 2
    assert log.maybe_append(4, 9, 4, []) is None  # no match
    log.stable_to(4, 3)
    assert log.stable == 4
    assert log.find_conflict_by_term(4, 2) == (2, 1)


def test_log_compaction_and_restore() -> None:
    snap = Snapshot(SnapshotMeta(index=5, term=2, conf_state=ConfState(voters=(1,))))
    log = RaftLog(snapshot=snap, entries=[Entry(2, 6), Entry(3, 7)])
    assert log.first_index() == 6 and log.term(5) == 2 and log.term(4) is None
    assert log.entries_from(5) is None
    log.commit_to(7)
    log.applied_to(7)
    log.compact(6)
    assert log.first_index() == 7 and log.term(6) == 2
    log.restore(Snapshot(SnapshotMeta(index=20, term=5)))
    assert log.last_index() == 20 and log.committed == 20 and log.pending_snapshot is not None


def test_log_refuses_to_overwrite_committed() -> None:
    log = RaftLog(entries=[Entry(1, 1), Entry(1, 2)])
    log.commit_to(2)
    with pytest.raises(AssertionError):
        log.append([Entry(2, 2)])
