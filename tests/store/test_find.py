"""FindEntities and GetEntityTypes with cursor paging."""

from __future__ import annotations

import pytest

from qcore.store import (
    DeleteEntity,
    EntityId,
    EntitySchema,
    FindEntities,
    GetEntityTypes,
    PageOpts,
    SetSchema,
    Store,
)

from .helpers import T0, T1, create, make_store


@pytest.fixture
def s() -> Store:
    return make_store()


def find_all_pages(s, typ, limit):
    items, cursor, totals = [], None, set()
    while True:
        resp = s.query(FindEntities(typ, PageOpts(limit, cursor)))
        assert resp.error is None, resp.error
        assert len(resp.response.items) <= limit
        items += resp.response.items
        totals.add(resp.response.total)
        cursor = resp.response.next_cursor
        if cursor is None:
            return items, totals


def test_find_includes_derived_types_sorted_by_id(s):
    u1 = create(s, "User")
    a1 = create(s, "Admin")
    create(s, "Folder")
    u2 = create(s, "User")
    a2 = create(s, "Admin")
    resp = s.query(FindEntities("User"))
    assert resp.response.items == [u1, a1, u2, a2]
    assert resp.response.total == 4 and resp.response.next_cursor is None
    assert s.query(FindEntities("Admin")).response.items == [a1, a2]
    assert s.query(FindEntities("Object")).response.total == 5


def test_find_unknown_type_and_empty_type(s):
    assert s.query(FindEntities("Nope")).error == "unknown entity type 'Nope'"
    resp = s.query(FindEntities("Folder"))
    assert resp.error is None and resp.response.items == [] and resp.response.total == 0


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
def test_paging_visits_everything_once(s, limit):
    made = [create(s, "User" if i % 3 else "Admin") for i in range(20)]
    items, totals = find_all_pages(s, "User", limit)
    assert items == made and totals == {20}


def test_cursor_is_stable_under_inserts_and_deletes(s):
    made = [create(s, "User") for i in range(6)]
    page1 = s.query(FindEntities("User", PageOpts(3))).response
    assert page1.items == made[:3]
    # delete an entity already returned and one not yet returned; add a new one
    s.apply(DeleteEntity(made[1]), T1)
    s.apply(DeleteEntity(made[4]), T1)
    new = create(s, "Admin")
    page2 = s.query(FindEntities("User", PageOpts(3, page1.next_cursor))).response
    assert page2.items == [made[3], made[5], new]
    assert page2.total == 5 and page2.next_cursor is None


def test_exact_last_page_has_no_next_cursor(s):
    for _ in range(4):
        create(s, "User")
    p = s.query(FindEntities("User", PageOpts(2))).response
    p2 = s.query(FindEntities("User", PageOpts(2, p.next_cursor))).response
    assert len(p2.items) == 2 and p2.next_cursor is None


@pytest.mark.parametrize("cursor", ["abc", "-1", "", "1.5", "9" * 30])
def test_bad_cursor(s, cursor):
    resp = s.query(FindEntities("User", PageOpts(2, cursor)))
    assert resp.response is None and "invalid cursor" in resp.error


@pytest.mark.parametrize("limit", [0, -3])
def test_bad_limit(s, limit):
    assert "limit" in s.query(FindEntities("User", PageOpts(limit))).error
    assert "limit" in s.query(GetEntityTypes(PageOpts(limit))).error


def test_get_entity_types_paging(s):
    for t in ("Zeta", "Beta", "Mid"):
        s.apply(SetSchema(EntitySchema(t, None, {})), T0)
    all_types = sorted(["Object", "Folder", "User", "Admin", "Zeta", "Beta", "Mid"])
    resp = s.query(GetEntityTypes())
    assert resp.response.items == all_types and resp.response.total == 7 and resp.response.next_cursor is None
    got, cursor = [], None
    while True:
        r = s.query(GetEntityTypes(PageOpts(3, cursor))).response
        got += r.items
        cursor = r.next_cursor
        if cursor is None:
            break
    assert got == all_types
    # cursor stays valid when a type sorting before it appears
    p1 = s.query(GetEntityTypes(PageOpts(2))).response
    s.apply(SetSchema(EntitySchema("AAA", None, {})), T0)
    p2 = s.query(GetEntityTypes(PageOpts(2, p1.next_cursor))).response
    assert p2.items == all_types[2:4]


def test_find_on_large_derived_merge_respects_limit(s):
    ids = [create(s, ["User", "Admin"][i % 2]) for i in range(50)]
    p = s.query(FindEntities("User", PageOpts(10, str(ids[19].id)))).response
    assert p.items == ids[20:30] and p.next_cursor == str(ids[29].id)
    assert EntityId("User", 1) == ids[0]
