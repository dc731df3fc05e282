"""CreateEntity / DeleteEntity / EntityExists (SPEC 3) and the id counter."""

from __future__ import annotations

import pytest

from qcore.store import (
    Bool,
    Change,
    CreateEntity,
    DeleteEntity,
    EntityExists,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldSchema,
    Float,
    Int,
    SetSchema,
    Store,
    String,
    Timestamp,
)

from .helpers import T0, T1, create, make_store, read, read_full


@pytest.fixture
def s() -> Store:
    return make_store()


def test_new_entity_has_every_field_at_default_with_name_and_parent(s):
    root = create(s, "Folder", "root")
    resp, changes = s.apply(CreateEntity("Admin", root, "ann"), T1)
    a = resp.response
    assert a == EntityId("Admin", 2)
    fields = s.entity_fields(a)
    assert set(fields) == {"Name", "Parent", "Children", "Email", "Active", "Age", "Score", "Role", "Manager",
                           "Friends", "Avatar", "Seen", "Level"}
    assert fields["Name"] == (String("ann"), T1, None)
    assert fields["Parent"] == (EntityReference(root), T1, None)
    assert fields["Active"] == (Bool(True), T1, None)
    assert fields["Level"] == (Int(1), T1, None)
    assert fields["Score"] == (Float(0.0), T1, None)
    assert read(s, root, "Children") == EntityList((a,))
    assert changes == [Change(root, "Children", EntityList(()), EntityList((a,)), T1, None)]


def test_a_create_and_a_delete_by_a_writer_record_it_where_they_write(s):
    """CreateEntity's and DeleteEntity's ``writer_id`` (set by the node from the user, SPEC 8.3):
    every field of the new entity and the parent's Children are written by it, changes too."""
    root = create(s, "Folder", "root")
    w = EntityId("User", 77)
    resp, changes = s.apply(CreateEntity("Admin", root, "ann", writer_id=w), T1)
    a = resp.response
    fields = s.entity_fields(a)
    assert {f: (t, who) for f, (_, t, who) in fields.items()} == dict.fromkeys(fields, (T1, w))
    assert fields["Name"] == (String("ann"), T1, w)
    assert read_full(s, root, "Children").writer_id == w
    assert changes == [Change(root, "Children", EntityList(()), EntityList((a,)), T1, w)]
    assert Store.restore(s.snapshot()).snapshot() == s.snapshot()
    assert Store.restore(s.snapshot()).entity_fields(a) == fields
    resp, changes = s.apply(DeleteEntity(a, writer_id=w), T0)
    assert resp.error is None
    assert changes == [Change(root, "Children", EntityList((a,)), EntityList(()), T0, w)]
    assert read_full(s, root, "Children").writer_id == w
    before = s.snapshot()
    bad = EntityId("User", 1 << 64)
    assert s.apply(CreateEntity("Folder", root, "x", writer_id=bad), T1)[0].error == (
        f"create Folder: writer_id must be an EntityId with an unsigned 64-bit id, got {bad!r}")
    assert s.apply(DeleteEntity(root, writer_id=bad), T1)[0].error == (
        f"delete {root}: writer_id must be an EntityId with an unsigned 64-bit id, got {bad!r}")
    assert s.snapshot() == before and s.next_id == 3


def test_children_keep_creation_order(s):
    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(5)]
    assert read(s, root, "Children") == EntityList(tuple(kids))


def test_create_errors_change_nothing(s):
    before = s.snapshot()
    resp, ch = s.apply(CreateEntity("Nope", None, "x"), T1)
    assert resp.response is None and resp.error == "unknown entity type 'Nope'" and ch == []
    resp, _ = s.apply(CreateEntity("User", EntityId("Folder", 42), "x"), T1)
    assert resp.error == "parent Folder$42 does not exist"
    assert s.snapshot() == before
    assert s.next_id == 1  # a failed create does not consume an id


def test_parent_must_have_children_and_child_a_parent_field(s):
    s.apply(SetSchema(EntitySchema("Bare", None, {"X": FieldSchema("X", Int(0))})), T0)
    root = create(s, "Folder", "root")
    resp, _ = s.apply(CreateEntity("Bare", root, ""), T1)
    assert "has no Parent field" in resp.error
    bare = create(s, "Bare")
    resp, _ = s.apply(CreateEntity("User", bare, "u"), T1)
    assert "has no Children field" in resp.error
    resp, _ = s.apply(CreateEntity("Bare", None, "named"), T1)
    assert "has no Name field" in resp.error
    assert s.entity_fields(bare) == {"X": (Int(0), T0, None)}


def test_ids_unique_across_types_increasing_and_never_reused(s):
    a = create(s, "User")
    b = create(s, "Folder")
    c = create(s, "User")
    assert [a.id, b.id, c.id] == [1, 2, 3]
    s.apply(DeleteEntity(c), T1)
    d = create(s, "User")
    assert d.id == 4
    assert s.next_id == 5


def test_delete_is_recursive_and_fixes_parent_children(s):
    root = create(s, "Folder", "root")
    f = create(s, "Folder", "f", root)
    keep = create(s, "User", "keep", root)
    deep = [create(s, "User", f"u{i}", f) for i in range(3)]
    deeper = create(s, "User", "deeper", deep[0])
    resp, changes = s.apply(DeleteEntity(f), T1)
    assert resp.error is None
    for e in [f, deeper, *deep]:
        assert s.query(EntityExists(e)).response is False
    assert s.query(EntityExists(keep)).response is True
    assert read(s, root, "Children") == EntityList((keep,))
    assert read_full(s, root, "Children").write_time == T1
    assert changes == [Change(root, "Children", EntityList((f, keep)), EntityList((keep,)), T1, None)]
    assert s.entity_count() == 2


def test_delete_missing_entity_is_an_error(s):
    u = create(s, "User")
    resp, _ = s.apply(DeleteEntity(EntityId("User", 99)), T1)
    assert resp.error == "entity User$99 does not exist"
    resp, _ = s.apply(DeleteEntity(EntityId("Folder", u.id)), T1)
    assert resp.error == f"entity Folder${u.id} does not exist"
    s.apply(DeleteEntity(u), T1)
    resp, _ = s.apply(DeleteEntity(u), T1)
    assert "does not exist" in resp.error


def test_delete_many_children_keeps_find_index_right(s):
    from qcore.store import FindEntities

    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(40)]
    other = create(s, "User", "other")
    s.apply(DeleteEntity(root), T1)
    page = s.query(FindEntities("User")).response
    assert page.items == [other] and page.total == 1
    s.apply(DeleteEntity(other), T1)
    assert s.query(FindEntities("Object")).response.total == 0
    assert kids  # silence


def test_entity_exists_checks_type(s):
    u = create(s, "User")
    assert s.query(EntityExists(u)).response is True
    assert s.query(EntityExists(EntityId("Folder", u.id))).response is False
    assert s.query(EntityExists(EntityId("User", 1234))).response is False


def test_references_to_deleted_entities_are_left_dangling(s):
    a = create(s, "User", "a")
    b = create(s, "User", "b")
    from qcore.store import UpdateEntity, Write

    s.apply(UpdateEntity([Write(a, "Manager", EntityReference(b))]), T1)
    s.apply(DeleteEntity(b), T1)
    assert read(s, a, "Manager") == EntityReference(b)


def test_create_with_timestamp_now_everywhere(s):
    now = Timestamp(77, 1)
    u = create(s, "User", "x", now=now)
    assert all(cell[1] == now for cell in s.entity_fields(u).values())
