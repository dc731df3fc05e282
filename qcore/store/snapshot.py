"""Snapshot encoding of a Store: deterministic, compact, fast (orjson).

Layout (version 1), one JSON document::

    {"v": 1, "next_id": N,
     "schemas": [[entity_type, inherit, [[field, [tag, payload], rank, read_perm, write_perm, choices], ...]], ...],
     "entities": [[id, typ, secs, nanos, {field: payload}, {field: [payload, secs, nanos, writer]}], ...]}

Everything is sorted (schemas by type, fields by name, entities by id), so the
same state always gives the same bytes. Two tricks keep it small:

* a field value is stored as its bare *payload*: the variant is the one of the
  field's schema default (the store guarantees that invariant), so restore
  knows how to rebuild it;
* a field written at the entity's creation time with no writer (the common
  case) goes in the first dict with no time at all, and is left out entirely
  if it still holds its schema default; fields written later carry their
  time and writer.

Payloads: Blob -> base64 text, EntityReference -> ``"Type$id"`` or null,
EntityList -> list of ``"Type$id"``, Timestamp -> ``[secs, nanos]``, others
-> the JSON scalar.
"""

from __future__ import annotations

import base64
import gc
from typing import TYPE_CHECKING, Any, Callable

import orjson

from .errors import StoreError
from .schema import EntitySchema, FieldSchema, descendants, resolve_complete
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
    make_unchecked,
)

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store

VERSION = 1


def _eid_text(e: EntityId | None) -> str | None:
    return None if e is None else f"{e.typ}${e.id}"


_ENC: dict[type, Callable[[Any], Any]] = {
    Blob: lambda v: base64.b64encode(v).decode(),
    Bool: lambda v: v,
    Choice: lambda v: v,
    EntityList: lambda v: [f"{e.typ}${e.id}" for e in v],
    EntityReference: _eid_text,
    Float: lambda v: v,
    Int: lambda v: v,
    String: lambda v: v,
    TimestampValue: lambda v: [v.secs, v.nanos],
}


def encode_payload(v: Value) -> Any:
    return _ENC[v.__class__](v.v)


def dump(store: Store) -> bytes:
    was_enabled = gc.isenabled()
    gc.disable()  # building the document makes no cycles; don't scan the heap meanwhile
    try:
        return _dump(store)
    finally:
        if was_enabled:
            gc.enable()


def _dump(store: Store) -> bytes:
    schemas = []
    for t in sorted(store._schemas):
        s = store._schemas[t]
        fields = []
        for name in sorted(s.fields):
            fs = s.fields[name]
            fields.append(
                [
                    name,
                    [fs.default_value.tag, encode_payload(fs.default_value)],
                    fs.rank,
                    _eid_text(fs.read_permission),
                    _eid_text(fs.write_permission),
                    None if fs.choices is None else list(fs.choices),
                ]
            )
        schemas.append([t, s.inherit, fields])
    rows = []
    enc = _ENC
    ents = store._ents
    defaults = {t: {n: fs.default_value for n, fs in cs.items()} for t, cs in store._complete.items()}
    for n in sorted(ents):
        e = ents[n]
        created = e.created
        plain: dict[str, Any] = {}
        timed: dict[str, Any] = {}
        f = e.fields
        dflt = defaults[e.eid.typ]
        for name in sorted(f):
            v, t, w = f[name]
            if w is None and (t is created or t == created):
                if v == dflt[name]:
                    continue  # at its default since creation: restore fills it in
                plain[name] = enc[v.__class__](v.v)
            else:
                p = enc[v.__class__](v.v)
                timed[name] = [p, t.secs, t.nanos, None if w is None else f"{w.typ}${w.id}"]
        rows.append([n, e.eid.typ, created.secs, created.nanos, plain, timed])
    return orjson.dumps({"v": VERSION, "next_id": store._next_id, "schemas": schemas, "entities": rows})


def load(cls: type[Store], data: bytes) -> Store:
    from .state import Entity

    was_enabled = gc.isenabled()
    gc.disable()  # a bulk build makes no garbage cycles; scanning it would triple the time
    try:
        return _load(cls, data, Entity)
    except StoreError:
        raise
    except Exception as e:  # any malformation of the document
        raise StoreError(f"corrupt snapshot: {type(e).__name__}: {e}") from None
    finally:
        if was_enabled:
            gc.enable()


