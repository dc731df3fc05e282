"""Schemas: what fields an entity type has, and how inheritance combines them.

An :class:`EntitySchema` lists a type's *own* fields and optionally the one
type it inherits from. Its *complete* schema is the union of its ancestors'
fields with its own, a child's field overriding an ancestor's field of the
same name. :func:`resolve_complete` computes every complete schema at once and
reports unknown parents and inheritance cycles; the store caches the result
and recomputes it only when a schema changes (rarely), so reads and writes
never walk the inheritance chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .types import Choice, EntityId, EntityList, EntityReference, String, Value

# Fields the store maintains itself (SPEC 3: "by convention every type
# inherits Object, which has Name, Parent and Children") and the variant each
# must have if a type declares it.
NAME, PARENT, CHILDREN = "Name", "Parent", "Children"
MANAGED_VARIANTS: dict[str, type[Value]] = {NAME: String, PARENT: EntityReference, CHILDREN: EntityList}
PATH_SEP = "->"


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """One field of a type: its default value (which fixes its variant), its
    rank (display order), optional permission entities and, for ``Choice``
    fields, the names of the choices."""

    field_type: str
    default_value: Value
    rank: int = 0
    read_permission: EntityId | None = None
    write_permission: EntityId | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None and type(self.choices) is not tuple:
            object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True, slots=True)
class EntitySchema:
    """A type's own fields (``fields`` maps field name -> FieldSchema) and the
    type it inherits from. Treat ``fields`` as read-only."""

    entity_type: str
    inherit: str | None = None
    fields: Mapping[str, FieldSchema] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not EntitySchema:
            return NotImplemented
        return (
            self.entity_type == other.entity_type
            and self.inherit == other.inherit
            and dict(self.fields) == dict(other.fields)
        )

    def __hash__(self) -> int:
        return hash((self.entity_type, self.inherit, tuple(sorted(self.fields))))


class SchemaError(Exception):
    """A schema set that cannot be resolved (unknown parent, cycle, bad field).

    ``entity_type`` names the type whose schema is at fault."""

    def __init__(self, message: str, entity_type: str) -> None:
        super().__init__(message)
        self.entity_type = entity_type


def validate_own(schema: EntitySchema) -> str | None:
    """Check one schema on its own; return an error message or None."""
    t = schema.entity_type
    if type(t) is not str or not t:
        return "entity_type must be a non-empty string"
    if "$" in t or PATH_SEP in t:
        return f"entity type {t!r} may not contain '$' or '->'"
    if schema.inherit is not None and (type(schema.inherit) is not str or not schema.inherit):
        return f"inherit of {t!r} must be a non-empty string or null"
    for name, fs in schema.fields.items():
        where = f"field {name!r} of {t!r}"
        if type(name) is not str or not name:
            return f"field names of {t!r} must be non-empty strings"
        if PATH_SEP in name:
            return f"{where}: field names may not contain '->'"
        if fs.field_type != name:
            return f"{where}: field_type is {fs.field_type!r}, must equal its key {name!r}"
        if not isinstance(fs.default_value, Value):
            return f"{where}: default_value must be a Value"
        if fs.choices is not None:
            for c in fs.choices:
                if type(c) is not str:
                    return f"{where}: choices must be strings"
            if len(set(fs.choices)) != len(fs.choices):
                twice = sorted({c for c in fs.choices if fs.choices.count(c) > 1})
                return f"{where}: choice names must differ; listed twice: {', '.join(map(repr, twice))}"
        if fs.default_value.__class__ is Choice:
            if fs.choices is None or not fs.choices:
                return f"{where}: a Choice field needs a non-empty list of choices"
            if not 0 <= fs.default_value.v < len(fs.choices):
                return (
                    f"{where}: default Choice {fs.default_value.v} is out of range "
                    f"for {len(fs.choices)} choices"
                )
    return None


def resolve_complete(schemas: Mapping[str, EntitySchema]) -> dict[str, Mapping[str, FieldSchema]]:
    """Return every type's complete field map (ancestors' fields overridden by
    the type's own), or raise SchemaError for an unknown parent or a cycle.

    Field order in each map is deterministic: sorted by (rank, name).
    """
    out: dict[str, Mapping[str, FieldSchema]] = {}
    for t in sorted(schemas):
        chain: list[str] = []
        seen: set[str] = set()
        cur: str | None = t
        while cur is not None:
            if cur in seen:
                loop = chain[chain.index(cur):] + [cur]
                raise SchemaError(f"inheritance cycle: {' -> '.join(loop)}", loop[0])
            seen.add(cur)
            s = schemas.get(cur)
            if s is None:
                raise SchemaError(
                    f"{chain[-1]!r} inherits {cur!r}, which is not a known entity type", chain[-1]
                )
            chain.append(cur)
            cur = s.inherit
        merged: dict[str, FieldSchema] = {}
        for anc in reversed(chain):
            merged.update(schemas[anc].fields)
        for name, variant in MANAGED_VARIANTS.items():
            fs = merged.get(name)
            if fs is not None and fs.default_value.__class__ is not variant:
                raise SchemaError(
                    f"field {name!r} of {t!r} is maintained by the store and must be "
                    f"{variant.tag}, not {fs.default_value.tag}",
                    t,
                )
            if fs is not None and name != NAME and fs.default_value.v:
                raise SchemaError(
                    f"field {name!r} of {t!r} is maintained by the store: its default must be "
                    f"{'an empty EntityList' if name == CHILDREN else 'a null EntityReference'}",
                    t,
                )
        ordered = dict(sorted(merged.items(), key=lambda kv: (kv[1].rank, kv[0])))
        out[t] = MappingProxyType(ordered)
    return out


def descendants(schemas: Mapping[str, EntitySchema]) -> dict[str, tuple[str, ...]]:
    """Map each type to itself plus every type that inherits it at any depth
    (sorted). Assumes the inheritance graph is acyclic."""
    children: dict[str, list[str]] = {t: [] for t in schemas}
    for t, s in schemas.items():
        if s.inherit is not None and s.inherit in children:
            children[s.inherit].append(t)
    out: dict[str, tuple[str, ...]] = {}
    for t in schemas:
        acc: list[str] = []
        stack = [t]
        while stack:
            x = stack.pop()
            acc.append(x)
            stack.extend(children[x])
        out[t] = tuple(sorted(acc))
    return out
