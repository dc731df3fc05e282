"""The client's ``AuthAdmin`` helpers (SPEC 8.3): users, roles, and turning users on.

    async with Client(addrs, user="admin", password=pw) as c:
        await c.role_add("dashboard", ["*.*=read"])
        await c.user_add("grafana", "s3cret", roles=["dashboard"])
        await c.auth_enable()

A permission is given as its JSON (``{"entity_type", "field", "access"}``) or
as text, ``TYPE[.FIELD]=ACCESS[,ACCESS...]`` (``Sensor.Value=read,write``,
``*.*=read``, ``Sensor=create,delete``; no field means every field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from qcore.client import command_json
from qcore.client.errors import ServerError
from qcore.client.session import Session
from qcore.protocol.auth import AuthAdmin, AuthAdminResponse
from qcore.protocol.errors import refusal_of
from qcore.store.permissions import ACCESS, ANY, parse_permission

__all__ = ["UserAdmin", "permission"]


def permission(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """A permission's JSON from its text form or JSON; ValueError says what is wrong."""
    if isinstance(spec, Mapping):
        return parse_permission(dict(spec)).to_json()
    target, sep, access = spec.partition("=")
    if not sep or not target or not access:
        raise ValueError(f"bad permission {spec!r}: expected TYPE[.FIELD]=ACCESS[,ACCESS] "
                         f"(ACCESS one of {', '.join(ACCESS)}), e.g. Sensor.Value=read,write")
    typ, dot, field = target.partition(".")
    obj = {"entity_type": typ, "field": field if dot else ANY,
           "access": [a.strip() for a in access.split(",") if a.strip()]}
    return parse_permission(obj, f"permission {spec!r}").to_json()


class UserAdmin(Session):
    """Session plus the AuthAdmin requests; :class:`qcore.client.Client` has them all."""

    async def _auth_admin(self, tag: str, body: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        msg: Any = AuthAdmin(self.next_id(), {tag: body or {}})  # registered beside the seed's messages
        reply: Any = await self.request(msg, timeout=timeout)
        if type(reply) is not AuthAdminResponse:
            raise ServerError(f"unexpected reply to AuthAdmin {tag}: {type(reply).__name__}")
        why = refusal_of(reply)
        if why is not None:
            raise ServerError(why.text, why.kind)
        return reply.response.get("Ok") if isinstance(reply.response, dict) else None

    async def user_add(self, user: str, password: str, *, roles: Iterable[str] = (), entity: Any = None) -> Any:
        """Add a user (``entity``: the entity its writes are recorded as written by)."""
        return await self._auth_admin("UserAdd", {"user": user, "password": password, "roles": list(roles),
                                                  "entity": None if entity is None else command_json.entity_id(entity)})

    async def user_delete(self, user: str) -> Any:
        return await self._auth_admin("UserDelete", {"user": user})

    async def user_set_password(self, user: str, password: str) -> Any:
        """Set a user's password (any user may set their own). Setting this client's own
        also makes it the one the client authenticates with when it reconnects."""
        out = await self._auth_admin("UserSetPassword", {"user": user, "password": password})
        if user == self.user:
            self._password = password
        return out

    async def user_grant_role(self, user: str, role: str) -> Any:
        return await self._auth_admin("UserGrantRole", {"user": user, "role": role})

    async def user_revoke_role(self, user: str, role: str) -> Any:
        return await self._auth_admin("UserRevokeRole", {"user": user, "role": role})

    async def users(self) -> list[dict[str, Any]]:
        """Every user: ``{"user", "roles", "entity"}`` (admin only with users on)."""
        return await self._auth_admin("UserList")

    async def role_add(self, role: str, permissions: Iterable[str | Mapping[str, Any]] = ()) -> Any:
        return await self._auth_admin("RoleAdd", {"role": role, "permissions": [permission(p) for p in permissions]})

    async def role_delete(self, role: str) -> Any:
        return await self._auth_admin("RoleDelete", {"role": role})

    async def role_set_permissions(self, role: str, permissions: Iterable[str | Mapping[str, Any]]) -> Any:
        return await self._auth_admin("RoleSetPermissions",
                                      {"role": role, "permissions": [permission(p) for p in permissions]})

    async def roles(self) -> list[dict[str, Any]]:
        """Every role: ``{"role", "permissions", "builtin"}`` (admin only with users on)."""
        return await self._auth_admin("RoleList")

    async def auth_enable(self) -> Any:
        """Turn users on (there must be a user with role admin)."""
        return await self._auth_admin("AuthEnable")

    async def auth_disable(self) -> Any:
        return await self._auth_admin("AuthDisable")

    async def auth_status(self) -> dict[str, Any]:
        """``{"enabled", "revision", "user", "roles"}``: whether users are on, and who this connection is."""
        return await self._auth_admin("AuthStatus")
