"""The rules by which peers tell a node it was removed while it was down (qcore.node.removal)."""

from __future__ import annotations

from qcore.node.removal import RemovalNotice, declaration, declared, refusal
from qcore.raft.types import ConfState

NOW = ConfState(voters=(1, 2))  # node 3 removed


def test_the_declaration_reads_back():
    assert declared("/raft?from=3&addr=h:1" + declaration(42, ConfState(voters=(1, 2, 3)), 3)) == (42, True)
    assert declared("/raft?from=4&addr=h:1" + declaration(0, ConfState(), 4)) == (0, False)
    assert declared("/raft?from=3&addr=h:1") is None  # an older node declares nothing
    assert declared("/raft?applied=x&member=1") is None


def test_only_a_member_behind_us_that_our_configuration_lacks_is_refused():
    why = refusal(1, 3, (10, True), 20, NOW)
    assert why is not None and "node 3 was removed from the cluster" in why and "applied index 20" in why
    assert refusal(1, 3, None, 20, NOW) is None  # declares nothing
    assert refusal(1, 3, (10, False), 20, NOW) is None  # a joining node: not a member yet in its own eyes
    assert refusal(1, 3, (20, True), 20, NOW) is None  # not behind us: we may be the stale one
    assert refusal(1, 3, (30, True), 20, NOW) is None
    assert refusal(1, 2, (10, True), 20, NOW) is None  # a member that lags
    assert refusal(1, 3, (10, True), 20, ConfState()) is None  # we have no configuration
    for conf in (ConfState(voters=(1, 2), voters_outgoing=(1, 2, 3)), ConfState(voters=(1, 2), learners=(3,)),
                 ConfState(voters=(1, 2), voters_outgoing=(1, 2, 3), learners_next=(3,))):
        assert refusal(1, 3, (10, True), 20, conf) is None  # still in it, as outgoing voter or learner


def test_a_notice_holds_while_behind_its_index_and_lapses_without_new_word():
    clock = [100.0]
    notice = RemovalNotice(clock=lambda: clock[0])
    assert notice.reason(5) is None
    notice.heard(2, 20, "node 3 was removed")
    assert notice.reason(5) == "node 3 was removed"
    assert notice.reason(20) is None  # applied as far as the peer: it was added back (or never removed)
    clock[0] += 59
    assert notice.reason(5) == "node 3 was removed"
    clock[0] += 2
    assert notice.reason(5) is None  # a minute without the refusal being repeated
    notice.heard(1, 20, "again")
    assert notice.reason(5) == "again"
