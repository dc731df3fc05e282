"""Snapshots of the previous format (version 1) still restore, exactly.

The fixture was written by the store of commit 304f744 (whose snapshots were
version 1) with fixtures/make_v1_snapshot.py, together with what that store
read back field by field; the current store must read the same.
"""

from __future__ import annotations

import pathlib
import zlib

import orjson

from qcore.protocol.values import encode_entity_id, encode_entity_schema, encode_timestamp, encode_value
from qcore.store import (
    CreateEntity,
    EntityId,
    EntityReference,
    FindEntities,
    GetChildren,
    GetEntityTypes,
    GetSchema,
    PageOpts,
    Store,
    UpdateEntity,
    Write,
)

from qcore.store.snapshot import MAGIC

from .helpers import T1

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _state(s: Store) -> dict:
    types = s.query(GetEntityTypes(None)).response.items
    out: dict = {"next_id": s.next_id, "schemas": {}, "entities": {}}
    for typ in types:
        out["schemas"][typ] = encode_entity_schema(s.query(GetSchema(typ)).response)
    seen = [e for typ in types for e in s.query(FindEntities(typ, None)).response.items if e.typ == typ]
    for eid in sorted(seen, key=lambda e: e.id):
        out["entities"][str(eid)] = {
            name: [encode_value(v), encode_timestamp(t), None if w is None else encode_entity_id(w)]
            for name, (v, t, w) in s.entity_fields(eid).items()
        }
    return out


def test_version_1_snapshot_restores_to_the_same_state():
    data = (FIXTURES / "snapshot_v1.json").read_bytes()
    assert orjson.loads(data)["v"] == 1
    expected = orjson.loads((FIXTURES / "snapshot_v1_expected.json").read_bytes())
    s = Store.restore(data)
    assert s.check_invariants() == []
    assert _state(s) == expected
    # and it carries on as a store of today: a new snapshot (version 2) round-trips
    again = Store.restore(s.snapshot())
    assert s.snapshot().startswith(MAGIC) and orjson.loads(zlib.decompress(s.snapshot()[len(MAGIC):]))["v"] == 2
    assert _state(again) == expected and again.snapshot() == s.snapshot()


def test_version_1_children_keep_their_order_and_page():
    s = Store.restore((FIXTURES / "snapshot_v1.json").read_bytes())
    root = EntityId("Folder", 1)
    kids = s.read_path(root, "Children")[0].v
    assert [str(k) for k in kids] == ["User$6", "User$8", "Admin$9", "User$3", "Folder$2"]  # moves: not id order
    page = s.query(GetChildren(root, PageOpts(3))).response
    assert page.items == list(kids[:3]) and page.total == 5 and page.next_cursor is not None
    rest = s.query(GetChildren(root, PageOpts(3, page.next_cursor))).response
    assert rest.items == list(kids[3:]) and rest.next_cursor is None
    # new children go after the restored ones; moves work on restored links
    new = s.apply(CreateEntity("User", root, "new"), T1)[0].response
    assert s.apply(UpdateEntity([Write(EntityId("User", 3), "Parent", EntityReference(EntityId("Folder", 2)))]), T1)[0].error is None
    assert s.read_path(root, "Children")[0].v == tuple(k for k in kids if k != EntityId("User", 3)) + (new,)
    assert s.check_invariants() == []