def _load(cls: type[Store], data: bytes, entity_cls: type) -> Store:
    doc = orjson.loads(data)
    if type(doc) is not dict or doc.get("v") != VERSION:
        raise StoreError(f"unsupported snapshot version {doc.get('v') if type(doc) is dict else None!r}")
    store = cls()
    # Interning: equal EntityIds, Timestamps and default values are shared
    # (all immutable), which saves both time and memory on big snapshots.
    eids: dict[str, EntityId] = {}

    def eid(s: str) -> EntityId:
        e = eids.get(s)
        if e is None:
            typ, _, num = s.rpartition("$")
            e = eids[s] = EntityId(typ, int(num))
        return e

    dec: dict[type, Callable[[Any], Any]] = {
        Blob: lambda p: base64.b64decode(p, validate=True),
        EntityList: lambda p: tuple([eid(x) for x in p]),
        EntityReference: lambda p: None if p is None else eid(p),
        Float: float,
        TimestampValue: lambda p: Timestamp(p[0], p[1]),
    }
    schemas: dict[str, EntitySchema] = {}
    for t, inherit, fields in doc["schemas"]:
        fmap = {}
        for name, (tag, payload), rank, rp, wp, choices in fields:
            vc = VALUE_CLASSES[tag]
            d = dec.get(vc)
            fmap[name] = FieldSchema(
                name,
                make_unchecked(vc, payload if d is None else d(payload)),
                rank,
                None if rp is None else eid(rp),
                None if wp is None else eid(wp),
                None if choices is None else tuple(choices),
            )
        schemas[t] = EntitySchema(t, inherit, fmap)
    complete = resolve_complete(schemas)
    store._schemas = schemas
    store._complete = complete
    store._desc = descendants(schemas)
    store._types = sorted(schemas)
    store._templates = {t: tuple((n, fs.default_value) for n, fs in cs.items()) for t, cs in complete.items()}
    # per type: field -> (variant, payload decoder, default value, default payload)
    plan = {
        t: {
            n: (fs.default_value.__class__, dec.get(fs.default_value.__class__), fs.default_value,
                encode_payload(fs.default_value))
            for n, fs in cs.items()
        }
        for t, cs in complete.items()
    }
    by_type: dict[str, list[int]] = {t: [] for t in schemas}
    ents = store._ents
    new = object.__new__
    setv = object.__setattr__
    stamps: dict[tuple[int, int], Timestamp] = {}
    for n, typ, secs, nanos, plain, timed in doc["entities"]:
        key = (secs, nanos)
        created = stamps.get(key)
        if created is None:
            created = stamps[key] = Timestamp(secs, nanos)
        fplan = plan[typ]
        fields: dict[str, tuple] = {}
        for name, p in plain.items():
            vc, d, dv, dp = fplan[name]
            if p == dp and p.__class__ is dp.__class__:
                v = dv
            else:
                v = new(vc)
                setv(v, "v", p if d is None else d(p))
            fields[name] = (v, created, None)
        for name, (p, s2, n2, w) in timed.items():
            vc, d, dv, dp = fplan[name]
            if p == dp and p.__class__ is dp.__class__:
                v = dv
            else:
                v = new(vc)
                setv(v, "v", p if d is None else d(p))
            key = (s2, n2)
            t = stamps.get(key)
            if t is None:
                t = stamps[key] = Timestamp(s2, n2)
            fields[name] = (v, t, None if w is None else eid(w))
        if len(fields) != len(fplan):
            for name, (_, _, dv, _) in fplan.items():
                if name not in fields:
                    fields[name] = (dv, created, None)
        ents[n] = entity_cls(eid(f"{typ}${n}"), created, fields)
        by_type[typ].append(n)
    for lst in by_type.values():
        if any(lst[i] >= lst[i + 1] for i in range(len(lst) - 1)):
            raise StoreError("corrupt snapshot: entities are not sorted by id")
    store._by_type = by_type
    next_id = doc["next_id"]
    if type(next_id) is not int or (ents and next_id <= max(ents)):
        raise StoreError(f"corrupt snapshot: next_id {next_id!r} is not above every entity id")
    store._next_id = next_id
    return store
