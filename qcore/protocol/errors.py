"""Error texts that carry meaning for the other side of the wire.

Errors travel as plain strings (``Error.error``, ``{"Err": ...}``, a command
response's ``error``). Some of them tell a client what it may do next — try
the leader, wait for an election, try another node, or *not* send a write
again — so the server builds them with these functions and the client
recognises them with :func:`classify`, instead of each side guessing at the
other's wording.

Two families:

* **definite** (``not_leader``, ``no_leader``, ``not_initialised``,
  ``shutting_down``, ``overloaded``, ``not_applied``): the request was not
  applied and will not be, so even a write may be sent again. A server must
  only use these texts when that is true.
* **unknown outcome** (:func:`outcome_unknown`): the request may or may not
  have been applied; only idempotent requests may be sent again.

Anything else is a final answer (a type mismatch, an unknown entity, ...).
"""

from __future__ import annotations

import dataclasses
import re

__all__ = [
    "NO_LEADER",
    "NOT_INITIALISED",
    "SHUTTING_DOWN",
    "OVERLOADED",
    "SAFE_TO_RETRY",
    "OUTCOME_UNKNOWN",
    "not_leader",
    "safe_to_retry",
    "outcome_unknown",
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
#: Marks any other definite failure: the request was not applied.
SAFE_TO_RETRY = "(not applied; safe to retry)"
#: Marks a failure after which the request may or may not have been applied.
OUTCOME_UNKNOWN = "outcome unknown"


def not_leader(leader_id: int | None, leader_addr: str | None) -> str:
    """``"not leader; leader is 2 at 127.0.0.1:8081"`` (or ``"not leader; no leader"``)."""
    if leader_id is None:
        return f"not leader; {NO_LEADER}"
    if leader_addr:
        return f"not leader; leader is {leader_id} at {leader_addr}"
    return f"not leader; leader is {leader_id}"


def safe_to_retry(text: str) -> str:
    """``text`` marked as a definite failure: ``"cannot reach the leader (not applied; safe to retry)"``."""
    return f"{text} {SAFE_TO_RETRY}"


def outcome_unknown(text: str) -> str:
    """``text`` marked as an unknown outcome: ``"no reply from the leader; outcome unknown"``."""
    return f"{text}; {OUTCOME_UNKNOWN}"


@dataclasses.dataclass(frozen=True, slots=True)
class Retryable:
    """What an error text says about retrying.

    ``kind``: ``"unknown_outcome"`` (retry only if idempotent), or a definite
    failure — ``"not_leader"``, ``"no_leader"``, ``"not_initialised"``,
    ``"shutting_down"``, ``"overloaded"``, ``"not_applied"``.
    ``leader_id``/``leader_addr`` are set when the text names the leader.
    """

    kind: str
    leader_id: int | None = None
    leader_addr: str | None = None

    @property
    def definite(self) -> bool:
        return self.kind != "unknown_outcome"


_LEADER_RE = re.compile(r"not leader; leader is (\d+)(?: at ([^\s,;]+:\d+))?")

# Wordings of the node (qcore/node) that predate the markers above.
_UNKNOWN_PHRASES = ("may or may not have been applied", "while the request was in flight", "did not answer within")
_NOT_APPLIED_PHRASES = (
    "it was not applied",
    "cannot reach the leader",
    "cannot send to the leader",
    "leadership changed before",
)


def classify(text: str) -> Retryable | None:
    """Recognise a retryable failure in an error text, else ``None`` (a final answer)."""
    lowered = text.lower()
    # First: an unknown outcome must never be mistaken for a definite failure.
    if OUTCOME_UNKNOWN in lowered or any(p in lowered for p in _UNKNOWN_PHRASES):
        return Retryable("unknown_outcome")
    m = _LEADER_RE.search(text)
    if m:
        return Retryable("not_leader", int(m.group(1)), m.group(2))
    if NO_LEADER in lowered:
        return Retryable("no_leader")
    if NOT_INITIALISED in lowered or "not initialized" in lowered:
        return Retryable("not_initialised")
    if SHUTTING_DOWN in lowered:
        return Retryable("shutting_down")
    if lowered.startswith(OVERLOADED):
        return Retryable("overloaded")
    if SAFE_TO_RETRY in lowered or any(p in lowered for p in _NOT_APPLIED_PHRASES):
        return Retryable("not_applied")
    return None
