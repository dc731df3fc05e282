"""Snapshot format version 1 (qcore up to the columnar store): reading it,
and the schema encoding that version 2 keeps.

Version 1 is one orjson document::

    {"v": 1, "next_id": N,
     "schemas": [[entity_type, inherit, [[field, [tag, payload], rank, read_perm, write_perm, choices], ...]], ...],
     "entities": [[id, typ, secs, nanos, {field: payload}, {field: [payload, secs, nanos, writer]}], ...]}

A field in the first dict was written at the entity's creation time by no
one; one that is absent still holds its default since creation. Payloads:
Blob -> base64 text, EntityReference -> ``"Type$id"`` or null, EntityList ->
list of ``"Type$id"``, Timestamp -> ``[secs, nanos]``, others -> the JSON
scalar. Children lists are stored with their parents; restoring gives the
children link keys in (parent id, position) order.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Callable

from .catalog import Catalog
from .columns import Names
from .errors import StoreError
from .schema import CHILDREN, EntitySchema, FieldSchema, validate_own
from .table import Entities
from .tree import Tree
from .types import (
    VALUE_CLASSES,
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    String,
    Timestamp,
    TimestampValue,
    Value,
)

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def eid_text(e: EntityId | None) -> str | None:
    return None if e is None else f"{e.typ}${e.id}"


_ENC: dict[type, Callable[[Any], Any]] = {
    Blob: lambda v: base64.b64encode(v).decode(),
    Bool: lambda v: v,
    Choice: lambda v: v,
    EntityList: lambda v: [f"{e.typ}${e.id}" for e in v],
    EntityReference: eid_text,
    Float: lambda v: v,
    Int: lambda v: v,
    String: lambda v: v,
    TimestampValue: lambda v: [v.secs, v.nanos],
}


def encode_payload(v: Value) -> Any:
    return _ENC[v.__class__](v.v)


class Decoder:
    """Version-1 payloads back to values, sharing equal EntityIds."""

    def __init__(self) -> None:
        self.eids: dict[str, EntityId] = {}
        self.dec: dict[type, Callable[[Any], Any]] = {
            Blob: lambda p: base64.b64decode(p, validate=True),
            EntityList: lambda p: tuple([self.eid(x) for x in p]),
            EntityReference: lambda p: None if p is None else self.eid(p),
            Float: float,
            TimestampValue: lambda p: Timestamp(p[0], p[1]),
        }

    def eid(self, s: str) -> EntityId:
        e = self.eids.get(s)
        if e is None:
            typ, _, num = s.rpartition("$")
            e = self.eids[s] = EntityId(typ, int(num))
        return e

    def value(self, cls: type[Value], payload: Any) -> Value:
        """The value of a payload; its variant's constructor checks it."""
        d = self.dec.get(cls)
        return cls(payload if d is None else d(payload))


def dump_schemas(catalog: Catalog) -> list[Any]:
    """Every own schema, sorted by type and field name (both versions)."""
    out = []
    for t in catalog.types:
        s = catalog.schemas[t]
        fields = []
        for name in sorted(s.fields):
            fs = s.fields[name]
            fields.append([
                name,
                [fs.default_value.tag, encode_payload(fs.default_value)],
                fs.rank,
                eid_text(fs.read_permission),
                eid_text(fs.write_permission),
                None if fs.choices is None else list(fs.choices),
            ])
        out.append([t, s.inherit, fields])
    return out


def load_schemas(doc: list[Any], dec: Decoder) -> Catalog:
    schemas: dict[str, EntitySchema] = {}
    for t, inherit, fields in doc:
        fmap = {}
        for name, (tag, payload), rank, rp, wp, choices in fields:
            fmap[name] = FieldSchema(
                name,
                dec.value(VALUE_CLASSES[tag], payload),
                rank,
                None if rp is None else dec.eid(rp),
                None if wp is None else dec.eid(wp),
                None if choices is None else tuple(choices),
            )
        schema = EntitySchema(t, inherit, fmap)
        err = validate_own(schema)
        if err is not None or t in schemas:
            raise StoreError(f"corrupt snapshot: schema of {t!r}: {err or 'given twice'}")
        schemas[t] = schema
    return Catalog(schemas)


def _checked(dec: Decoder, fs: FieldSchema, payload: Any) -> Value:
    v = dec.value(fs.default_value.__class__, payload)
    if v.__class__ is Choice and not 0 <= v.v < len(fs.choices or ()):
        raise StoreError(f"corrupt snapshot: Choice {v.v} out of range for {fs.field_type}")
    return v


def load_v1(doc: dict[str, Any]) -> Store:
    from .state import Store

    dec = Decoder()
    catalog = load_schemas(doc["schemas"], dec)
    names = Names()
    ents = Entities(names)
    tree = Tree(names)
    for typ_name in catalog.types:
        ents.table(typ_name).set_fields(catalog.complete[typ_name], None)
    kids: list[tuple[int, list[str]]] = []
    last = 0
    for n, typ, secs, nanos, plain, timed in doc["entities"]:
        if type(n) is not int or n <= last:
            raise StoreError("corrupt snapshot: entities are not sorted by id")
        last = n
        created = Timestamp(secs, nanos)
        t = ents.tables[typ]
        cs = catalog.complete[typ]
        row = ents.add(t, n, created)
        for name, p in plain.items():
            if name == CHILDREN:
                kids.append((n, p))
            else:
                t.cols[name].put(row, _checked(dec, cs[name], p))
        for name, (p, s2, n2, w) in timed.items():
            col = t.cols[name]
            if name == CHILDREN:
                kids.append((n, p))
            else:
                col.put(row, _checked(dec, cs[name], p))
            t.stamp(col, row, Timestamp(s2, n2), None if w is None else dec.eid(w))
    attached = 0
    for pnum, children in sorted(kids):
        for text in children:
            child = dec.eid(text)
            found = ents.find(child)
            if found is None:
                raise StoreError(f"corrupt snapshot: child {child} does not exist")
            ct, crow = found
            if ct.parent_of(crow) != (ents.locate(pnum)[0].code, pnum):  # type: ignore[index]
                raise StoreError(f"corrupt snapshot: {child} is listed as a child of entity {pnum}, not its Parent")
            ct.set_link(crow, tree.attach(pnum, child.id, ct.code))
            attached += 1
    with_parent = sum(1 for t in ents.tables.values() for row in t.live_rows() if t.parent_of(row)[0])
    if with_parent != attached:
        raise StoreError("corrupt snapshot: Parent and Children disagree")
    next_id = doc["next_id"]
    if type(next_id) is not int or next_id <= last:
        raise StoreError(f"corrupt snapshot: next_id {next_id!r} is not above every entity id")
    return Store.assemble(catalog, ents, tree, next_id)
