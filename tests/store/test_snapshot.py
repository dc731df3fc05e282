"""Snapshot / restore: exact round trip, determinism, corrupt input."""

from __future__ import annotations

import os
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.store import (
    AdjustBehavior,
    Blob,
    Choice,
    CreateEntity,
    DeleteEntity,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    GetCompleteSchema,
    Int,
    LoadConfig,
    Store,
    StoreError,
    String,
    Timestamp,
    TimestampValue,
    UpdateEntity,
    Write,
)
from qcore.store.config import load_config

from .helpers import T0, T1, create, make_store, read_full


def populated() -> Store:
    s = make_store()
    root = create(s, "Folder", "root")
    a = create(s, "User", "a", root)
    b = create(s, "Admin", "b", root, now=T1)
    s.apply(
        UpdateEntity(
            [
                Write(a, "Email", String("é ü ✓")),
                Write(a, "Score", Float(-0.1)),
                Write(a, "Avatar", Blob(bytes(range(256)))),
                Write(a, "Friends", EntityList((b, root))),
                Write(a, "Manager", EntityReference(b), writer_id=b),
                Write(a, "Seen", TimestampValue(Timestamp(2**40, 999_999_999))),
                Write(a, "Role", Choice(2), write_time=Timestamp(1, 1)),
                Write(b, "Age", Int(-(2**63))),
            ]
        ),
        Timestamp(3_000, 3),
    )
    return s


def test_round_trip_is_exact():
    s = populated()
    data = s.snapshot()
    r = Store.restore(data)
    assert r.snapshot() == data
    for n in range(1, 4):
        eid = EntityId({1: "Folder", 2: "User", 3: "Admin"}[n], n)
        assert r.entity_fields(eid) == s.entity_fields(eid)
    assert r.next_id == s.next_id
    assert r.query(GetCompleteSchema("Admin")) == s.query(GetCompleteSchema("Admin"))


def test_restored_store_behaves_the_same():
    s = populated()
    r = Store.restore(s.snapshot())
    s.apply(CreateEntity("User", EntityId("Folder", 1), "new"), T1)
    r.apply(CreateEntity("User", EntityId("Folder", 1), "new"), T1)
    for store in (s, r):
        store.apply(UpdateEntity([Write(EntityId("User", 2), "Email", String("!"), adjust_behavior=AdjustBehavior.Add)]), T1)
    assert s.snapshot() == r.snapshot()
    assert read_full(r, EntityId("User", 4), "Name").value == String("new")


def test_snapshot_is_independent_of_history_order_of_schemas():
    from .helpers import ADMIN, FOLDER, OBJECT, USER
    from qcore.store import SetSchema

    a, b = Store(), Store()
    for sch in (OBJECT, FOLDER, USER, ADMIN):
        a.apply(SetSchema(sch), T0)
    for sch in (OBJECT, USER, ADMIN, FOLDER):
        b.apply(SetSchema(sch), T0)
    assert a.snapshot() == b.snapshot()


def test_an_uncompressed_version_2_document_restores_too():
    import zlib

    from qcore.store.snapshot import MAGIC

    s = populated()
    data = s.snapshot()
    plain = zlib.decompress(data[len(MAGIC):])
    assert plain.startswith(b'{"v":2,')
    assert Store.restore(plain).snapshot() == data


def test_a_document_written_in_pieces_is_one_json_document_of_the_same_state():
    """The snapshot is compressed as it is written, table by table and
    column by column, pieces over 64 KiB passed on whole and smaller ones
    gathered: what comes out is one JSON document with every part in
    order, and it restores to the same state."""
    import zlib

    import orjson

    from qcore.store.snapshot import MAGIC

    s = populated()
    root = EntityId("Folder", 1)
    users = [create(s, "User", f"user-{i:05d}-" + "x" * 24, root) for i in range(3000)]  # a Name column of ~100 KB
    gone = create(s, "Folder", "empty")
    s.apply(DeleteEntity(gone), T1)
    data = s.snapshot()
    doc = orjson.loads(zlib.decompress(data[len(MAGIC):]))
    assert list(doc) == ["v", "next_id", "clock", "schemas", "tables", "names"]
    assert [t[0] for t in doc["tables"]] == ["Admin", "Folder", "User"]
    user_table = doc["tables"][2]
    ids = list(accumulate(user_table[1]))  # delta-encoded
    assert ids == [EntityId("User", 2).id] + [u.id for u in users]
    r = Store.restore(data)
    assert r.snapshot() == data
    for eid in (users[0], users[-1], EntityId("User", 2)):
        assert r.entity_fields(eid) == s.entity_fields(eid)


