"""The checkers must be able to fail: each is fed a broken history directly."""

from __future__ import annotations

import pytest

from qcore.raft.types import Entry
from qcore.sim.checkers import Checker, SafetyViolation
from qcore.sim.logview import LogView


def ents(first: int, last: int, term: int = 1, tag: str = "") -> list[Entry]:
    return [Entry(term, i, data=f"{tag}e{i}".encode()) for i in range(first, last + 1)]


def write(ck: Checker, node: int, log: LogView, entries: list[Entry]) -> None:
    ck.log_write(node, log, entries)


def test_clean_history_passes() -> None:
    ck = Checker()
    a, b = LogView(), LogView()
    write(ck, 1, a, ents(1, 3))
    ck.on_leader(1, 1, a)
    write(ck, 2, b, ents(1, 3))
    ck.on_commit(1, 3, a)
    ck.on_commit(2, 2, b)
    for i in (1, 2, 3):
        ck.on_apply(1, i, a.chain_at(i), f"e{i}".encode())
    ck.on_leader(2, 2, b)  # b holds every committed entry (3 is committed; b has it)


def test_two_leaders_in_one_term() -> None:
    ck = Checker()
    ck.on_leader(1, 5, LogView())
    ck.on_leader(1, 5, LogView())  # the same leader again is fine
    with pytest.raises(SafetyViolation, match="election safety"):
        ck.on_leader(2, 5, LogView())


def test_same_index_and_term_with_different_prefix() -> None:
    ck = Checker()
    a, b = LogView(), LogView()
    write(ck, 1, a, [Entry(1, 1, data=b"e1"), Entry(1, 2, data=b"e2"), Entry(2, 3, data=b"e3")])
    write(ck, 2, b, [Entry(1, 1, data=b"e1"), Entry(2, 2, data=b"other")])
    with pytest.raises(SafetyViolation, match="log matching"):
        write(ck, 2, b, [Entry(2, 3, data=b"e3")])  # same entry at 3/t2, different prefix


def test_same_index_and_term_with_different_entry() -> None:
    ck = Checker()
    write(ck, 1, LogView(), ents(1, 2))
    with pytest.raises(SafetyViolation, match="log matching"):
        write(ck, 2, LogView(), ents(1, 1) + [Entry(1, 2, data=b"other")])


def test_new_leader_missing_a_committed_entry() -> None:
    ck = Checker()
    a, b = LogView(), LogView()
    write(ck, 1, a, ents(1, 4))
    write(ck, 2, b, ents(1, 2))
    ck.on_commit(1, 4, a)
    with pytest.raises(SafetyViolation, match="leader completeness"):
        ck.on_leader(2, 2, b)


def test_committed_entry_replaced() -> None:
    ck = Checker()
    a, b = LogView(), LogView()
    write(ck, 1, a, ents(1, 3))
    ck.on_commit(1, 3, a)
    write(ck, 2, b, ents(1, 2) + ents(3, 3, term=2, tag="x"))
    with pytest.raises(SafetyViolation, match="committed entry lost"):
        ck.on_commit(2, 3, b)


def test_overwriting_a_committed_entry_in_place() -> None:
    ck = Checker()
    a = LogView()
    write(ck, 1, a, ents(1, 3))
    ck.on_commit(1, 3, a)
    with pytest.raises(SafetyViolation, match="committed entry lost"):
        write(ck, 1, a, ents(2, 2, term=3, tag="x"))


def test_lagging_log_may_hold_a_stale_entry_at_a_committed_index() -> None:
    """A follower cut off with a deposed leader may still accept its entry
    at an index the majority has meanwhile committed differently."""
    ck = Checker()
    a, b = LogView(), LogView()
    write(ck, 1, a, ents(1, 3, term=2))
    ck.on_commit(1, 3, a)
    write(ck, 2, b, ents(1, 2, term=2) + ents(3, 3, term=1, tag="stale"))  # not a violation
    write(ck, 2, b, ents(3, 3, term=2))  # repaired by the leader
    ck.on_commit(2, 3, b)


def test_commit_past_the_end_of_the_log() -> None:
    ck = Checker()
    a = LogView()
    write(ck, 1, a, ents(1, 2))
    with pytest.raises(SafetyViolation, match="past its last index"):
        ck.on_commit(1, 3, a)


def test_two_nodes_apply_different_entries_at_one_index() -> None:
    ck = Checker()
    ck.on_apply(1, 1, b"A" * 12, b"v1")
    with pytest.raises(SafetyViolation, match="state machine safety"):
        ck.on_apply(2, 1, b"B" * 12, b"v9")


def test_value_applied_twice() -> None:
    ck = Checker()
    ck.on_apply(1, 1, b"A" * 12, b"v1")
    with pytest.raises(SafetyViolation, match="again"):
        ck.on_apply(1, 2, b"B" * 12, b"v1")


def test_stale_read_is_detected() -> None:
    ck = Checker()
    ck.value_index.update({b"v7": 7, b"v9": 9})
    ck.on_write_acked(7, b"v7")
    ck.on_read_issued(b"r1", 2, now=10)
    ck.on_write_acked(9, b"v9")  # acknowledged after the read began: not required
    ck.on_read_served(b"r1", 2, read_index=7, applied=7)
    ck.on_read_issued(b"r2", 3, now=11)
    with pytest.raises(SafetyViolation, match="linearizable read"):
        ck.on_read_served(b"r2", 3, read_index=8, applied=8)


