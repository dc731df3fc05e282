"""Reading an entity schema from data: one set of rules for the config file and the wire.

The config file (YAML, :mod:`qcore.store.config`, also ``qcore-cli
set-schema``) and ``SetSchema`` on the wire (JSON, :mod:`qcore.protocol.values`)
describe a schema as nested mappings, and both are read here, so that a typo
is refused the same way everywhere: an unknown key (``inherits``, ``rnak``)
is an error naming its path and the allowed keys, never ignored — ignored, it
would leave a type with no parent or the wrong rank, for good.

What differs between the two inputs is only how a value and an entity id are
written (the config file takes bare scalars, choice names and ``User$3``; the
wire takes tagged JSON), so those two readers are passed in. This module
checks the shape; what the names and values mean (non-empty names, parents
that exist, no cycle, a Choice default in range, distinct choice names) is
the store's own check (:func:`qcore.store.schema.validate_own`,
:func:`~qcore.store.schema.resolve_complete`), made when it is applied.
"""

from __future__ import annotations

from typing import Any, Callable

from .schema import EntitySchema, FieldSchema
from .types import I64_MAX, I64_MIN, EntityId, Value

__all__ = [
    "SCHEMA_KEYS",
    "FIELD_KEYS",
    "SchemaInputError",
    "ValueReader",
    "IdReader",
    "read_entity_schema",
    "read_field_schema",
    "describe",
    "join_path",
]

SCHEMA_KEYS = ("entity_type", "inherit", "fields")
FIELD_KEYS = ("field_type", "default_value", "rank", "read_permission", "write_permission", "choices")

#: ``(raw, path, choices of the field or None) -> Value``; raises SchemaInputError.
ValueReader = Callable[[Any, str, "tuple[str, ...] | None"], Value]
#: ``(raw, path) -> EntityId``; raises SchemaInputError.
IdReader = Callable[[Any, str], EntityId]


class SchemaInputError(ValueError):
    """A schema that cannot be read: ``path`` inside it (``fields.Email.rank``) and ``reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def join_path(path: str, segment: str) -> str:
    """``a.b`` + ``c`` -> ``a.b.c``; ``a`` + ``[2]`` -> ``a[2]``."""
    if not path:
        return segment
    if not segment:
        return path
    return path + segment if segment.startswith("[") else f"{path}.{segment}"


def describe(x: Any) -> str:
    """What a piece of input is, for error texts: ``boolean False``, ``string 'x'``, ``a list of 3 items``."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return f"boolean {x}"
    if isinstance(x, (int, float)):
        return f"number {x!r}"
    if isinstance(x, str):
        return f"string {x!r}" if len(x) < 40 else "a string"
    if isinstance(x, dict):
        return f"a mapping with keys {list(x)[:5]}"
    if isinstance(x, list):
        return f"a list of {len(x)} items"
    return type(x).__name__


def check_keys(d: dict[Any, Any], allowed: tuple[str, ...], path: str) -> None:
    """Refuse a key not in ``allowed``, naming it and the allowed ones."""
    for k in d:
        if k not in allowed:
            raise SchemaInputError(path, f"unknown key {k!r} (allowed: {', '.join(sorted(allowed))})")


def read_entity_schema(d: Any, value: ValueReader, entity_id: IdReader, path: str = "") -> EntitySchema:
    """``{entity_type, inherit?, fields?}`` -> EntitySchema."""
    if not isinstance(d, dict):
        raise SchemaInputError(path, f"expected a mapping with entity_type, inherit, fields; got {describe(d)}")
    check_keys(d, SCHEMA_KEYS, path)
    t = d.get("entity_type")
    if not isinstance(t, str):
        raise SchemaInputError(join_path(path, "entity_type"), f"expected a type name, got {describe(t)}")
    inherit = d.get("inherit")
    if inherit is not None and not isinstance(inherit, str):
        raise SchemaInputError(join_path(path, "inherit"), f"expected a type name or null, got {describe(inherit)}")
    fields_raw = d.get("fields")
    if fields_raw is None:
        fields_raw = {}
    where = join_path(path, "fields")
    if not isinstance(fields_raw, dict):
        raise SchemaInputError(where, f"expected a mapping of field name -> field, got {describe(fields_raw)}")
    fields = {}
    for name, fd in fields_raw.items():
        if not isinstance(name, str):
            raise SchemaInputError(where, f"field names must be strings, got {describe(name)}")
        fields[name] = read_field_schema(name, fd, value, entity_id, join_path(where, name))
    return EntitySchema(t, inherit, fields)


def read_field_schema(name: str | None, d: Any, value: ValueReader, entity_id: IdReader, path: str) -> FieldSchema:
    """One field; ``name`` (its key in ``fields``, if any) fills in and must equal ``field_type``."""
    if not isinstance(d, dict):
        raise SchemaInputError(path, f"expected a mapping {{default_value: ..., rank: ...}}, got {describe(d)}")
    check_keys(d, FIELD_KEYS, path)
    ft = d.get("field_type", name)
    if not isinstance(ft, str):
        raise SchemaInputError(join_path(path, "field_type"), f"expected a field name, got {describe(ft)}")
    if name is not None and ft != name:
        raise SchemaInputError(join_path(path, "field_type"), f"{ft!r} differs from the field's key {name!r}")
    choices = _choices(d.get("choices"), join_path(path, "choices"))
    if "default_value" not in d:
        raise SchemaInputError(path, "missing default_value (it fixes the field's type)")
    default = value(d["default_value"], join_path(path, "default_value"), choices)
    rank = d.get("rank", 0)
    if isinstance(rank, bool) or not isinstance(rank, int) or not I64_MIN <= rank <= I64_MAX:
        raise SchemaInputError(join_path(path, "rank"), f"expected an integer (signed 64-bit), got {describe(rank)}")
    perms = []
    for key in ("read_permission", "write_permission"):
        x = d.get(key)
        perms.append(None if x is None else entity_id(x, join_path(path, key)))
    return FieldSchema(ft, default, rank, perms[0], perms[1], choices)


def _choices(raw: Any, path: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise SchemaInputError(path, f"expected a list of choice names, got {describe(raw)}")
    for i, c in enumerate(raw):
        if not isinstance(c, str):
            raise SchemaInputError(
                f"{path}[{i}]", f"expected a choice name (a string), got {describe(c)}; write it quoted, e.g. \"{c}\""
            )
    return tuple(raw)
