"""Errors the Raft core raises to its caller.

Both are expected, recoverable outcomes of asking a node to do something it
cannot do right now; the runtime turns them into a forward to the leader or
an error reply. Nothing else in `qcore.raft` raises during normal operation:
malformed or stale peer messages are dropped, not raised.

    RaftError
    ├── ProposalDropped      this node cannot take the proposal (not leader,
    │                        transfer in progress, removed from the cluster)
    └── ConfChangeRejected   the membership change is invalid, or another one
                             is still pending
"""

from __future__ import annotations

from .types import NONE

__all__ = ["RaftError", "ProposalDropped", "ConfChangeRejected"]


class RaftError(Exception):
    """Base class of every error raised by the Raft core."""


class ProposalDropped(RaftError):
    """The proposal was not appended to the log.

    `leader_id` is the leader this node knows of (NONE if unknown, or if this
    node is the leader but cannot take proposals at the moment), so the
    runtime can forward the request instead of failing it.
    """

    def __init__(self, leader_id: int = NONE, reason: str = "") -> None:
        self.leader_id = leader_id
        self.reason = reason or ("not the leader" if leader_id != NONE else "no known leader")
        super().__init__(f"proposal dropped: {self.reason} (leader={leader_id})")


class ConfChangeRejected(RaftError):
    """The membership change cannot be proposed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"conf change rejected: {reason}")
