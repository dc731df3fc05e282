"""Why a request could not be answered with a result, and the wire ``kind`` each carries.

    NodeError            .kind: a qcore.protocol.errors.Kind
    ├── NotLeader        this node cannot propose; `leader_id`/`leader_addr` say where to go
    │                    (kind not_leader, or no_leader when no leader is known)
    ├── RequestFailed    definitely not applied (safe to retry); kind unavailable unless given
    │   └── LeaderChanged  a write the leader lost or refused as leadership moved: the node
    │                    sends it again to the next leader (within the request's deadline)
    └── OutcomeUnknown   may or may not have been applied (e.g. timed out after proposing)

:func:`error_reply` turns one into the ``Error`` frame the client gets.
"""

from __future__ import annotations

from typing import Any

from qcore.protocol import errors as wire_errors
from qcore.protocol.errors import Kind
from qcore.protocol.messages import Error


#: Why a request that needs a leader failed when none has been elected for a while.
NO_LEADER_TEXT = "no leader: none is elected; is a majority of the voters up? (not applied)"
#: Why a node that belongs to no cluster yet refuses a request that needs one.
NOT_INITIALISED_TEXT = "node is not initialised: send Init, or add it to a cluster"


class NodeError(Exception):
    kind: Kind = Kind.UNAVAILABLE


class NotLeader(NodeError):
    def __init__(self, leader_id: int, leader_addr: str | None) -> None:
        self.leader_id = leader_id
        self.leader_addr = leader_addr
        if leader_id:
            text = f"not leader; leader is {leader_id} at {leader_addr or 'unknown address'}"
            self.kind = Kind.NOT_LEADER
        else:
            text = "not leader; no leader is known"
            self.kind = Kind.NO_LEADER
        super().__init__(text)


class RequestFailed(NodeError):
    def __init__(self, text: str, kind: Kind = Kind.UNAVAILABLE) -> None:
        super().__init__(text)
        self.kind = kind


class LeaderChanged(RequestFailed):
    """A write the leader did not take, or lost before committing it, because
    leadership moved: definitely not applied."""


class OutcomeUnknown(NodeError):
    kind = Kind.OUTCOME_UNKNOWN


def error_reply(rid: Any, exc: NodeError) -> Error:
    """The ``Error`` frame for a request that failed with ``exc``."""
    if isinstance(exc, NotLeader):
        return wire_errors.error(rid, exc.kind, str(exc), leader_id=exc.leader_id, leader_addr=exc.leader_addr)
    return wire_errors.error(rid, exc.kind, str(exc))
