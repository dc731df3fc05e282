"""What the scale benches fill a store with, over the wire or in-process.

Two shapes, each a set of requests in the wire's JSON (so a node and an
in-process :class:`qcore.store.Store` are filled with exactly the same
data):

- ``tree4``: BenchItems spread over 1,000 parent BenchItems, each with four
  fields written: ``Name`` and ``Parent`` when created, then its 64-byte
  ``Payload`` and its ``Counter`` in one UpdateEntity.
- ``wide10``: WideItems (no parent) with every one of their ten fields
  written once, in one UpdateEntity: four Ints, three Floats, two Strings
  (16 and 32 bytes) and a Bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from qcore.bench.cluster import BENCH_SCHEMA, create_entities
from qcore.bench.targets import BENCH_TYPE, INT_FIELD, STRING_FIELD, payload, write_op
from qcore.bench.admin_conn import AdminConn

JSON = dict[str, Any]

WIDE_TYPE = "WideItem"
_WIDE_FIELDS: list[tuple[str, JSON]] = [
    ("I0", {"Int": 0}), ("I1", {"Int": 0}), ("I2", {"Int": 0}), ("I3", {"Int": 0}),
    ("F0", {"Float": 0.0}), ("F1", {"Float": 0.0}), ("F2", {"Float": 0.0}),
    ("S0", {"String": ""}), ("S1", {"String": ""}), ("B0", {"Bool": False}),
]
WIDE_SCHEMA: JSON = {
    "entity_type": WIDE_TYPE,
    "inherit": "Object",
    "fields": {
        name: {"field_type": name, "default_value": d, "rank": 3 + i, "read_permission": None,
               "write_permission": None, "choices": None}
        for i, (name, d) in enumerate(_WIDE_FIELDS)
    },
}


def _tree4_writes(eid: JSON, k: int) -> list[JSON]:
    return [write_op(eid, STRING_FIELD, {"String": payload(1, k)}), write_op(eid, INT_FIELD, {"Int": k})]


def _wide10_writes(eid: JSON, k: int) -> list[JSON]:
    vals: list[JSON] = [
        {"Int": k}, {"Int": -k}, {"Int": k * 7}, {"Int": k % 1000},
        {"Float": k * 0.5}, {"Float": k / 3}, {"Float": 1.0 + k},
        {"String": f"s{k:015d}"}, {"String": f"name-{k:027d}"}, {"Bool": k % 2 == 0},
    ]
    return [write_op(eid, name, v) for (name, _), v in zip(_WIDE_FIELDS, vals)]


@dataclass(frozen=True)
class Shape:
    name: str
    entity_type: str
    schemas: tuple[JSON, ...]
    parents: int
    writes: Callable[[JSON, int], list[JSON]]
    written_fields: int


SHAPES: dict[str, Shape] = {
    "tree4": Shape("tree4", BENCH_TYPE, (BENCH_SCHEMA,), 1000, _tree4_writes, 4),
    "wide10": Shape("wide10", WIDE_TYPE, (WIDE_SCHEMA,), 0, _wide10_writes, 10),
}


async def fill(endpoint: str, shape: Shape, count: int) -> list[list[Any]]:
    """Set the shape's schemas, create its parents, then ``count`` entities
    of it; returns their ids (parents not included)."""
    conn = await AdminConn.open(endpoint)
    parents: list[JSON] = []
    try:
        for s in shape.schemas:
            await conn.perform("SetSchema", entity_schema=s)
    finally:
        await conn.close()
    if shape.parents:
        parents = [{"typ": t, "id": i} for t, i in await create_entities(endpoint, shape.parents)]
    parent_of = (lambda k: parents[k % len(parents)]) if parents else None
    return await create_entities(endpoint, count, entity_type=shape.entity_type, parent_of=parent_of,
                                 writes=shape.writes)


def fill_store(shape: Shape, count: int) -> Any:
    """The same as :func:`fill` on an in-process store (requests decoded by
    the node's own codec); returns the store."""
    from qcore.bench.cluster import SCHEMAS_YAML
    from qcore.protocol.values import decode_command_request
    from qcore.store import Store, Timestamp
    from qcore.store.config import load_config_text

    store = Store()
    tick = [1_700_000_000_000_000_000]

    def apply(cmd: JSON) -> Any:
        tick[0] += 50_000  # a new log entry's time now and then, as a node would see
        resp, _ = store.apply(decode_command_request(cmd), Timestamp.from_ns(tick[0]))
        error = getattr(resp, "error", None)
        if error:
            raise RuntimeError(f"{next(iter(cmd))} failed: {error}")
        return resp

    store.apply(load_config_text(SCHEMAS_YAML, "bench"), Timestamp.from_ns(tick[0]))
    for s in (BENCH_SCHEMA, *shape.schemas):
        apply({"SetSchema": {"entity_schema": s}})
    parents: list[JSON] = []
    for i in range(shape.parents):
        e = apply({"CreateEntity": {"entity_type": BENCH_TYPE, "parent_id": None, "name": f"p{i}"}}).response
        parents.append({"typ": e.typ, "id": e.id})
    for k in range(count):
        parent = parents[k % len(parents)] if parents else None
        e = apply({"CreateEntity": {"entity_type": shape.entity_type, "parent_id": parent, "name": f"e0-{k}"}}).response
        apply({"UpdateEntity": {"request": shape.writes({"typ": e.typ, "id": e.id}, k)}})
    return store
