"""The client's exceptions, all under :exc:`QcoreError`.

* :exc:`QcoreError`
    * :exc:`ConnectionFailed` — no node could be reached; nothing was sent.
    * :exc:`RequestTimeout` — an idempotent request got no reply in time,
      after its retries (``kind`` ``outcome_unknown``: the node's answer that it
      did not finish in time). One that changes something (``SetSchema``,
      ``AddLearner``, ``ChangeMembership``, ``RemoveNode``) may have been applied.
    * :exc:`UnknownOutcome` — a write was sent but its reply was lost (the
      connection dropped, or no reply within the timeout): it may or may not
      have been applied. Not retried unless ``retry_writes=True``.
    * :exc:`ServerError` — the node answered ``{"Error": ...}``, or a
      management reply was ``{"Err": ...}``: the request was not served.
        * :exc:`NotLeader` — the node could not reach a leader, or names
          another node as leader, and the retries ran out.
        * :exc:`AuthenticationFailed` — the client's user and password were
          refused (kind ``invalid_credentials``); nothing else was sent.
    * :exc:`CommandError` — the command ran and failed: the ``error`` field
      of a ``PerformResponse`` (type mismatch, unknown entity, ...).
    * :exc:`InvalidValue` (also a ``ValueError``) — a value that does not fit
      its field's type, found before anything was sent.
    * :exc:`HistoryCompacted` — a notification stream could not be resumed:
      the changes since its last notification are no longer retained.

Only :exc:`UnknownOutcome` and a :exc:`RequestTimeout` of a request that
changes something leave the caller unsure of the database's state (sending
the latter again is safe); every other error means the request had no effect
(or, for reads, that there is no answer).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "QcoreError",
    "ConnectionFailed",
    "RequestTimeout",
    "UnknownOutcome",
    "ServerError",
    "NotLeader",
    "AuthenticationFailed",
    "CommandError",
    "InvalidValue",
    "HistoryCompacted",
]


class QcoreError(Exception):
    """Base class of every error the client raises."""


class ConnectionFailed(QcoreError):
    """No address accepted a WebSocket connection before the deadline."""


class RequestTimeout(QcoreError):
    """No reply within the request timeout (idempotent requests only); ``kind`` is
    ``outcome_unknown`` when the node answered that it did not finish in time, else None."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class UnknownOutcome(QcoreError):
    """The write may or may not have been applied: its reply was lost.

    Read the data back to find out, or pass ``retry_writes=True`` if applying
    the write twice is acceptable.
    """


class ServerError(QcoreError):
    """The node refused the request: an ``Error`` frame or an ``{"Err": ...}`` reply.
    ``kind`` is the node's reason (:class:`qcore.protocol.errors.Kind`), ``message`` its text."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class NotLeader(ServerError):
    """No leader could serve the request before its deadline (kind ``no_leader``: none
    is elected, as when a majority is down; ``not_leader``: one could not be reached)."""

    def __init__(self, message: str, leader_id: int | None = None, leader_addr: str | None = None,
                 kind: str | None = "no_leader") -> None:
        super().__init__(message, kind)
        self.leader_id = leader_id
        self.leader_addr = leader_addr


class AuthenticationFailed(ServerError):
    """The node refused the client's user and password (``invalid user or password``)."""


class CommandError(QcoreError):
    """The command was executed and failed; ``response`` is the raw ``CommandResponse``,
    ``kind`` the node's reason (``rejected``: the state machine refused it)."""

    def __init__(self, message: str, response: dict[str, Any] | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.kind = kind


class InvalidValue(QcoreError, ValueError):
    """A value that does not fit its field's type (``Machine$10.Temperature is a Float field:
    cannot use 'hot'``); nothing was sent."""


class HistoryCompacted(QcoreError):
    """A watch could not resume: re-read the state, then watch again."""
