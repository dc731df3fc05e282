"""Children at scale: GetChildren paging, indexing past removed children,
change records that keep their moment, and tables that compact."""

from __future__ import annotations

import pytest

from qcore.store import (
    Change,
    CreateEntity,
    DeleteEntity,
    EntityId,
    EntityList,
    EntityReference,
    FindEntities,
    GetChildren,
    Int,
    PageOpts,
    Read,
    Store,
    String,
    Timestamp,
    UpdateEntity,
    Write,
)

from .helpers import T0, T1, create, make_store, read


@pytest.fixture
def s() -> Store:
    return make_store()


def walk(s: Store, parent: EntityId, limit: int) -> list[EntityId]:
    out, cursor = [], None
    while True:
        page = s.query(GetChildren(parent, PageOpts(limit, cursor))).response
        out.extend(page.items)
        assert page.total == len(read(s, parent, "Children").v)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_get_children_pages_in_children_order(s):
    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(10)]
    other = create(s, "Folder", "other")
    s.apply(UpdateEntity([Write(kids[0], "Parent", EntityReference(other))]), T1)
    s.apply(UpdateEntity([Write(kids[0], "Parent", EntityReference(root))]), T1)  # now last
    expected = kids[1:] + kids[:1]
    assert read(s, root, "Children") == EntityList(tuple(expected))
    for limit in (1, 3, 10, 11):
        assert walk(s, root, limit) == expected
    whole = s.query(GetChildren(root)).response
    assert whole.items == expected and whole.total == 10 and whole.next_cursor is None
    empty = s.query(GetChildren(other)).response
    assert empty.items == [] and empty.total == 0 and empty.next_cursor is None


def test_get_children_cursor_holds_while_children_come_and_go(s):
    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(6)]
    page = s.query(GetChildren(root, PageOpts(3))).response
    assert page.items == kids[:3]
    s.apply(DeleteEntity(kids[2]), T1)  # the child the cursor stands on
    s.apply(DeleteEntity(kids[0]), T1)
    late = create(s, "User", "late", root)
    rest = s.query(GetChildren(root, PageOpts(10, page.next_cursor))).response
    assert rest.items == kids[3:] + [late] and rest.total == 5


@pytest.mark.parametrize(
    "cmd,fragment",
    [
        (GetChildren(EntityId("Folder", 999)), "does not exist"),
        (GetChildren(EntityId("User", 2), PageOpts(0)), "limit must be an integer >= 1"),
        (GetChildren(EntityId("User", 2), PageOpts(5, "x")), "invalid cursor"),
    ],
)
def test_get_children_errors(s, cmd, fragment):
    create(s, "Folder", "root")
    create(s, "User", "u", EntityId("Folder", 1))
    resp = s.query(cmd)
    assert resp.response is None and fragment in resp.error


def test_get_children_of_a_type_without_children(s):
    from qcore.store import EntitySchema, FieldSchema, SetSchema

    s.apply(SetSchema(EntitySchema("Leaf", None, {"X": FieldSchema("X", Int(0))})), T0)
    leaf = create(s, "Leaf")
    assert "has no Children field" in s.query(GetChildren(leaf)).error


def test_index_into_children_after_removals(s):
    root = create(s, "Folder", "root")
    kids = [create(s, "User", f"u{i}", root) for i in range(100)]
    for k in kids[::3]:
        s.apply(DeleteEntity(k), T1)
    live = [k for i, k in enumerate(kids) if i % 3]
    for i, k in enumerate(live):
        assert s.read_path(root, f"Children->{i}->Name")[0] == String(f"u{kids.index(k)}")
    resp = s.query(UpdateEntity([Read(root, f"Children->{len(live)}->Name")]))
    assert f"index {len(live)} out of range (Folder$1.Children has {len(live)} entries)" in resp.error
    assert s.check_invariants() == []


def test_children_change_records_keep_their_moment(s):
    a = create(s, "Folder", "a")
    b = create(s, "Folder", "b")
    x = create(s, "User", "x", a)
    y = create(s, "User", "y", a)
    _, changes = s.apply(UpdateEntity([Write(x, "Parent", EntityReference(b)),
                                       Write(y, "Parent", EntityReference(b))]), T1)
    # later commands change both lists again (and compact nothing away from the records)
    z = create(s, "User", "z", a)
    s.apply(DeleteEntity(x), T1)
    assert changes == [
        Change(a, "Children", EntityList((x, y)), EntityList((y,)), T1, None),
        Change(b, "Children", EntityList(()), EntityList((x,)), T1, None),
        Change(x, "Parent", EntityReference(a), EntityReference(b), T1, None),
        Change(a, "Children", EntityList((y,)), EntityList(()), T1, None),
        Change(b, "Children", EntityList((x,)), EntityList((x, y)), T1, None),
        Change(y, "Parent", EntityReference(a), EntityReference(b), T1, None),
    ]
    assert read(s, a, "Children") == EntityList((z,)) and read(s, b, "Children") == EntityList((y,))
    assert changes[0].approx_bytes() < 400  # a view of the list, not a copy of it


def test_tables_compact_after_many_deletes_and_stay_sound(s):
    root = create(s, "Folder", "root")
    users = [create(s, "User", f"u{i}", root) for i in range(300)]
    s.apply(UpdateEntity([Write(u, "Age", Int(i)) for i, u in enumerate(users)]), T1)
    before_snapshot = Store.restore(s.snapshot())
    for u in users[:250]:
        s.apply(DeleteEntity(u), T1)
    assert len(s.entities.tables["User"].ids) < 300  # dead rows were dropped
    assert s.check_invariants() == []
    assert s.query(FindEntities("User")).response.items == users[250:]
    assert [read(s, u, "Age") for u in users[250:]] == [Int(i) for i in range(250, 300)]
    assert Store.restore(s.snapshot()).snapshot() == s.snapshot()
    for u in users[:250]:
        before_snapshot.apply(DeleteEntity(u), T1)
    assert before_snapshot.snapshot() == s.snapshot()


def test_times_beyond_64_bit_nanoseconds(s):
    far = Timestamp(2**64 - 1, 999_999_999)
    u = s.apply(CreateEntity("User", None, "far"), far)[0].response
    s.apply(UpdateEntity([Write(u, "Age", Int(1), write_time=Timestamp(2**63, 1))]), far)
    cells = s.entity_fields(u)
    assert cells["Name"][1] == far and cells["Age"][1] == Timestamp(2**63, 1)
    r = Store.restore(s.snapshot())
    assert r.entity_fields(u) == cells and r.snapshot() == s.snapshot()
    s.apply(UpdateEntity([Write(u, "Age", Int(2), write_time=far)]), T1)  # back to its creation time
    assert s.entity_fields(u)["Age"][1] == far
    assert s.check_invariants() == []
