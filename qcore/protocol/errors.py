"""Error texts that carry meaning for the other side of the wire.

Errors travel as plain strings (``Error.error``, ``{"Err": ...}``, a command
response's ``error``). A few of them tell a client what it may do next — try
the leader, wait for an election, try another node — so the server builds them
with these functions and the client recognises them with :func:`classify`,
instead of each side guessing at the other's wording.

Every retryable error here is *definite*: it is only sent when the request was
not proposed to the Raft log, so even a write may safely be sent again.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = [
    "NO_LEADER",
    "NOT_INITIALISED",
    "SHUTTING_DOWN",
    "OVERLOADED",
    "not_leader",
    "Retryable",
    "classify",
]

#: No leader is known (an election is running, or this node is cut off).
NO_LEADER = "no leader"
#: The node is not part of an initialised cluster yet (send ``Init`` first).
NOT_INITIALISED = "not initialised"
#: The node is shutting down and did not start this request.
SHUTTING_DOWN = "shutting down"
#: The node refused the request for load ("too many requests in flight", "too many connections").
OVERLOADED = "too many "


def not_leader(leader_id: int | None, leader_addr: str | None) -> str:
    """``"not leader; leader is 2 at 127.0.0.1:8081"`` (or ``"not leader; no leader"``)."""
    if leader_id is None:
        return f"not leader; {NO_LEADER}"
    if leader_addr:
        return f"not leader; leader is {leader_id} at {leader_addr}"
    return f"not leader; leader is {leader_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Retryable:
    """What an error text says about retrying: ``kind`` is one of
    ``"not_leader"``, ``"no_leader"``, ``"not_initialised"``, ``"shutting_down"``,
    ``"overloaded"``;
    ``leader_id``/``leader_addr`` are set when the text names the leader."""

    kind: str
    leader_id: int | None = None
    leader_addr: str | None = None


_LEADER_RE = re.compile(r"not leader; leader is (\d+)(?: at ([^\s,;]+:\d+))?")


def classify(text: str) -> Retryable | None:
    """Recognise a definite, retryable failure in an error text, else ``None``."""
    m = _LEADER_RE.search(text)
    if m:
        addr = m.group(2)
        return Retryable("not_leader", int(m.group(1)), addr.rstrip(".,;)") if addr else None)
    lowered = text.lower()
    if NO_LEADER in lowered:
        return Retryable("no_leader")
    if NOT_INITIALISED in lowered or "not initialized" in lowered:
        return Retryable("not_initialised")
    if SHUTTING_DOWN in lowered:
        return Retryable("shutting_down")
    if lowered.startswith(OVERLOADED):
        return Retryable("overloaded")
    return None
