"""Users on the node's side (SPEC 8.3): who a connection is and what it may send.

Changes are checked where the log is applied (qcore.node.state_machine),
against the users and roles at their log position. This layer does the rest,
on the node a client is connected to:

* ``Authenticate`` binds a connection to a user (a :class:`Session`: name and
  uid), after a ReadIndex barrier, with the hash checked off the loop
  (qcore.node.passwords) and failures slowed (qcore.node.login_throttle);
* :meth:`Users.gate`: with users on, a client connection that has not
  authenticated may send only ``Authenticate``; management and operations
  messages need role admin;
* a write is wrapped in an envelope naming its user (qcore.node.entries)
  before it is proposed; a read is checked here, after its barrier;
* ``AuthAdmin``: passwords are hashed here, before anything is proposed;
  changes go through the log, reads are answered after a barrier;
* :meth:`Users.viewer` tells the notification hub what a connection may see.

A peer's connections (``/forward``) are trusted: a request a follower relays
was checked there and carries its user in its envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qcore.node.entries import Attributed, AuthCommand, attributed, auth_command, decode_command
from qcore.node.errors import NOT_INITIALISED_TEXT
from qcore.node.login_throttle import LoginThrottle
from qcore.node.notify_reads import context_of
from qcore.node.passwords import Passwords
from qcore.protocol import messages as m
from qcore.protocol.auth import (
    INVALID_LOGIN,
    AuthAdmin,
    AuthAdminResponse,
    Authenticate,
    AuthenticateResponse,
    AuthStatus,
    RoleList,
    UserList,
    decode_admin_request,
)
from qcore.protocol.errors import Kind, error, refusal
from qcore.protocol.page_cap import capped_page, page_too_large
from qcore.protocol.reply_size import ReadMeter, perform_reply
from qcore.protocol.values import (
    CodecError,
    decode_command_request,
    encode_entity_id,
    encode_refusal,
)
from qcore.store import Change, EntityExists, FieldExists, GetEntityTypes, NotifyConfigEntityId, Store, UpdateEntity
from qcore.store.access import denied_path, denied_query, readable_types
from qcore.store.auth import ADMIN, User, UserAdd, UserSetPassword
from qcore.store.permissions import FULL_ACCESS, Grants, permissions_json
from qcore.store.schema import PATH_SEP

if TYPE_CHECKING:
    from qcore.node.api import ConnContext
    from qcore.node.state_machine import StateMachine

log = logging.getLogger(__name__)

__all__ = ["Users", "Session", "Viewer"]

_AUTH_REQUIRED = "authentication required"
#: Messages only role admin may send while users are on.
ADMIN_ONLY = frozenset({"Init", "AddLearner", "ChangeMembership", "RemoveNode", "GetClusterMetrics",
                        "SnapshotSave", "SnapshotRead", "SnapshotRelease"})
#: ... of which these are checked again after a barrier (Users.guard): they change the cluster,
#: or hand out all of its data and password hashes (a backup).
RECHECKED = frozenset({"AddLearner", "ChangeMembership", "RemoveNode", "SnapshotSave"})
_LOG_EVERY = 10.0  # seconds between two lines about failed logins


@dataclass(frozen=True, slots=True)
class Session:
    """The user a connection authenticated as (the uid tells a re-added user of the same name apart)."""

    name: str
    uid: int


class Viewer:
    """What one connection may see of the changes notifications carry."""

    __slots__ = ("_store", "_user", "_grants")

    def __init__(self, store: Store, user: User | None, grants: Grants | None) -> None:
        self._store = store
        self._user = user
        self._grants = grants

    @property
    def name(self) -> str:
        return self._user.name if self._user is not None else ""

    def may_read(self, typ: str, field: str) -> bool:
        return self._grants is not None and self._grants.allows("read", typ, field)

    def context(self, ch: Change, paths: tuple[str, ...]) -> dict[str, Any]:
        """The context of a change, a path the user may not read (any hop of it) as null."""
        if self._grants is None:
            return dict.fromkeys(paths)
        allowed = [p for p in paths if denied_path(self._store, self._grants, self.name, ch.entity_id, p, "read") is None]
        out = dict.fromkeys(paths)
        out.update(context_of(self._store, ch, allowed))
        return out

    def refusal(self, cfg: Any) -> tuple[Kind, str] | None:
        """Why a registration of `cfg` is refused for what it watches: ``read`` on an EntityId's
        field (every hop of its path), or on a type's field and the first hop of each context
        path (the entities beyond differ from change to change: checked per change). Asked
        before the registration is looked up in the store, so that a refusal does not tell
        whether the entity, type or field exists, or where a path leads."""
        if self._user is None or self._grants is None:
            return Kind.AUTH_REQUIRED, _AUTH_REQUIRED
        g, who, store = self._grants, self._user.name, self._store
        if cfg.__class__ is NotifyConfigEntityId:
            why = denied_path(store, g, who, cfg.entity_id, cfg.field_type, "read")
        else:
            typ, field = cfg.entity_type, cfg.field_type
            why = None if g.allows("read", typ, field) else f"permission denied: {who} may not read {typ}.{field}"
            for p in cfg.context:
                first = p.split(PATH_SEP, 1)[0]
                if why is None and not g.allows("read", typ, first):
                    why = f"permission denied: {who} may not read {typ}.{first}"
        return (Kind.PERMISSION_DENIED, why) if why is not None else None

    def context_refusal(self, cfg: Any, target: Any) -> tuple[Kind, str] | None:
        """Why an EntityId registration is refused for its context: ``read`` on every context
        path from `target`, the entity its field path reaches."""
        if self._user is None or self._grants is None:
            return Kind.AUTH_REQUIRED, _AUTH_REQUIRED
        for p in cfg.context:
            why = denied_path(self._store, self._grants, self._user.name, target, p, "read")
            if why is not None:
                return Kind.PERMISSION_DENIED, why
        return None


Propose = Callable[[Any, Any, Any, Any], Awaitable[Any]]  # (request id, conn, entry JSON, decoded) -> reply


class Users:
    def __init__(self, state_machine: Callable[[], StateMachine], barrier: Callable[[], Awaitable[None]],
                 propose: Propose, initialised: Callable[[], bool], passwords: Passwords | None = None,
                 clock: Callable[[], float] = time.monotonic, max_reply: int = 16 << 20) -> None:
        """``max_reply``: the largest read reply, in bytes (the node's --max-frame-bytes)."""
        self._sm = state_machine
        self._max_reply = max_reply
        self._barrier = barrier
        self._propose = propose
        self._initialised = initialised
        self.passwords = passwords if passwords is not None else Passwords()
        self._throttle = LoginThrottle(clock)
        self._clock = clock
        self._attempts: dict[tuple[str, str], list[Any]] = {}  # (user, address) -> [lock, users of it]
        self._logged_at = -_LOG_EVERY
        self._unlogged = 0

    @property
    def enabled(self) -> bool:
        return bool(self._sm().auth.enabled)

    def user_of(self, conn: ConnContext) -> User | None:
        """The connection's user as the auth state has it now; None (and unbound)
        if it never authenticated or its user has since been deleted."""
        s = conn.user
        if s is None:
            return None
        u = self._sm().auth.users.get(s.name)
        if u is None or u.uid != s.uid:
            conn.user = None
            return None
        return u

    # ------------------------------------------------------------------ every frame

    def gate(self, conn: ConnContext, msg: Any) -> m.Error | None:
        """With users on: may this client connection send this message at all?"""
        tag = msg.TAG
        if tag == "Authenticate":
            return None
        user = self.user_of(conn)
        if user is None:
            return error(msg.id, Kind.AUTH_REQUIRED, _AUTH_REQUIRED)
        if tag in ADMIN_ONLY and not user.admin:
            return error(msg.id, Kind.PERMISSION_DENIED, f"permission denied: {user.name} may not send {tag} (admin only)")
        return None

    def guard(self, handlers: dict[str, Callable[[Any, Any], Awaitable[Any]]]) -> None:
        """Put the handlers of :data:`RECHECKED` behind :meth:`linearizable_admin` (in place)."""
        for tag in RECHECKED:
            handlers[tag] = self.linearizable_admin(handlers[tag])

    def linearizable_admin(self, handler: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
        """`handler` (a membership change, a backup) behind an admin check made after a
        ReadIndex barrier, so that a follower that has not yet applied users going on, a
        revoke or a deletion does not let it through on a stale view. Not while users were
        never added: then nothing changes from before users existed."""
        async def guarded(msg: Any, conn: ConnContext | None) -> Any:
            if conn is not None and not conn.forwarded and not self._sm().auth.empty:
                await self._barrier()
                if self.enabled:
                    refused = self.gate(conn, msg)
                    if refused is not None:
                        return refused
            return await handler(msg, conn)
        return guarded

    # ------------------------------------------------------------------ Perform

    def prepare(self, conn: ConnContext | None, request: Any) -> tuple[Any, Any, Any]:
        """(the store command, the entry JSON to propose, its decoded form) for a Perform's
        request; CodecError if it is not one. A peer's relayed request may be an envelope."""
        if conn is not None and conn.forwarded:
            decoded = decode_command(request)
            if decoded.__class__ is Attributed:
                return decoded.command, request, decoded
            return decoded, request, decoded
        command = decode_command_request(request)
        s = conn.user if conn is not None else None
        if s is None:
            return command, request, command
        return command, attributed(s.name, request, s.uid), Attributed(s.name, command, s.uid)

    def read_reply(self, rid: Any, conn: ConnContext | None, command: Any) -> Any:
        """The reply to a read, served here after its barrier, as the connection's user may see it;
        an Error, before anything large is encoded, if it would be larger than a frame may be."""
        sm = self._sm()
        if not sm.auth.enabled or conn is None or conn.forwarded:
            return self._answer(rid, sm.store, command)
        user = self.user_of(conn)
        if user is None:
            return error(rid, Kind.AUTH_REQUIRED, _AUTH_REQUIRED)
        grants = sm.grants_of(user)
        why = denied_query(sm.store, grants, user.name, command)
        if why is not None:
            if command.__class__ in (EntityExists, FieldExists):  # their answers have no error of their own
                return error(rid, Kind.PERMISSION_DENIED, why)
            return m.PerformResponse(rid, encode_refusal(command, why, Kind.PERMISSION_DENIED.value))
        if command.__class__ is GetEntityTypes:
            return perform_reply(rid, readable_types(sm.store, grants, command), self._max_reply)
        return self._answer(rid, sm.store, command)

    def _answer(self, rid: Any, store: Store, command: Any) -> Any:
        """The store's answer, cut short once it is over the reply limit and then refused."""
        if command.__class__ is not UpdateEntity:
            capped = capped_page(command, self._max_reply)
            if capped is None:
                return perform_reply(rid, store.query(command), self._max_reply)
            resp = store.query(capped)  # no more ids than a frame can hold
            return page_too_large(rid, capped, resp, self._max_reply) or perform_reply(rid, resp, self._max_reply)
        meter = ReadMeter(command.request, self._max_reply)
        return perform_reply(rid, store.query(command, meter.add), self._max_reply, meter)

    # ------------------------------------------------------------------ notifications

    def viewer(self, conn: ConnContext) -> Viewer | None:
        """What `conn` may see; None: everything (users off, or a peer's connection)."""
        sm = self._sm()
        if not sm.auth.enabled or conn.forwarded:
            return None
        user = self.user_of(conn)
        return Viewer(sm.store, user, sm.grants_of(user) if user is not None else None)

    # ------------------------------------------------------------------ Init

    async def admin_entry(self, password: str) -> dict[str, str]:
        """What Init's entry carries to start with user admin and users on."""
        return {"admin": await self.passwords.hash(password)}

    # ------------------------------------------------------------------ Authenticate

    async def authenticate(self, msg: Authenticate, conn: ConnContext | None) -> Any:
        rid = msg.id
        if conn is None or conn.forwarded:
            return refusal(AuthenticateResponse, rid, Kind.INVALID,
                           "Authenticate binds a client's connection; a peer's connection is trusted as it is")
        if conn.state.get("authenticating"):
            return refusal(AuthenticateResponse, rid, Kind.OVERLOADED,
                           "an Authenticate is already in progress on this connection")
        if not self._initialised():
            return error(rid, Kind.NOT_INITIALISED, NOT_INITIALISED_TEXT)
        source = _source(conn.ws)
        conn.state["authenticating"] = True
        try:
            async with self._one_at_a_time(msg.user, source):
                wait = self._throttle.wait(msg.user, source, conn.state.get("auth_failures", 0))
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._barrier()  # linearizable: a changed password or a deleted user holds at once
                record = self._sm().auth.users.get(msg.user)
                ok = await self.passwords.verify(record.hash if record is not None else None, msg.password)
                now = self._sm().auth.users.get(msg.user)
                if not ok or record is None or now is None or now.uid != record.uid:
                    conn.user = None
                    conn.state["auth_failures"] = conn.state.get("auth_failures", 0) + 1
                    self._throttle.failed(msg.user, source)
                    self._log_failure(msg.user if record is not None else None, source)
                    return refusal(AuthenticateResponse, rid, Kind.INVALID_CREDENTIALS, INVALID_LOGIN)
                self._throttle.succeeded(msg.user, source)
                conn.state["auth_failures"] = 0
                conn.user = Session(now.name, now.uid)
                log.info("user %s authenticated from %s", now.name, source)
                return AuthenticateResponse(rid, m.ok(_user_json(now)))
        finally:
            conn.state["authenticating"] = False

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, user: str, source: str) -> AsyncIterator[None]:
        """One attempt at a time per (user, address): parallel guesses queue behind each other."""
        key = (user, source)
        entry = self._attempts.get(key)
        if entry is None:
            entry = self._attempts[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._attempts[key]

    def _log_failure(self, known_user: str | None, source: str) -> None:
        """At most one line per `_LOG_EVERY` seconds; an unknown name is not logged
        (people type their password where the name goes)."""
        now = self._clock()
        if now - self._logged_at < _LOG_EVERY:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failures since the last line)" if self._unlogged else ""
        self._logged_at, self._unlogged = now, 0
        who = f"user {known_user}" if known_user is not None else "an unknown user"
        log.warning("failed login for %s from %s%s", who, source, more)

    # ------------------------------------------------------------------ AuthAdmin

    async def auth_admin(self, msg: AuthAdmin, conn: ConnContext | None) -> Any:
        rid = msg.id
        try:
            req, password = decode_admin_request(msg.request)
        except CodecError as exc:
            return refusal(AuthAdminResponse, rid, Kind.INVALID, str(exc))
        if not self._initialised():
            return error(rid, Kind.NOT_INITIALISED, NOT_INITIALISED_TEXT)
        if isinstance(req, (UserList, RoleList, AuthStatus)):
            await self._barrier()
            return self._admin_read(rid, conn, req)
        sm = self._sm()
        actor = self.user_of(conn) if conn is not None else None
        if sm.auth.enabled and not (conn is not None and conn.forwarded):
            if actor is None:
                return refusal(AuthAdminResponse, rid, Kind.AUTH_REQUIRED, _AUTH_REQUIRED)
            if not actor.admin and not (isinstance(req, UserSetPassword) and req.user == actor.name):
                return refusal(AuthAdminResponse, rid, Kind.PERMISSION_DENIED,
                               f"permission denied: {actor.name} may not {req.__class__.__name__} (admin only)")
        if isinstance(req, (UserAdd, UserSetPassword)) and password is not None:
            req = dataclasses.replace(req, hash=await self.passwords.hash(password))  # the log never sees a password
        s = conn.user if conn is not None else None
        name, uid = (s.name, s.uid) if s is not None else (None, None)
        reply = await self._propose(rid, conn, auth_command(name, req, uid), AuthCommand(name, req, uid))
        return _admin_reply(rid, reply)

    def _admin_read(self, rid: Any, conn: ConnContext | None, req: Any) -> Any:
        auth = self._sm().auth
        actor = self.user_of(conn) if conn is not None else None
        if req.__class__ is AuthStatus:
            return AuthAdminResponse(rid, m.ok({
                "enabled": auth.enabled, "revision": auth.revision,
                "user": actor.name if actor is not None else None,
                "roles": list(actor.roles) if actor is not None else [],
            }))
        if auth.enabled and (actor is None or not actor.admin) and not (conn is not None and conn.forwarded):
            who = actor.name if actor is not None else "this connection"
            return refusal(AuthAdminResponse, rid, Kind.PERMISSION_DENIED,
                           f"permission denied: {who} may not {req.__class__.__name__} (admin only)")
        if req.__class__ is UserList:
            return AuthAdminResponse(rid, m.ok([_user_json(u) for _, u in sorted(auth.users.items())]))
        roles = [{"role": ADMIN, "permissions": permissions_json((FULL_ACCESS,)), "builtin": True}]
        roles += [{"role": r.name, "permissions": permissions_json(r.permissions), "builtin": False}
                  for _, r in sorted(auth.roles.items())]
        return AuthAdminResponse(rid, m.ok(roles))

    def close(self) -> None:
        self.passwords.close()


def _user_json(u: User) -> dict[str, Any]:
    return {"user": u.name, "roles": list(u.roles), "entity": None if u.entity is None else encode_entity_id(u.entity)}


def _admin_reply(rid: Any, reply: Any) -> Any:
    """AuthAdminResponse from the reply to the proposed change (a PerformResponse, or
    a relayed frame when a follower forwarded it), or the Error that came instead."""
    if isinstance(reply, m.PerformResponse):
        body = reply.response.get("AuthAdmin")
    else:
        frame = getattr(reply, "frame", None)
        if not isinstance(frame, dict) or "PerformResponse" not in frame:
            return reply  # an Error frame (relayed or our own)
        body = (frame["PerformResponse"].get("response") or {}).get("AuthAdmin")
    if not isinstance(body, dict):
        return error(rid, Kind.INTERNAL, f"internal error: unexpected result of an auth change: {str(reply)[:200]}")
    return AuthAdminResponse(rid, body.get("response"), body.get("kind"))


def _source(ws: Any) -> str:
    """The client's address (its host: a reconnect from another port is the same address)."""
    try:
        return str(ws.remote_address[0])
    except (AttributeError, TypeError, IndexError):
        return "?"
