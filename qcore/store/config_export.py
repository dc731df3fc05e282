"""A store written back as a config file (SPEC 4), for `qcore-cli export`.

`qcore --config-file FILE --init` brings the result back exactly: schemas
with their defaults, ranks, permissions and choices, and the entity tree
with every field that differs from its default. What the config format
cannot hold is left out: write times and writers.

Ids are renumbered. A config file's entities get their ids in file order,
depth first, from 1 on a fresh cluster (qcore.store.config), so the export
writes the tree in that order and rewrites every EntityReference and
EntityList (and schema permission) that points inside the exported tree to
the id the entity will have after the import. References to entities
outside it (with `root`) cannot survive the import: they are written as
null (dropped from lists) and counted in `ExportResult.dangling`.

Attributes are written bare where the field's type says how to read them
(`Count: 3`, `Owner: User$2`), tagged for Blob and Timestamp; schema
defaults always tagged. The file is written as it is walked, one entity at
a time, so memory stays flat. The structure is written here; a string that is not trivially a
plain YAML scalar is quoted by libyaml's emitter (PyYAML's C dumper when
present), so quoting is never guessed.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, TextIO, cast

import orjson
import yaml

from .commands import (
    FindEntities,
    FindEntitiesResponse,
    GetCompleteSchema,
    GetCompleteSchemaResponse,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
)
from .errors import StoreError
from .schema import EntitySchema, FieldSchema
from .state import Store
from .types import (
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    String,
    TimestampValue,
    Value,
)

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .@$/-]*\Z")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*\Z")
# Plain scalars YAML 1.1 (PyYAML) would read as something other than a string.
_RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})
_STRUCTURE = ("Name", "Parent", "Children")  # written as the tree itself, not as attributes


@dataclass(slots=True)
class ExportResult:
    entities: int = 0
    schemas: int = 0
    dangling: int = 0  # references to entities outside the exported tree, written as null / dropped


def scalar(s: str) -> str:
    """`s` as a YAML scalar that reads back as exactly this string."""
    if _PLAIN.match(s) and s[-1] != " " and s.lower() not in _RESERVED:
        return s
    if _PRINTABLE_ASCII.match(s):
        return orjson.dumps(s).decode()  # JSON's escapes are YAML's double-quoted escapes
    text: str = yaml.dump(s, Dumper=_Dumper, default_style='"', allow_unicode=True, width=1 << 30)
    return text.rstrip("\n")


def float_text(f: float) -> str:
    if math.isnan(f):
        return ".nan"
    if math.isinf(f):
        return ".inf" if f > 0 else "-.inf"
    text = repr(f)
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)  # YAML 1.1 floats need a dot: 1e+16 -> 1.0e+16
    return text


class _Writer:
    def __init__(self, renumber: dict[int, EntityId]) -> None:
        self._renumber = renumber
        self.dangling = 0

    def eid(self, e: EntityId | None) -> str:
        if e is None:
            return "null"
        new = self._renumber.get(e.id)
        if new is None or new.typ != e.typ:
            self.dangling += 1
            return "null"
        return scalar(f"{new.typ}${new.id}")

    def value(self, v: Value) -> str:
        cls, p = v.__class__, v.v
        if cls is String:
            return f"{{String: {scalar(p)}}}"
        if cls is Int:
            return f"{{Int: {p}}}"
        if cls is Bool:
            return "{Bool: true}" if p else "{Bool: false}"
        if cls is Float:
            return f"{{Float: {float_text(p)}}}"
        if cls is Choice:
            return f"{{Choice: {p}}}"
        if cls is EntityReference:
            return f"{{EntityReference: {self.eid(p)}}}"
        if cls is EntityList:
            items = [self.eid(e) for e in p]
            return "{EntityList: [" + ", ".join(i for i in items if i != "null") + "]}"
        if cls is Blob:
            return f'{{Blob: !!binary "{base64.b64encode(p).decode()}"}}'
        if cls is TimestampValue:
            return f"{{Timestamp: {{secs_since_epoch: {p.secs}, nanos_since_epoch: {p.nanos}}}}}"
        raise TypeError(f"cannot export a {cls.__name__}")

    def attribute(self, v: Value) -> str:
        """A tree attribute: bare where the field's type tells the loader how
        to read it back (qcore.store.config reads attributes by the field's
        variant), tagged for Blob and Timestamp. Bare values are fewer YAML
        events, and reading the events is most of an import's time."""
        cls, p = v.__class__, v.v
        if cls is String:
            return scalar(p)
        if cls is Int or cls is Choice:
            return str(p)
        if cls is Float:
            return float_text(p)
        if cls is Bool:
            return "true" if p else "false"
        if cls is EntityReference:
            return self.eid(p)
        if cls is EntityList:
            return "[" + ", ".join(i for i in (self.eid(e) for e in p) if i != "null") + "]"
        return self.value(v)

    def field(self, fs: FieldSchema) -> str:
        parts = [f"default_value: {self.value(fs.default_value)}", f"rank: {fs.rank}"]
        if fs.read_permission is not None:
            parts.append(f"read_permission: {self.eid(fs.read_permission)}")
        if fs.write_permission is not None:
            parts.append(f"write_permission: {self.eid(fs.write_permission)}")
        if fs.choices is not None:
            parts.append("choices: [" + ", ".join(scalar(c) for c in fs.choices) + "]")
        return "{" + ", ".join(parts) + "}"


# Typed views of the read-only queries this module makes (Store.query returns a union).
def _types(store: Store) -> list[str]:
    return list(cast(GetEntityTypesResponse, store.query(GetEntityTypes(None))).response.items)  # type: ignore[union-attr]