def test_write_acknowledged_before_it_was_applied() -> None:
    ck = Checker()
    with pytest.raises(SafetyViolation, match="acknowledged write"):
        ck.on_write_acked(3, b"v1")
    ck.on_apply(1, 3, b"A" * 12, b"v1")
    ck.on_write_acked(3, b"v1")
    with pytest.raises(SafetyViolation, match="acknowledged write"):
        ck.on_write_acked(4, b"v1")


def test_an_acknowledgement_or_vote_sent_before_it_is_durable() -> None:
    from qcore.raft.types import HardState, Message, MessageType
    from qcore.sim.disk import DiskImage

    disk = DiskImage(HardState(term=2, vote=3), None, ents(1, 4))
    ck = Checker()
    ck.check_promise(1, Message(MessageType.APP_RESP, to=2, index=4), disk)
    ck.check_promise(1, Message(MessageType.APP_RESP, to=2, index=9, reject=True), disk)
    ck.check_promise(1, Message(MessageType.VOTE_RESP, to=3, term=2), disk)
    ck.check_promise(1, Message(MessageType.PRE_VOTE_RESP, to=4, term=3), disk)
    with pytest.raises(SafetyViolation, match="persist before send"):
        ck.check_promise(1, Message(MessageType.APP_RESP, to=2, index=5), disk)
    with pytest.raises(SafetyViolation, match="persist before send"):
        ck.check_promise(1, Message(MessageType.VOTE_RESP, to=4, term=2), disk)


def test_read_answered_on_the_wrong_node() -> None:
    ck = Checker()
    ck.on_read_issued(b"r1", 2, now=1)
    with pytest.raises(SafetyViolation, match="linearizable read"):
        ck.on_read_served(b"r1", 3, read_index=0, applied=0)


def test_snapshot_of_another_history() -> None:
    ck = Checker()
    a = LogView()
    write(ck, 1, a, ents(1, 3))
    ck.on_commit(1, 3, a)
    with pytest.raises(SafetyViolation):
        ck.on_snapshot(2, 3, 1, b"Z" * 12)


def test_committed_prefix_on_no_surviving_disk() -> None:
    from qcore.sim.disk import DiskImage

    ck = Checker()
    a = LogView()
    write(ck, 1, a, ents(1, 3))
    ck.on_commit(1, 3, a)
    holder = DiskImage(entries=ents(1, 3))
    short = DiskImage(entries=ents(1, 2))
    other = DiskImage(entries=ents(1, 2) + ents(3, 3, term=2, tag="x"))
    ck.check_durable({1: short, 2: holder}, "a crash")
    with pytest.raises(SafetyViolation, match="no disk holds committed index 3"):
        ck.check_durable({1: short, 2: other}, "a crash")


def test_a_node_votes_twice_in_one_term() -> None:
    ck = Checker()
    ck.on_hard_state(1, 3, 0)
    ck.on_hard_state(1, 3, 2)
    ck.on_hard_state(1, 3, 2)  # the same vote again (e.g. after a restart) is fine
    with pytest.raises(SafetyViolation, match="voted for 2 and 3 in term 3"):
        ck.on_hard_state(1, 3, 3)


def test_term_goes_back_after_a_crash() -> None:
    ck = Checker()
    ck.on_hard_state(1, 5, 1)
    with pytest.raises(SafetyViolation, match="durability"):
        ck.on_hard_state(1, 4, 0)


def test_a_commit_without_a_majority_of_voters_on_disk() -> None:
    """A learner (or a removed node) holding the entry does not make it
    committed: only the voters of each half of the configuration count."""
    from qcore.raft.types import HardState
    from qcore.sim.disk import DiskImage

    ck = Checker()
    log = LogView()
    write(ck, 1, log, ents(1, 5))
    ck.on_commit(1, 5, log)
    full, short = DiskImage(HardState(), None, ents(1, 5)), DiskImage(HardState(), None, ents(1, 3))
    ck.check_commit_quorum(1, 5, (1, 2, 3), (), {1: full, 2: full, 3: short})
    with pytest.raises(SafetyViolation, match="commit quorum"):  # node 4, a learner, holds it too
        ck.check_commit_quorum(1, 5, (1, 2, 3), (), {1: full, 2: short, 3: short, 4: full})
    with pytest.raises(SafetyViolation, match="commit quorum"):  # the outgoing half has no majority
        ck.check_commit_quorum(1, 5, (1, 2), (1, 3, 4), {1: full, 2: full, 3: short, 4: short})
    other = DiskImage(HardState(), None, ents(1, 5, term=2, tag="x"))  # another entry at index 5
    with pytest.raises(SafetyViolation, match="commit quorum"):
        ck.check_commit_quorum(1, 5, (1, 2, 3), (), {1: full, 2: other, 3: other})


def test_a_leader_that_is_not_a_voter() -> None:
    ck = Checker()
    ck.on_leader(1, 1, LogView(), voters=(1, 2, 3))
    with pytest.raises(SafetyViolation, match="not a voter"):  # 4 is a learner, or was removed
        ck.on_leader(4, 2, LogView(), voters=(1, 2, 3))


def test_replicating_to_a_node_outside_the_configuration() -> None:
    from qcore.raft.types import Message, MessageType

    ck = Checker()
    ck.check_replication(1, [Message(MessageType.APP, to=2), Message(MessageType.HEARTBEAT, to=3)], {1, 2, 3})
    ck.check_replication(1, [Message(MessageType.VOTE_RESP, to=4)], {1, 2, 3})  # an answer: anyone may get one
    for kind in (MessageType.APP, MessageType.SNAP, MessageType.HEARTBEAT, MessageType.TIMEOUT_NOW):
        with pytest.raises(SafetyViolation, match="replication"):
            ck.check_replication(1, [Message(kind, to=4)], {1, 2, 3})
