"""quorum.py against a deliberately simple reference (as etcd's quorum/quick_test.go)."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.raft import quorum
from qcore.raft.quorum import VoteResult

ids = st.sets(st.integers(1, 7), max_size=5)


def ref_committed(voters: set[int], acked: dict[int, int]) -> int:
    """The largest index i such that a majority of voters has acked >= i."""
    if not voters:
        return quorum.INFINITE
    best = 0
    for i in set(acked.values()) | {0}:
        if sum(1 for v in voters if acked.get(v, 0) >= i) > len(voters) // 2:
            best = max(best, i)
    return best


def ref_vote(voters: set[int], votes: dict[int, bool]) -> VoteResult:
    """Won if some majority granted; lost if no majority can still grant."""
    if not voters:
        return VoteResult.WON
    q = len(voters) // 2 + 1
    granted = {v for v in voters if votes.get(v) is True}
    possible = {v for v in voters if votes.get(v) is not False}
    if any(set(c) <= granted for c in combinations(sorted(voters), q)):
        return VoteResult.WON
    if any(set(c) <= possible for c in combinations(sorted(voters), q)):
        return VoteResult.PENDING
    return VoteResult.LOST


@settings(max_examples=300, deadline=None)
@given(ids, ids, st.dictionaries(st.integers(1, 7), st.integers(0, 20)))
def test_joint_committed_matches_reference(inc: set[int], out: set[int], acked: dict[int, int]) -> None:
    assert quorum.majority_committed(inc, acked) == ref_committed(inc, acked)
    assert quorum.joint_committed(inc, out, acked) == min(ref_committed(inc, acked), ref_committed(out, acked))


@settings(max_examples=300, deadline=None)
@given(ids, ids, st.dictionaries(st.integers(1, 7), st.booleans()))
def test_joint_vote_matches_reference(inc: set[int], out: set[int], votes: dict[int, bool]) -> None:
    assert quorum.majority_vote_result(inc, votes) == ref_vote(inc, votes)
    r1, r2 = ref_vote(inc, votes), ref_vote(out, votes)
    expect = (
        VoteResult.WON
        if r1 == r2 == VoteResult.WON
        else VoteResult.LOST
        if VoteResult.LOST in (r1, r2)
        else VoteResult.PENDING
    )
    assert quorum.joint_vote_result(inc, out, votes) == expect


def test_examples() -> None:
    assert quorum.majority_committed([1, 2, 3], {1: 5, 2: 3, 3: 1}) == 3
    assert quorum.majority_committed([1, 2, 3, 4], {1: 5, 2: 3, 3: 1, 4: 9}) == 3
    assert quorum.joint_committed([1, 2, 3], [4, 5, 6], {1: 5, 2: 5, 3: 5, 4: 1, 5: 2}) == 1
    assert quorum.majority_vote_result([1, 2, 3], {1: True, 2: False}) == VoteResult.PENDING
    assert quorum.majority_vote_result([1, 2, 3], {1: False, 2: False}) == VoteResult.LOST