def test_unknown_versions_are_refused_clearly():
    with pytest.raises(StoreError, match="unsupported snapshot version 3 .*reads versions 1 and 2"):
        Store.restore(b'{"v": 3}')


def test_empty_store_round_trip():
    data = Store().snapshot()
    assert Store.restore(data).snapshot() == data


def test_shipped_config_round_trip():
    s = Store()
    s.apply(load_config("schemas.yaml"), T0)
    assert Store.restore(s.snapshot()).snapshot() == s.snapshot()


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"v": 99}', b'{"v": 1, "next_id": 1, "schemas": [], "entities": [[1, "Nope", 0, 0, {}, {}]]}',
     b"QCSTORE2z not zlib", b'{"v": 2, "next_id": 1, "clock": 0, "schemas": [], "tables": [["Nope", [1], [0], [], null, []]], "names": []}'],
)
def test_corrupt_snapshot_raises_store_error(data):
    with pytest.raises(StoreError):
        Store.restore(data)


def test_load_config_on_non_empty_store_is_atomic():
    s = populated()
    before = s.snapshot()
    from qcore.store import EntitySchema, TreeNode

    bad = LoadConfig([EntitySchema("New", "Object", {})], [TreeNode("New", "x"), TreeNode("Nope", "y")])
    resp, changes = s.apply(bad, T1)
    assert resp.error is not None and resp.error.startswith("tree[1]: ") and changes == []
    assert s.snapshot() == before
    good = LoadConfig([EntitySchema("New", "Object", {})], [TreeNode("New", "x", {}, [TreeNode("New", "y")])])
    resp, _ = s.apply(good, T1)
    assert resp.error is None and resp.created == 2
    assert read_full(s, EntityId("New", 5), "Parent").value == EntityReference(EntityId("New", 4))


def test_load_config_tree_of_any_depth_and_preorder_ids():
    from qcore.store import EntitySchema, TreeNode

    from .helpers import OBJECT

    leaf = TreeNode("Object", "deep")
    node = leaf
    for i in range(3000):
        node = TreeNode("Object", f"n{i}", {}, [node])
    wide = TreeNode("Object", "w", {}, [TreeNode("Object", "a", {}, [TreeNode("Object", "a1")]), TreeNode("Object", "b")])
    s = Store()
    resp, _ = s.apply(LoadConfig([OBJECT], [wide, node]), T0)
    assert resp.error is None and resp.created == 4 + 3001
    names = {n: s.read_path(EntityId("Object", n), "Name")[0].v for n in range(1, 5)}
    assert names == {1: "w", 2: "a", 3: "a1", 4: "b"}  # depth-first, file order
    assert s.read_path(EntityId("Object", 3005), "Name")[0] == String("deep")
    assert s.check_invariants() == []
    assert EntitySchema  # imported for readability of the failure output


def _paths(doc, at=()):
    """Every position in a JSON document, as a tuple of keys / indexes."""
    yield at
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, at + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, at + (i,))


_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
                     | st.text(max_size=5), lambda c: st.lists(c, max_size=3), max_leaves=5)


def _damaged(doc, data):
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = data.draw(_json)
    return doc


FUZZ = settings(max_examples=int(os.environ.get("QCORE_SNAPSHOT_FUZZ", "300")), deadline=None)


def _restores_soundly_or_refuses(doc) -> None:
    import orjson

    try:
        r = Store.restore(orjson.dumps(doc))
    except StoreError:
        return
    assert r.check_invariants() == []
    assert Store.restore(r.snapshot()).snapshot() == r.snapshot()  # and it can be written out again


@FUZZ
@given(st.data())
def test_a_damaged_version_2_document_is_refused_or_restores_soundly(data):
    import zlib

    import orjson

    from qcore.store.snapshot import MAGIC

    s = populated()
    s.apply(DeleteEntity(EntityId("Admin", 3)), T1)  # a dead row and a removed child
    _restores_soundly_or_refuses(_damaged(orjson.loads(zlib.decompress(s.snapshot()[len(MAGIC):])), data))


@FUZZ
@given(st.data())
def test_a_damaged_version_1_document_is_refused_or_restores_soundly(data):
    import pathlib

    import orjson

    doc = orjson.loads((pathlib.Path(__file__).parent / "fixtures" / "snapshot_v1.json").read_bytes())
    _restores_soundly_or_refuses(_damaged(doc, data))