def _schema(store: Store, t: str) -> EntitySchema:
    return cast(EntitySchema, cast(GetSchemaResponse, store.query(GetSchema(t))).response)


def _complete(store: Store, t: str) -> Mapping[str, FieldSchema]:
    return cast(EntitySchema, cast(GetCompleteSchemaResponse, store.query(GetCompleteSchema(t))).response).fields


def _find(store: Store, t: str) -> list[EntityId]:
    return list(cast(FindEntitiesResponse, store.query(FindEntities(t, None))).response.items)  # type: ignore[union-attr]


def _schemas(store: Store) -> list[EntitySchema]:
    """Every schema, each after the one it inherits from."""
    types = _types(store)
    by_type = {t: _schema(store, t) for t in types}
    out: list[EntitySchema] = []
    seen: set[str] = set()
    for t in types:
        chain = []
        cur: str | None = t
        while cur is not None and cur not in seen:
            chain.append(cur)
            cur = by_type[cur].inherit
        for c in reversed(chain):
            seen.add(c)
            out.append(by_type[c])
    return out


def _roots(store: Store, schemas: list[EntitySchema]) -> list[EntityId]:
    """Entities without a parent, by id (every entity is below one of them)."""
    roots = []
    for s in schemas:
        if s.inherit is not None:
            continue  # FindEntities on a type finds its descendants' entities too
        for e in _find(store, s.entity_type):
            if _structure(store, e, "Parent") is None:
                roots.append(e)
    return sorted(roots, key=lambda e: e.id)


def _structure(store: Store, e: EntityId, field: str) -> Any:
    """One of an entity's structural fields, None where its type has none:
    one cell read, not the entity's every cell (the walks visit each entity)."""
    try:
        return store.read_path(e, field)[0].v
    except StoreError:
        return None


def _preorder(store: Store, roots: list[EntityId]) -> tuple[list[EntityId], dict[int, list[EntityId]]]:
    """The tree's entities in import order, and each one's children (each
    entity once, even if a Children list was written by hand to repeat one)."""
    order: list[EntityId] = []
    kids_of: dict[int, list[EntityId]] = {}
    seen = {e.id for e in roots}
    stack = list(reversed(roots))
    while stack:
        e = stack.pop()
        order.append(e)
        kids = [k for k in (_structure(store, e, "Children") or ())
                if k.id not in seen and store.entities.find(k) is not None]
        seen.update(k.id for k in kids)
        if kids:
            kids_of[e.id] = kids
        stack.extend(reversed(kids))
    return order, kids_of


def export_config(
    store: Store,
    out: TextIO,
    root: EntityId | None = None,
    progress: Callable[[int, int], None] | None = None,
    comment: str | None = None,
) -> ExportResult:
    """Write `store` (or the tree under `root`) to `out` as a config file."""
    schemas = _schemas(store)
    if root is not None and store.entity_fields(root) is None:
        raise ValueError(f"entity {root.typ}${root.id} does not exist")
    roots = [root] if root is not None else _roots(store, schemas)
    order, kids_of = _preorder(store, roots)
    renumber = {e.id: EntityId(e.typ, n) for n, e in enumerate(order, start=1)}
    w = _Writer(renumber)
    write = out.write
    if comment:
        write("".join(f"# {line}\n" for line in comment.splitlines()))
    write("schemas:\n" if schemas else "schemas: []\n")
    for s in schemas:
        write(f"- entity_type: {scalar(s.entity_type)}\n")
        write(f"  inherit: {scalar(s.inherit) if s.inherit is not None else 'null'}\n")
        if not s.fields:
            write("  fields: {}\n")
            continue
        write("  fields:\n")
        for name, fs in sorted(s.fields.items(), key=lambda kv: (kv[1].rank, kv[0])):
            write(f"    {scalar(name)}: {w.field(fs)}\n")
    complete = {s.entity_type: _complete(store, s.entity_type) for s in schemas}
    write("tree:\n" if order else "tree: []\n")
    total = len(order)
    stack: list[tuple[EntityId, str]] = [(e, "") for e in reversed(roots)]
    done = 0
    while stack:
        e, ind = stack.pop()
        cells = store.entity_fields(e)
        assert cells is not None
        name = cells["Name"][0].v if "Name" in cells else ""
        write(f"{ind}- entity_type: {scalar(e.typ)}\n{ind}  name: {scalar(name)}\n")
        defaults = complete[e.typ]
        attrs = []
        for field, (value, _, _) in sorted(cells.items()):
            if field in _STRUCTURE:
                continue
            default = defaults.get(field)
            if default is not None and _same(value, default.default_value):
                continue
            attrs.append(f"{scalar(field)}: {w.attribute(value)}")
        if attrs:
            write(f"{ind}  attributes: {{{', '.join(attrs)}}}\n")
        kids = kids_of.get(e.id)
        if kids:
            write(f"{ind}  children:\n")
            stack.extend((k, ind + "  ") for k in reversed(kids))
        done += 1
        if progress is not None and done % 1000 == 0:
            progress(done, total)
    if progress is not None:
        progress(done, total)
    return ExportResult(entities=done, schemas=len(schemas), dangling=w.dangling)


def _same(value: Any, default: Any) -> bool:
    """Whether the import would give ``value`` back without writing it: equal,
    and for floats the same sign too (-0.0 == 0.0, yet -0.0 is not the default 0.0)."""
    if value != default:
        return False
    return value.__class__ is not Float or math.copysign(1.0, value.v) == math.copysign(1.0, default.v)
