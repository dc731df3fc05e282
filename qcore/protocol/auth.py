"""User messages (SPEC 8.3): ``Authenticate`` and ``AuthAdmin``, and the codec
of the auth changes the log carries.

Registered with :mod:`qcore.protocol.messages` (same codec, same rules).

* ``Authenticate {id, user, password}`` -> ``AuthenticateResponse {id, response:
  {"Ok": {"user", "roles", "entity"}} | {"Err": "invalid user or password"}, kind}``
* ``AuthAdmin {id, request}`` -> ``AuthAdminResponse {id, response: {"Ok": ...} |
  {"Err": "..."}, kind}``; ``request`` is one of ``UserAdd {user, password, roles,
  entity}``, ``UserDelete {user}``, ``UserSetPassword {user, password}``,
  ``UserGrantRole {user, role}``, ``UserRevokeRole {user, role}``, ``UserList {}``,
  ``RoleAdd {role, permissions}``, ``RoleDelete {role}``, ``RoleSetPermissions
  {role, permissions}``, ``RoleList {}``, ``AuthEnable {}``, ``AuthDisable {}``,
  ``AuthStatus {}``.

A request that carries a password is decoded into its change with an empty
hash and the password beside it: the node hashes the password and puts the
hash in the change before anything is proposed. The logged form of a change
(:func:`encode_change`) has the hash and never a password. No error text
here quotes a password.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from qcore.protocol.messages import _REQUIRED, _UNION_FIELDS, _Field, _id, _object, _str, register
from qcore.protocol.values import CodecError, decode_entity_id, encode_entity_id
from qcore.store.auth import (
    AuthChange,
    AuthDisable,
    AuthEnable,
    InitAdmin,
    RoleAdd,
    RoleDelete,
    RoleSetPermissions,
    UserAdd,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
    UserSetPassword,
    check_name,
)
from qcore.store.permissions import parse_permissions, permissions_json

__all__ = [
    "Authenticate", "AuthenticateResponse", "AuthAdmin", "AuthAdminResponse",
    "UserList", "RoleList", "AuthStatus", "AdminRead", "decode_admin_request", "encode_change", "decode_change",
    "INVALID_LOGIN", "MAX_PASSWORD",
]

#: The one answer to a failed Authenticate, whatever failed (SPEC 8.3).
INVALID_LOGIN = "invalid user or password"
MAX_PASSWORD = 4096  # characters; longer is refused before any hashing


@dataclasses.dataclass(slots=True)
class Authenticate:
    TAG: ClassVar[str] = "Authenticate"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("user", _str, _REQUIRED),
                                            ("password", _str, _REQUIRED))
    id: str | int
    user: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass(slots=True)
class AuthenticateResponse:
    TAG: ClassVar[str] = "AuthenticateResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None


@dataclasses.dataclass(slots=True)
class AuthAdmin:
    TAG: ClassVar[str] = "AuthAdmin"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any] = dataclasses.field(repr=False)  # may hold a password


@dataclasses.dataclass(slots=True)
class AuthAdminResponse:
    TAG: ClassVar[str] = "AuthAdminResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None


register(Authenticate, AuthenticateResponse)
register(AuthAdmin, AuthAdminResponse)


# ------------------------------------------------------------------ the requests that only read


@dataclasses.dataclass(frozen=True, slots=True)
class UserList:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class RoleList:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class AuthStatus:
    pass


AdminRead = UserList | RoleList | AuthStatus


# ------------------------------------------------------------------ decoding a client's request


def _name(body: dict[str, Any], key: str, what: str) -> str:
    try:
        return check_name(body.get(key), f"{what}.{key}")
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def _password(body: dict[str, Any], what: str) -> str:
    pw = body.get("password")
    if type(pw) is not str or not pw or len(pw) > MAX_PASSWORD:
        raise CodecError(f"{what}.password: expected a string of 1..{MAX_PASSWORD} characters")
    return pw


def _roles(body: dict[str, Any], what: str) -> tuple[str, ...]:
    roles = body.get("roles", [])
    if type(roles) is not list:
        raise CodecError(f"{what}.roles: expected a list of role names")
    out = []
    for i, r in enumerate(roles):
        try:
            out.append(check_name(r, f"{what}.roles[{i}]"))
        except ValueError as exc:
            raise CodecError(str(exc)) from None
    return tuple(out)


def _perms(body: dict[str, Any], what: str, required: bool) -> Any:
    if "permissions" not in body and not required:
        return ()
    try:
        return parse_permissions(body.get("permissions"), f"{what}.permissions")
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def _entity(body: dict[str, Any], what: str) -> Any:
    raw = body.get("entity")
    if raw is None:
        return None
    try:
        return decode_entity_id(raw)
    except CodecError as exc:
        raise exc.within(f"{what}.entity") from None


_READS: dict[str, Any] = {"UserList": UserList, "RoleList": RoleList, "AuthStatus": AuthStatus}


def decode_admin_request(obj: Any) -> tuple[AuthChange | AdminRead, str | None]:
    """A client's ``AuthAdmin.request``: (the change or read, the password it carries or None).
    A change that takes a password has an empty hash until the node fills it in."""
    if type(obj) is not dict or len(obj) != 1:
        raise CodecError("request: expected an object with one key, the AuthAdmin request type")
    ((tag, body),) = obj.items()
    what = f"request.{tag}"
    if type(body) is not dict:
        raise CodecError(f"{what}: expected an object")
    if tag in _READS:
        return _READS[tag](), None
    if tag == "UserAdd":
        return UserAdd(_name(body, "user", what), "", _roles(body, what), _entity(body, what)), _password(body, what)
    if tag == "UserSetPassword":
        return UserSetPassword(_name(body, "user", what), ""), _password(body, what)
    if tag == "UserDelete":
        return UserDelete(_name(body, "user", what)), None
    if tag in ("UserGrantRole", "UserRevokeRole"):
        cls = UserGrantRole if tag == "UserGrantRole" else UserRevokeRole
        return cls(_name(body, "user", what), _name(body, "role", what)), None
    if tag == "RoleAdd":
        return RoleAdd(_name(body, "role", what), _perms(body, what, False)), None
    if tag == "RoleDelete":
        return RoleDelete(_name(body, "role", what)), None
    if tag == "RoleSetPermissions":
        return RoleSetPermissions(_name(body, "role", what), _perms(body, what, True)), None
    if tag == "AuthEnable":
        return AuthEnable(), None
    if tag == "AuthDisable":
        return AuthDisable(), None
    raise CodecError(f"request: unknown AuthAdmin request {tag!r}; expected one of UserAdd, UserDelete, "
                     "UserSetPassword, UserGrantRole, UserRevokeRole, UserList, RoleAdd, RoleDelete, "
                     "RoleSetPermissions, RoleList, AuthEnable, AuthDisable, AuthStatus")


# ------------------------------------------------------------------ the logged form


def encode_change(c: AuthChange) -> dict[str, Any]:
    """A change as the log carries it: hashes, never passwords."""
    tag = c.__class__.__name__
    body: dict[str, Any] = {}
    for f in dataclasses.fields(c):
        v = getattr(c, f.name)
        if f.name == "entity":
            v = None if v is None else encode_entity_id(v)
        elif f.name == "permissions":
            v = permissions_json(v)
        elif f.name == "roles":
            v = list(v)
        body[f.name] = v
    return {tag: body}


_CHANGES: dict[str, type] = {cls.__name__: cls for cls in (
    UserAdd, UserDelete, UserSetPassword, UserGrantRole, UserRevokeRole, RoleAdd, RoleDelete,
    RoleSetPermissions, AuthEnable, AuthDisable, InitAdmin)}


def decode_change(obj: Any) -> AuthChange:
    """A change from the log (encode_change's output); CodecError if it is not one."""
    if type(obj) is not dict or len(obj) != 1:
        raise CodecError("auth change: expected an object with one key")
    ((tag, body),) = obj.items()
    cls = _CHANGES.get(tag)
    if cls is None or type(body) is not dict:
        raise CodecError(f"auth change: unknown change {tag!r}")
    args: dict[str, Any] = {}
    try:
        for f in dataclasses.fields(cls):
            v = body[f.name]
            if f.name == "entity":
                v = None if v is None else decode_entity_id(v)
            elif f.name == "permissions":
                v = parse_permissions(v)
            elif f.name == "roles":
                v = tuple(v)
            args[f.name] = v
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"auth change {tag}: {exc}") from None
    return cls(**args)  # type: ignore[no-any-return]
