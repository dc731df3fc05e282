"""Users and roles: the replicated auth state, beside the entity store (SPEC 8.3).

A pure, deterministic state machine, applied in log order on every node like
the entity store: the same changes give the same state and the same bytes.
It holds

* users: name -> (password hash, roles, linked entity, uid). The hash is an
  argon2id string made on the node that received the request, before it was
  proposed; no plaintext ever reaches this module. ``uid`` is a counter
  value fixed when the user is added, so a connection bound to a user that
  was deleted does not get its rights back from a new user of the same name;
* roles: name -> permissions (qcore.store.permissions). Role ``admin`` is
  built in: every access, plus schemas, membership and users; it is never
  stored, cannot be added, changed or deleted;
* ``enabled``: are users on. While they are, only an admin may change users
  and roles (a user may set their own password), and the last admin cannot
  be deleted or lose the role;
* ``revision``: counts changes; caches of decisions are keyed by it.

A refused change raises :class:`AuthRefused` (text and kind) and changes
nothing. The state round-trips through :meth:`AuthState.to_json` (versioned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from .permissions import Permission, parse_permissions, permissions_json
from .types import EntityId

__all__ = [
    "ADMIN", "AuthState", "AuthRefused", "User", "Role", "AuthChange",
    "UserAdd", "UserDelete", "UserSetPassword", "UserGrantRole", "UserRevokeRole",
    "RoleAdd", "RoleDelete", "RoleSetPermissions", "AuthEnable", "AuthDisable", "InitAdmin",
    "check_name", "SNAPSHOT_VERSION",
]

ADMIN = "admin"
SNAPSHOT_VERSION = 1
_MAX_NAME = 128
_MAX_HASH = 1024


class AuthRefused(Exception):
    """A change refused; ``kind`` as qcore.protocol.errors.Kind names it."""

    def __init__(self, text: str, kind: str = "rejected") -> None:
        super().__init__(text)
        self.text = text
        self.kind = kind


@dataclass(frozen=True, slots=True)
class User:
    name: str
    hash: str
    roles: tuple[str, ...]
    entity: EntityId | None
    uid: int

    @property
    def admin(self) -> bool:
        return ADMIN in self.roles


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    permissions: tuple[Permission, ...]


# ------------------------------------------------------------------ changes (what the log carries)


@dataclass(frozen=True, slots=True)
class UserAdd:
    user: str
    hash: str
    roles: tuple[str, ...] = ()
    entity: EntityId | None = None


@dataclass(frozen=True, slots=True)
class UserDelete:
    user: str


@dataclass(frozen=True, slots=True)
class UserSetPassword:
    user: str
    hash: str


@dataclass(frozen=True, slots=True)
class UserGrantRole:
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class UserRevokeRole:
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class RoleAdd:
    role: str
    permissions: tuple[Permission, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleDelete:
    role: str


@dataclass(frozen=True, slots=True)
class RoleSetPermissions:
    role: str
    permissions: tuple[Permission, ...]


@dataclass(frozen=True, slots=True)
class AuthEnable:
    pass


@dataclass(frozen=True, slots=True)
class AuthDisable:
    pass


@dataclass(frozen=True, slots=True)
class InitAdmin:
    """Init's ``admin_password``: user ``admin`` with role ``admin``, and users on."""

    hash: str


AuthChange = Union[UserAdd, UserDelete, UserSetPassword, UserGrantRole, UserRevokeRole, RoleAdd, RoleDelete,
                   RoleSetPermissions, AuthEnable, AuthDisable, InitAdmin]


def check_name(v: Any, what: str) -> str:
    """A user or role name: 1..128 characters, no control characters, not padded with spaces."""
    if type(v) is not str or not v or len(v) > _MAX_NAME:
        raise ValueError(f"{what}: expected a name of 1..{_MAX_NAME} characters")
    if v != v.strip() or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{what}: a name may not have control characters or leading/trailing spaces")
    return v


def _check_hash(h: Any) -> str:
    if type(h) is not str or not h.startswith("$") or len(h) > _MAX_HASH:
        raise AuthRefused("not a password hash")
    return h


