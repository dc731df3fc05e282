"""Why a request could not be answered with a result.

    NodeError
    ├── NotLeader        this node cannot propose; `leader_id`/`leader_addr` say where to go
    ├── RequestFailed    definitely not applied (safe to retry)
    └── OutcomeUnknown   may or may not have been applied (e.g. timed out after proposing)
"""

from __future__ import annotations


class NodeError(Exception):
    pass


class NotLeader(NodeError):
    def __init__(self, leader_id: int, leader_addr: str | None) -> None:
        self.leader_id = leader_id
        self.leader_addr = leader_addr
        if leader_id:
            text = f"not leader; leader is {leader_id} at {leader_addr or 'unknown address'}"
        else:
            text = "not leader; no leader is known"
        super().__init__(text)


class RequestFailed(NodeError):
    pass


class OutcomeUnknown(NodeError):
    pass
