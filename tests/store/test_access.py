"""What each command needs (qcore.store.access), checked against a real store:
path hops, descendants of a delete, types listed, writers stamped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qcore.store import (
    CreateEntity,
    DeleteEntity,
    EntityExists,
    EntityId,
    EntityReference,
    FieldExists,
    FindEntities,
    GetChildren,
    GetCompleteSchema,
    GetEntityTypes,
    GetSchema,
    PageOpts,
    Read,
    SetSchema,
    String,
    UpdateEntity,
    Write,
)
from qcore.store.access import denied_change, denied_path, denied_query, readable_types, stamp_writer, type_lineage
from qcore.store.permissions import Grants, Permission

from .helpers import FOLDER, T0, create, make_store


def grants(store, *perms: tuple[str, str, str]) -> Grants:  # type: ignore[no-untyped-def]
    return Grants([Permission(t, f, frozenset(a.split(","))) for t, f, a in perms], lambda t: type_lineage(store, t))


def setup():  # type: ignore[no-untyped-def]
    s = make_store()
    folder = create(s, "Folder", "f")
    boss = create(s, "User", "boss", folder)
    alice = create(s, "Admin", "alice", folder)  # Admin inherits User
    s.apply(UpdateEntity([Write(alice, "Manager", EntityReference(boss))]), T0)
    return s, folder, boss, alice


def test_a_path_needs_read_on_every_hop_and_the_access_on_its_end() -> None:
    s, folder, boss, alice = setup()
    g = grants(s, ("User", "Manager", "read"), ("User", "Email", "write"))
    assert denied_path(s, g, "bob", alice, "Manager->Email", "write") is None  # Admin is a User
    assert denied_path(s, g, "bob", alice, "Manager->Email", "read") == "permission denied: bob may not read User.Email"
    assert denied_path(s, g, "bob", alice, "Parent->Name", "read") == "permission denied: bob may not read Admin.Parent"
    g2 = grants(s, ("User", "*", "read"))
    assert denied_path(s, g2, "bob", alice, "Parent->Name", "read") == "permission denied: bob may not read Folder.Name"
    assert denied_path(s, g2, "bob", folder, "Children->0->Email", "read") == \
        "permission denied: bob may not read Folder.Children"
    g3 = grants(s, ("*", "*", "read"))
    assert denied_path(s, g3, "bob", folder, "Children->0->Email", "read") is None
    # a broken path is left to the store, which says where it broke
    assert denied_path(s, g2, "bob", boss, "Manager->Email", "read") is None
    assert denied_path(s, g2, "bob", alice, "Friends->3->Email", "read") is None


def test_a_batch_is_refused_for_its_first_request_that_is_not_allowed() -> None:
    s, folder, boss, alice = setup()
    g = grants(s, ("User", "Email", "read,write"), ("User", "Name", "read"))
    ok = UpdateEntity([Read(boss, "Name"), Write(alice, "Email", String("a@x"))])
    assert denied_change(s, g, "bob", ok) is None
    bad = UpdateEntity([Write(alice, "Email", String("a@x")), Write(boss, "Name", String("B"))])
    assert denied_change(s, g, "bob", bad) == "permission denied: bob may not write User.Name"


def test_create_and_delete_need_their_access_on_every_type_removed() -> None:
    s, folder, boss, alice = setup()
    g = grants(s, ("Folder", "*", "create,delete"), ("User", "*", "create"))
    assert denied_change(s, g, "bob", CreateEntity("Admin", folder, "x")) is None
    assert denied_change(s, g, "bob", CreateEntity("Object", None, "x")) == "permission denied: bob may not create Object"
    why = denied_change(s, g, "bob", DeleteEntity(folder))
    assert why is not None and why.startswith("permission denied: bob may not delete ") and "descendant of Folder$" in why
    assert denied_change(s, grants(s, ("Object", "*", "delete")), "bob", DeleteEntity(folder)) is None
    assert denied_change(s, g, "bob", DeleteEntity(EntityId("User", 999))) == "permission denied: bob may not delete User"
    assert denied_change(s, g, "bob", SetSchema(FOLDER)) == "permission denied: bob may not change schemas (admin only)"


def test_queries_need_read_on_something_of_the_type() -> None:
    s, folder, boss, alice = setup()
    g = grants(s, ("User", "Email", "read"))
    for cmd in (GetSchema("Admin"), GetCompleteSchema("User"), FindEntities("Admin", None),
                FieldExists("User", "Name"), EntityExists(alice), UpdateEntity([Read(alice, "Email")])):
        assert denied_query(s, g, "bob", cmd) is None, cmd
    for cmd, typ in ((GetSchema("Folder"), "Folder"), (FindEntities("Object", None), "Object"),
                     (EntityExists(folder), "Folder"), (FieldExists("Folder", "Name"), "Folder")):
        assert denied_query(s, g, "bob", cmd) == f"permission denied: bob may not read {typ}"


def test_get_children_needs_read_on_the_parents_children() -> None:
    s, folder, boss, alice = setup()
    assert denied_query(s, grants(s, ("Folder", "Children", "read")), "bob", GetChildren(folder, None)) is None
    assert denied_query(s, grants(s, ("Folder", "Name", "read")), "bob", GetChildren(folder, None)) == \
        "permission denied: bob may not read Folder.Children"


@given(st.integers(1, 5), st.lists(st.sampled_from(["Object", "Folder", "User", "Admin", "*"]), max_size=3))
def test_types_are_listed_only_where_something_is_readable_and_page_as_the_store_pages(limit, readable) -> None:  # type: ignore[no-untyped-def]
    s = make_store()
    g = grants(s, *((t, "Name", "read") for t in readable))
    expected = [t for t in ("Admin", "Folder", "Object", "User")
                if "*" in readable or set(type_lineage(s, t)) & set(readable)]
    seen: list[str] = []
    cursor = None
    while True:
        page = readable_types(s, g, GetEntityTypes(PageOpts(limit, cursor))).response
        assert page.total == len(expected)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert readable_types(s, g, GetEntityTypes(PageOpts(0, None))).error is not None  # the store's own refusal


def test_writes_are_stamped_with_the_users_entity() -> None:
    s, folder, boss, alice = setup()
    cmd = UpdateEntity([Read(boss, "Name"), Write(boss, "Email", String("x"), writer_id=alice)])
    stamp_writer(cmd, boss)
    assert cmd.request[1].writer_id == boss and cmd.request[0].writer_id is None
    resp, changes = s.apply(cmd, T0)
    assert resp.error is None and changes[0].writer_id == boss