class AuthState:
    __slots__ = ("users", "roles", "enabled", "revision", "next_uid")

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.roles: dict[str, Role] = {}
        self.enabled = False
        self.revision = 0
        self.next_uid = 1

    @property
    def empty(self) -> bool:
        """Never changed: a node's snapshot then holds the entity store alone, as before users existed."""
        return self.revision == 0

    def permissions_of(self, user: User) -> list[Permission]:
        out: list[Permission] = []
        for r in user.roles:
            role = self.roles.get(r)
            if role is not None:
                out.extend(role.permissions)
        return out

    def admins(self) -> int:
        return sum(1 for u in self.users.values() if u.admin)

    # ------------------------------------------------------------------ apply

    def apply(self, change: AuthChange, actor: str | None, actor_uid: int | None = None,
              entity_exists: Callable[[EntityId], bool] | None = None) -> None:
        """Apply `change` made by user `actor` (None: no user) whose uid was `actor_uid` when it
        authenticated (None: whichever user has that name); AuthRefused if it may not be.
        With `entity_exists` (the entity store's answer at this log position), a user may be
        linked only to an entity that exists; without, to any (log entries before level 2)."""
        if self.enabled:
            self._authorise(change, actor, actor_uid)
        handler = _HANDLERS.get(change.__class__)
        if handler is None:
            raise AuthRefused(f"not an auth change: {change.__class__.__name__}", "invalid")
        if change.__class__ is UserAdd:
            self._user_add(change, entity_exists)
        else:
            handler(self, change)
        self.revision += 1

    def _authorise(self, change: AuthChange, actor: str | None, actor_uid: int | None) -> None:
        if actor is None:
            raise AuthRefused("authentication required", "auth_required")
        user = self.users.get(actor)
        if user is None or (actor_uid is not None and user.uid != actor_uid):
            raise AuthRefused(f"authentication required: user {actor} no longer exists", "auth_required")
        if user.admin or (change.__class__ is UserSetPassword and change.user == actor):
            return
        raise AuthRefused(f"permission denied: {actor} may not {change.__class__.__name__} (admin only)",
                          "permission_denied")

    def _user(self, name: str) -> User:
        u = self.users.get(name)
        if u is None:
            raise AuthRefused(f"no user named {name!r}", "not_found")
        return u

    def _role(self, name: str) -> None:
        if name != ADMIN and name not in self.roles:
            raise AuthRefused(f"no role named {name!r}", "not_found")

    def _keeps_an_admin(self, losing: str) -> None:
        if self.enabled and self.users[losing].admin and self.admins() == 1:
            raise AuthRefused(f"{losing} is the last user with role admin while users are on; "
                              "make another admin first, or turn users off")

    def _user_add(self, c: UserAdd, entity_exists: Callable[[EntityId], bool] | None = None) -> None:
        name = _checked(c.user, "user")
        if name in self.users:
            raise AuthRefused(f"user {name!r} already exists")
        roles = tuple(sorted(set(c.roles)))
        for r in roles:
            self._role(r)
        if c.entity is not None and entity_exists is not None and not entity_exists(c.entity):
            raise AuthRefused(f"entity {c.entity} does not exist", "not_found")
        self.users[name] = User(name, _check_hash(c.hash), roles, c.entity, self.next_uid)
        self.next_uid += 1

    def _user_delete(self, c: UserDelete) -> None:
        self._user(c.user)
        self._keeps_an_admin(c.user)
        del self.users[c.user]

    def _user_set_password(self, c: UserSetPassword) -> None:
        u = self._user(c.user)
        self.users[u.name] = User(u.name, _check_hash(c.hash), u.roles, u.entity, u.uid)

    def _grant(self, c: UserGrantRole) -> None:
        u = self._user(c.user)
        self._role(c.role)
        if c.role not in u.roles:
            self.users[u.name] = User(u.name, u.hash, tuple(sorted((*u.roles, c.role))), u.entity, u.uid)

    def _revoke(self, c: UserRevokeRole) -> None:
        u = self._user(c.user)
        if c.role not in u.roles:
            raise AuthRefused(f"user {u.name!r} does not have role {c.role!r}")
        if c.role == ADMIN:
            self._keeps_an_admin(u.name)
        self.users[u.name] = User(u.name, u.hash, tuple(r for r in u.roles if r != c.role), u.entity, u.uid)

    def _role_add(self, c: RoleAdd) -> None:
        name = _checked(c.role, "role")
        if name == ADMIN or name in self.roles:
            raise AuthRefused(f"role {name!r} already exists")
        self.roles[name] = Role(name, tuple(c.permissions))

    def _role_delete(self, c: RoleDelete) -> None:
        if c.role == ADMIN:
            raise AuthRefused("role admin is built in; it cannot be deleted")
        self._role(c.role)
        del self.roles[c.role]
        for u in list(self.users.values()):  # users lose the role with it
            if c.role in u.roles:
                self.users[u.name] = User(u.name, u.hash, tuple(r for r in u.roles if r != c.role), u.entity, u.uid)

    def _role_set(self, c: RoleSetPermissions) -> None:
        if c.role == ADMIN:
            raise AuthRefused("role admin is built in; its permissions cannot be changed")
        self._role(c.role)
        self.roles[c.role] = Role(c.role, tuple(c.permissions))

    def _enable(self, c: AuthEnable) -> None:
        if not self.admins():
            raise AuthRefused("users cannot be turned on without a user with role admin; add one first")
        self.enabled = True

    def _disable(self, c: AuthDisable) -> None:
        self.enabled = False

    def _init_admin(self, c: InitAdmin) -> None:
        if ADMIN in self.users:
            raise AuthRefused("user admin already exists")
        self.users[ADMIN] = User(ADMIN, _check_hash(c.hash), (ADMIN,), None, self.next_uid)
        self.next_uid += 1
        self.enabled = True

    # --------------------------------------------------------------- snapshot

    def to_json(self) -> dict[str, Any]:
        """Deterministic (sorted) JSON of the whole state."""
        return {
            "v": SNAPSHOT_VERSION,
            "enabled": self.enabled,
            "revision": self.revision,
            "next_uid": self.next_uid,
            "users": [[u.name, u.hash, list(u.roles), None if u.entity is None else [u.entity.typ, u.entity.id], u.uid]
                      for u in sorted(self.users.values(), key=lambda u: u.name)],
            "roles": [[r.name, permissions_json(r.permissions)] for r in sorted(self.roles.values(), key=lambda r: r.name)],
        }

    @classmethod
    def from_json(cls, doc: Any) -> AuthState:
        """The state :meth:`to_json` wrote; ValueError if it is not one."""
        if type(doc) is not dict or doc.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"auth state: unknown version {doc.get('v') if type(doc) is dict else None!r}")
        st = cls()
        try:
            st.enabled = bool(doc["enabled"])
            st.revision = int(doc["revision"])
            st.next_uid = int(doc["next_uid"])
            for name, h, roles, ent, uid in doc["users"]:
                entity = None if ent is None else EntityId(str(ent[0]), int(ent[1]))
                st.users[name] = User(check_name(name, "user"), str(h), tuple(roles), entity, int(uid))
            for name, perms in doc["roles"]:
                st.roles[name] = Role(check_name(name, "role"), parse_permissions(perms))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"auth state: {exc}") from None
        return st


def _checked(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except ValueError as exc:
        raise AuthRefused(str(exc), "invalid") from None


_HANDLERS: dict[type, Any] = {
    UserAdd: AuthState._user_add,
    UserDelete: AuthState._user_delete,
    UserSetPassword: AuthState._user_set_password,
    UserGrantRole: AuthState._grant,
    UserRevokeRole: AuthState._revoke,
    RoleAdd: AuthState._role_add,
    RoleDelete: AuthState._role_delete,
    RoleSetPermissions: AuthState._role_set,
    AuthEnable: AuthState._enable,
    AuthDisable: AuthState._disable,
    InitAdmin: AuthState._init_admin,
}
