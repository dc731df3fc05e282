"""Permissions and the evaluator that decides them (SPEC 8.3).

A permission is ``{"entity_type": "Sensor" | "*", "field": "Value" | "*",
"access": ["read", "write", "create", "delete"]}``. It grants each listed
access on the fields it names of its type *and of every type that inherits
from it* (``*``: every type, every field). ``create`` and ``delete`` are about
whole entities, so for them the permission's ``field`` does not matter.

:class:`Grants` is what one user may do: the union of the permissions of the
user's roles, with each decision worked out once and remembered, so that the
check a request pays is one dict look-up per (access, type, field). A Grants
is built against the schema's inheritance as it is; its owner drops it when
roles or schemas change (qcore.store.access.GrantsCache).

Pure: no I/O, and nothing here depends on anything but its arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ACCESS", "ANY", "Permission", "Grants", "parse_permissions", "permissions_json", "FULL_ACCESS"]

ACCESS = ("read", "write", "create", "delete")
ANY = "*"
_ENTITY_ACCESS = frozenset({"create", "delete"})
_MAX_NAME = 256
#: Decisions a Grants remembers, per table. Types and fields are named by clients, so one
#: naming ever new ones (each then refused by the store) must not grow it without bound;
#: a full table starts over, which changes no answer.
MAX_REMEMBERED = 1 << 14

Lineage = Callable[[str], Sequence[str]]  # a type and every type it inherits from, nearest first


@dataclass(frozen=True, slots=True)
class Permission:
    entity_type: str
    field: str
    access: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {"entity_type": self.entity_type, "field": self.field,
                "access": [a for a in ACCESS if a in self.access]}


#: Role admin's one permission: everything.
FULL_ACCESS = Permission(ANY, ANY, frozenset(ACCESS))


def _name(v: Any, what: str) -> str:
    if type(v) is not str or not v or len(v) > _MAX_NAME:
        raise ValueError(f"{what}: expected a type or field name (1..{_MAX_NAME} characters) or \"*\"")
    return v


def parse_permission(obj: Any, where: str = "permission") -> Permission:
    """One permission from its JSON; ValueError says where and what is wrong."""
    if type(obj) is not dict:
        raise ValueError(f'{where}: expected {{"entity_type", "field", "access"}}')
    unknown = sorted(set(obj) - {"entity_type", "field", "access"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    typ = _name(obj.get("entity_type"), f"{where}.entity_type")
    fld = _name(obj.get("field", ANY), f"{where}.field")
    access = obj.get("access")
    if type(access) is not list or not access:
        raise ValueError(f"{where}.access: expected a non-empty list of {', '.join(ACCESS)}")
    for i, a in enumerate(access):
        if a not in ACCESS:
            raise ValueError(f"{where}.access[{i}]: expected one of {', '.join(ACCESS)}, got {a!r}")
    return Permission(typ, fld, frozenset(access))


def parse_permissions(obj: Any, where: str = "permissions") -> tuple[Permission, ...]:
    if type(obj) is not list:
        raise ValueError(f"{where}: expected a list of permissions")
    return tuple(parse_permission(p, f"{where}[{i}]") for i, p in enumerate(obj))


def permissions_json(perms: Iterable[Permission]) -> list[dict[str, Any]]:
    return [p.to_json() for p in perms]


class Grants:
    """What one user may do (see the module docstring).

    ``admin`` grants everything without looking at ``permissions``.
    ``lineage(t)`` gives ``t`` and its ancestors (an unknown type: just ``t``).
    """

    __slots__ = ("admin", "_perms", "_lineage", "_fields", "_types", "_lineages")

    def __init__(self, permissions: Iterable[Permission], lineage: Lineage, admin: bool = False) -> None:
        self.admin = admin
        self._perms = tuple(permissions)
        self._lineage = lineage
        self._fields: dict[tuple[str, str, str], bool] = {}  # (access, type, field) -> decision
        self._types: dict[tuple[str, str], bool] = {}  # (access, type) -> some field of it
        self._lineages: dict[str, frozenset[str]] = {}

    def _covering(self, typ: str) -> frozenset[str]:
        lin = self._lineages.get(typ)
        if lin is None:
            if len(self._lineages) >= MAX_REMEMBERED:
                self._lineages.clear()
            lin = self._lineages[typ] = frozenset(self._lineage(typ))
        return lin

    def allows(self, access: str, typ: str, field: str) -> bool:
        """May `access` be used on `field` of an entity of type `typ`?"""
        if self.admin:
            return True
        key = (access, typ, field)
        decision = self._fields.get(key)
        if decision is None:
            if access in _ENTITY_ACCESS:
                decision = self.on_type(access, typ)
            else:
                covering = self._covering(typ)
                decision = any(
                    access in p.access and (p.field == ANY or p.field == field)
                    and (p.entity_type == ANY or p.entity_type in covering)
                    for p in self._perms
                )
            if len(self._fields) >= MAX_REMEMBERED:
                self._fields.clear()
            self._fields[key] = decision
        return decision

    def on_type(self, access: str, typ: str) -> bool:
        """May `access` be used on some field of type `typ` (for create and
        delete: on its entities)? ``read`` here is "read on something of the type"."""
        if self.admin:
            return True
        key = (access, typ)
        decision = self._types.get(key)
        if decision is None:
            covering = self._covering(typ)
            if len(self._types) >= MAX_REMEMBERED:
                self._types.clear()
            decision = self._types[key] = any(
                access in p.access and (p.entity_type == ANY or p.entity_type in covering) for p in self._perms
            )
        return decision
