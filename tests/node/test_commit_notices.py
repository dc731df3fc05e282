"""A leader's commit-only appends are held briefly and dropped when an
append with entries overtakes them (qcore.node.commit_notices)."""

from __future__ import annotations

from qcore.node.commit_notices import CommitNotices
from qcore.raft.types import Entry, EntryType, Message, MessageType

APP = MessageType.APP


def notice(to: int, commit: int) -> Message:
    return Message(APP, to=to, frm=1, term=2, index=commit, log_term=2, commit=commit)


def append(to: int, index: int, commit: int) -> Message:
    return Message(APP, to=to, frm=1, term=2, index=index - 1, log_term=2, commit=commit,
                   entries=[Entry(2, index, EntryType.NORMAL, b"x")])


class Wire:
    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    def send(self, msgs: list[Message]) -> None:
        self.batches.append(list(msgs))

    def sent(self) -> list[tuple[int, int, int]]:
        """(to, entries, commit) of everything sent so far, in order."""
        return [(m.to, len(m.entries), m.commit) for b in self.batches for m in b]


def test_a_commit_only_append_is_sent_after_the_delay() -> None:
    wire = Wire()
    clock = ManualClock()
    notices = CommitNotices(wire.send, 0.001, clock)
    notices.send([notice(2, 5), notice(3, 5)])
    assert wire.sent() == [] and notices.due_at() == 0.001
    notices.on_timer(0.0009)
    assert wire.sent() == []
    notices.on_timer(0.001)
    assert sorted(wire.sent()) == [(2, 0, 5), (3, 0, 5)] and notices.due_at() is None


def test_an_append_with_entries_overtakes_a_held_notice() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    notices.send([notice(2, 5), notice(3, 5)])
    notices.send([append(2, 6, 5)])
    notices.flush()
    assert wire.sent() == [(2, 1, 5), (3, 0, 5)]  # follower 2's notice was dropped
    notices.flush()
    assert len(wire.batches) == 2  # nothing left
    notices.close()


def test_a_newer_notice_replaces_the_held_one() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    notices.send([notice(2, 5)])
    notices.send([notice(2, 6)])
    notices.flush()
    assert wire.sent() == [(2, 0, 6)]
    notices.close()


def test_a_follower_waiting_for_its_forwarded_batch_is_told_at_once() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    notices.note_forwarded(2, 7)
    notices.send([notice(2, 6), notice(3, 6)])
    assert wire.sent() == [(2, 0, 6)]  # index 7 not committed yet: 2 keeps getting notices
    notices.send([notice(2, 7), notice(3, 7)])
    assert wire.sent() == [(2, 0, 6), (2, 0, 7)]
    notices.send([notice(2, 8)])  # 2 has nothing pending any more: held
    assert len(wire.sent()) == 2
    notices.flush()
    assert wire.sent()[2:] == [(3, 0, 7), (2, 0, 8)]
    notices.close()


def test_other_messages_pass_straight_through() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    hb = Message(MessageType.HEARTBEAT, to=2, frm=1, term=2, commit=5)
    vote = Message(MessageType.VOTE_RESP, to=3, frm=1, term=2)
    notices.send([hb, vote])
    assert wire.batches == [[hb, vote]]
    notices.close()


def test_of_two_appends_to_a_follower_in_one_batch_the_earlier_notice_is_dropped() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    notices.note_forwarded(2, 9)  # follower 2 gets its notices at once
    notices.send([notice(2, 5), notice(3, 5), notice(2, 6), append(3, 6, 6)])
    assert wire.sent() == [(2, 0, 6), (3, 1, 6)]
    notices.close()


def test_an_append_that_restarts_further_back_does_not_replace_a_held_notice() -> None:
    wire = Wire()
    notices = CommitNotices(wire.send, 60, ManualClock())
    notices.send([notice(2, 5)])
    notices.send([append(2, 3, 5)])  # previous entry 2 < 5: it can commit only up to 3 there
    notices.flush()
    assert wire.sent() == [(2, 1, 5), (2, 0, 5)]
    notices.close()


class ManualClock:
    """Time moved by hand; runs the notices' timer as a runtime would."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, notices: CommitNotices, to: float) -> None:
        """Move time on to `to`, calling `on_timer` whenever it falls due."""
        while (due := notices.due_at()) is not None and due <= to:
            self.now = max(self.now, due)
            notices.on_timer(self.now)
        self.now = to


def test_the_delay_runs_from_when_the_follower_was_first_left_untold() -> None:
    wire = Wire()
    clock = ManualClock()
    notices = CommitNotices(wire.send, 0.002, clock)
    notices.send([notice(2, 5)])  # held at 0
    clock.advance(notices, 0.001)
    notices.send([append(2, 6, 5), notice(2, 6)])  # told commit 5; commit 6 held at 0.001
    clock.advance(notices, 0.0025)  # the first notice's deadline: nothing is due
    assert wire.sent() == [(2, 1, 5)]
    clock.advance(notices, 0.003)
    assert wire.sent() == [(2, 1, 5), (2, 0, 6)]
    notices.close()


def test_a_replaced_notice_keeps_the_deadline_of_the_first() -> None:
    wire = Wire()
    clock = ManualClock()
    notices = CommitNotices(wire.send, 0.002, clock)
    notices.send([notice(2, 5), notice(3, 5)])  # held at 0
    clock.advance(notices, 0.0015)
    notices.send([notice(2, 6)])  # 2 has still not heard of commit 5
    clock.advance(notices, 0.002)
    assert sorted(wire.sent()) == [(2, 0, 6), (3, 0, 5)]
    clock.advance(notices, 1.0)
    assert len(wire.sent()) == 2  # nothing held, no timer left sending
    assert notices.due_at() is None  # nothing held, no timer wanted
    notices.close()


def test_a_steady_light_load_sends_no_commit_only_appends() -> None:
    wire = Wire()
    clock = ManualClock()
    notices = CommitNotices(wire.send, 0.002, clock)
    # One client: every millisecond a write commits, and the next write's
    # append (0.1 ms later) carries that commit index.
    for i in range(1, 50):
        t = i * 0.001
        clock.advance(notices, t)
        notices.send([notice(2, i), notice(3, i)])
        clock.advance(notices, t + 0.0001)
        notices.send([append(2, i + 1, i), append(3, i + 1, i)])
    assert all(entries == 1 for _, entries, _ in wire.sent())
    notices.close()
