"""Quorum arithmetic for majority and joint configurations.

Two questions are answered here, and nowhere else:

* Which index has a quorum acknowledged? (commit index, and - with
  acknowledgement ticks in place of indexes - "when did a quorum last
  answer?")
* Has an election been won, lost, or is it still open?

A joint configuration (Raft thesis section 4.3, "joint consensus") is two
majority configurations, *incoming* and *outgoing*; a decision needs both.
An empty majority configuration agrees to everything, so a non-joint
configuration is simply a joint one with an empty outgoing half.

Learners are never passed in here: they neither vote nor count for commit.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

__all__ = [
    "VoteResult",
    "majority_committed",
    "joint_committed",
    "majority_vote_result",
    "joint_vote_result",
    "INFINITE",
]

# What an empty configuration "acknowledges": larger than any index, so that
# min() with the other half of a joint configuration picks that half.
INFINITE = 1 << 63


class VoteResult(enum.Enum):
    PENDING = 1  # neither won nor lost yet
    LOST = 2  # a quorum can no longer be reached
    WON = 3  # a quorum granted


def majority_committed(voters: Collection[int], acked: Mapping[int, int]) -> int:
    """The largest index that a majority of `voters` has acknowledged.

    A voter missing from `acked` has acknowledged nothing (0).
    """
    if not voters:
        return INFINITE
    idx = sorted((acked.get(v, 0) for v in voters), reverse=True)
    return idx[len(idx) // 2]


def joint_committed(
    incoming: Collection[int], outgoing: Collection[int], acked: Mapping[int, int]
) -> int:
    """Committed index of a joint configuration: both majorities must agree."""
    return min(majority_committed(incoming, acked), majority_committed(outgoing, acked))


def majority_vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Outcome of an election among `voters` given the votes received so far."""
    if not voters:
        # An empty configuration wins every vote, so that a joint
        # configuration's result is decided by its non-empty half.
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    q = len(voters) // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def joint_vote_result(
    incoming: Collection[int], outgoing: Collection[int], votes: Mapping[int, bool]
) -> VoteResult:
    """Outcome of an election in a joint configuration (both halves must win)."""
    r1 = majority_vote_result(incoming, votes)
    r2 = majority_vote_result(outgoing, votes)
    if r1 == r2:
        return r1
    if VoteResult.LOST in (r1, r2):
        return VoteResult.LOST
    return VoteResult.PENDING
