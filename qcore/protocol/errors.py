"""Why a request failed, as a machine-readable kind beside the human text.

Every error a node sends carries a ``kind``; the text is for people and may
change, the kind is what programs (qcore.client, the chaos harness) decide
by. The seed's shapes are kept and the kind is an extra field beside them:

* an ``Error`` frame: ``{"Error": {"id", "error": "text", "kind": "no_leader"}}``,
  and for ``not_leader`` also ``"leader_id"`` and ``"leader_addr"`` when known;
* a response union's failure: ``{"InitResponse": {"id", "response": {"Err": "text"},
  "kind": "invalid"}}`` (beside ``response``, so ``{"Err": "text"}`` is unchanged);
* a command's error: ``{"PerformResponse": {"id", "response": {"UpdateEntity":
  {"response": [], "error": "text", "kind": "rejected"}}}}``.

The kinds fall in three families, which :func:`retry_class` names:

* **not applied** (``"definite"``): the request was not carried out and will
  not be, so any request, a write too, may be sent again — ``not_leader``,
  ``no_leader``, ``not_initialised``, ``removed``, ``shutting_down``,
  ``overloaded``, ``unavailable``;
* **unknown** (``"unknown"``): ``outcome_unknown`` — it may or may not have
  been applied; only a request that is safe to repeat may be sent again;
* **final** (``"final"``): the answer to this request — ``invalid`` (the
  request is malformed or not allowed as asked, or its reply would be larger
  than a frame: qcore.protocol.reply_size), ``rejected`` (a command the
  state machine refused: type mismatch, no such entity...), ``not_found``,
  ``compacted`` (history no longer retained), ``fell_behind`` (a connection
  cut off for not reading its notifications), ``internal`` (a bug in the
  node), ``unauthenticated_peer`` (a peer message on a connection that has
  not proved it is a peer, or a failed peer handshake: SPEC 8.2), and, with
  SPEC 8.3's users, ``permission_denied`` (the user's roles do not allow it),
  ``auth_required`` (the connection has not authenticated, or its user was
  deleted) and ``invalid_credentials`` (a failed ``Authenticate``).
  A kind this module does not know is final too.

Every error frame and refusal the node sends is built here.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from qcore.protocol import messages as m

__all__ = ["Kind", "NOT_APPLIED", "retry_class", "error", "refusal", "Refusal", "refusal_of"]


class Kind(enum.StrEnum):
    NOT_LEADER = "not_leader"
    NO_LEADER = "no_leader"
    NOT_INITIALISED = "not_initialised"
    REMOVED = "removed"
    SHUTTING_DOWN = "shutting_down"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    OUTCOME_UNKNOWN = "outcome_unknown"
    INVALID = "invalid"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    COMPACTED = "compacted"
    FELL_BEHIND = "fell_behind"
    INTERNAL = "internal"
    PERMISSION_DENIED = "permission_denied"
    AUTH_REQUIRED = "auth_required"
    UNAUTHENTICATED_PEER = "unauthenticated_peer"
    INVALID_CREDENTIALS = "invalid_credentials"


#: The kinds that promise the request was not applied.
NOT_APPLIED = frozenset({
    Kind.NOT_LEADER, Kind.NO_LEADER, Kind.NOT_INITIALISED, Kind.REMOVED, Kind.SHUTTING_DOWN,
    Kind.OVERLOADED, Kind.UNAVAILABLE,
})


def retry_class(kind: str | None) -> Literal["definite", "unknown", "final"]:
    """``"definite"``: not applied, any request may be re-sent; ``"unknown"``: only a
    request safe to repeat may be; ``"final"``: do not re-send (the module docstring)."""
    if kind in NOT_APPLIED:
        return "definite"
    if kind == Kind.OUTCOME_UNKNOWN:
        return "unknown"
    return "final"


def error(rid: Any, kind: Kind, text: str, *, leader_id: int | None = None,
          leader_addr: str | None = None) -> m.Error:
    """An ``Error`` frame; ``leader_id``/``leader_addr`` say where to go for ``not_leader``."""
    return m.Error(rid, text, kind.value, leader_id or None, leader_addr)


def refusal(reply_type: type[Any], rid: Any, kind: Kind, text: str) -> Any:
    """A response union's failure: ``reply_type(rid, {"Err": text})`` with its ``kind``."""
    return reply_type(rid, m.err(text), kind.value)


class Refusal:
    """What a reply says about a failure: its text, kind, and the leader if named."""

    __slots__ = ("text", "kind", "leader_id", "leader_addr")

    def __init__(self, text: str, kind: str | None, leader_id: int | None = None,
                 leader_addr: str | None = None) -> None:
        self.text, self.kind, self.leader_id, self.leader_addr = text, kind, leader_id, leader_addr

    @property
    def retry(self) -> Literal["definite", "unknown", "final"]:
        return retry_class(self.kind)

    def __repr__(self) -> str:
        return f"Refusal({self.text!r}, {self.kind!r}, {self.leader_id!r}, {self.leader_addr!r})"


def refusal_of(reply: Any) -> Refusal | None:
    """The failure an ``Error`` frame or a ``{"Err": ...}`` union reports, else None.

    A command's own ``error`` (inside a ``PerformResponse``) is not looked at:
    it is the state machine's final answer, whatever its kind; nor is a
    ``GetMetricsResponse``, whose ``response`` is the metrics, not a union.
    """
    t = type(reply)
    if t is m.Error:
        return Refusal(reply.error, reply.kind, reply.leader_id, reply.leader_addr)
    if t is m.PerformResponse or t is m.GetMetricsResponse or not hasattr(reply, "response"):
        return None
    ok, value = m.result_of(reply.response)
    if ok:
        return None
    return Refusal(str(value), getattr(reply, "kind", None))
