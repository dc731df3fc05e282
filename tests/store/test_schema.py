"""Schemas: inheritance, complete schemas, schema changes on live entities (SPEC 3)."""

from __future__ import annotations

import pytest

from qcore.store import (
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldExists,
    FieldSchema,
    GetCompleteSchema,
    GetSchema,
    Int,
    SetSchema,
    Store,
    String,
    UpdateEntity,
    Write,
)

from .helpers import ADMIN, OBJECT, T1, USER, create, fs, make_store, read


@pytest.fixture
def s() -> Store:
    return make_store()


def set_schema(s, schema, now=T1):
    resp, changes = s.apply(SetSchema(schema), now)
    assert changes == []
    return resp.error


def test_get_schema_returns_own_fields_and_complete_resolves_inheritance(s):
    assert s.query(GetSchema("Admin")).response == ADMIN
    full = s.query(GetCompleteSchema("Admin")).response
    assert full.entity_type == "Admin" and full.inherit == "User"
    assert set(full.fields) == set(OBJECT.fields) | set(USER.fields) | set(ADMIN.fields)
    assert s.query(GetSchema("Nope")).error == "unknown entity type 'Nope'"
    assert s.query(GetCompleteSchema("Nope")).response is None


def test_child_overrides_parent_field(s):
    assert set_schema(s, EntitySchema("Special", "User", {"Age": fs("Age", Int(18), 5)})) is None
    full = s.query(GetCompleteSchema("Special")).response
    assert full.fields["Age"].default_value == Int(18)
    u = create(s, "Special")
    assert read(s, u, "Age") == Int(18)


def test_unknown_parent_and_cycles_are_errors_and_change_nothing(s):
    before = s.snapshot()
    err = set_schema(s, EntitySchema("X", "Nope", {}))
    assert err == "entity_schema: 'X' inherits 'Nope', which is not a known entity type"
    err = set_schema(s, EntitySchema("Object", "Admin", dict(OBJECT.fields)))
    assert err is not None and "inheritance cycle" in err and "Object" in err and "Admin" in err
    err = set_schema(s, EntitySchema("Y", "Y", {}))
    assert "inheritance cycle: Y -> Y" in err
    assert s.snapshot() == before


@pytest.mark.parametrize(
    "schema,fragment",
    [
        (EntitySchema("", None, {}), "non-empty"),
        (EntitySchema("A$b", None, {}), "may not contain"),
        (EntitySchema("A", None, {"x->y": FieldSchema("x->y", Int(0))}), "may not contain '->'"),
        (EntitySchema("A", None, {"x": FieldSchema("y", Int(0))}), "must equal its key"),
        (EntitySchema("A", None, {"c": FieldSchema("c", Choice(0))}), "needs a non-empty list of choices"),
        (EntitySchema("A", None, {"c": FieldSchema("c", Choice(2), choices=("a", "b"))}), "out of range"),
        (EntitySchema("A", None, {"n": FieldSchema("n", Int(5), choices=("a",))}),
         "field 'n' of 'A': only a Choice field has choices; this one is an Int field"),
        (EntitySchema("A", None, {"s": FieldSchema("s", String(""), choices=())}), "this one is a String field"),
        (EntitySchema("A", "Object", {"Name": FieldSchema("Name", Int(0))}), "must be String"),
        (EntitySchema("A", None, {"Parent": FieldSchema("Parent", String(""))}), "must be EntityReference"),
        (EntitySchema("A", None, {"Children": FieldSchema("Children", EntityReference())}), "must be EntityList"),
        (EntitySchema("A", None, {"Children": FieldSchema("Children", EntityList((EntityId("A", 1),)))}),
         "its default must be an empty EntityList"),
        (EntitySchema("A", None, {"Parent": FieldSchema("Parent", EntityReference(EntityId("A", 1)))}),
         "its default must be a null EntityReference"),
    ],
)
def test_invalid_schemas(s, schema, fragment):
    before = s.snapshot()
    err = set_schema(s, schema)
    assert err is not None and fragment in err, err
    assert s.snapshot() == before


def test_schema_change_adds_and_drops_fields_on_type_and_descendants(s):
    u = create(s, "User", "u")
    a = create(s, "Admin", "a")
    f = create(s, "Folder", "f")
    s.apply(UpdateEntity([Write(u, "Email", String("keep@x"))]), T1)
    new_user = EntitySchema(
        "User",
        "Object",
        {
            "Email": fs("Email", String(""), 3),
            "Phone": fs("Phone", String("+0"), 4),
        },
    )
    later = T1.__class__(5_000, 0)
    assert set_schema(s, new_user, later) is None
    for e in (u, a):
        fields = s.entity_fields(e)
        assert "Phone" in fields and fields["Phone"] == (String("+0"), later, None)
        assert "Age" not in fields and "Friends" not in fields
    assert s.entity_fields(a)["Level"][0] == Int(1)
    assert read(s, u, "Email") == String("keep@x")  # untouched field keeps value
    assert set(s.entity_fields(f)) == {"Name", "Parent", "Children", "Description"}


def test_inherited_field_added_to_base_reaches_all_descendants(s):
    a = create(s, "Admin", "a")
    f = create(s, "Folder", "f")
    obj = EntitySchema("Object", None, {**OBJECT.fields, "Tag": fs("Tag", Int(7), 9)})
    assert set_schema(s, obj) is None
    assert read(s, a, "Tag") == Int(7) and read(s, f, "Tag") == Int(7)


def test_variant_change_resets_value_to_new_default(s):
    u = create(s, "User")
    s.apply(UpdateEntity([Write(u, "Age", Int(40))]), T1)
    fields = dict(USER.fields)
    fields["Age"] = fs("Age", String("unknown"), 5)
    assert set_schema(s, EntitySchema("User", "Object", fields)) is None
    assert read(s, u, "Age") == String("unknown")


def test_same_variant_new_default_keeps_value(s):
    u = create(s, "User")
    s.apply(UpdateEntity([Write(u, "Age", Int(40))]), T1)
    fields = dict(USER.fields)
    fields["Age"] = fs("Age", Int(99), 5)
    set_schema(s, EntitySchema("User", "Object", fields))
    assert read(s, u, "Age") == Int(40)
    assert read(s, create(s, "User"), "Age") == Int(99)


def test_choices_shrinking_resets_out_of_range_values(s):
    u = create(s, "User")
    v = create(s, "User")
    s.apply(UpdateEntity([Write(u, "Role", Choice(2)), Write(v, "Role", Choice(1))]), T1)
    fields = dict(USER.fields)
    fields["Role"] = fs("Role", Choice(0), 7, ["Viewer", "Operator"])
    set_schema(s, EntitySchema("User", "Object", fields))
    assert read(s, u, "Role") == Choice(0)
    assert read(s, v, "Role") == Choice(1)


def test_changing_inherit_moves_fields(s):
    base = EntitySchema("Base", None, {"B": fs("B", Int(1))})
    assert set_schema(s, base) is None
    a = create(s, "Admin", "a")
    admin2 = EntitySchema("Admin", "Base", dict(ADMIN.fields))
    assert set_schema(s, admin2) is None
    assert set(s.entity_fields(a)) == {"B", "Level"}


def test_dropping_parent_or_children_from_entities_in_the_tree_is_refused(s):
    root = create(s, "Folder", "root")
    create(s, "User", "u", root)
    before = s.snapshot()
    err = set_schema(s, EntitySchema("Folder", None, {"Description": fs("Description", String(""))}))
    assert err is not None and "would drop Children from Folder$1" in err
    err = set_schema(s, EntitySchema("User", None, {"Email": fs("Email", String(""))}))
    assert err is not None and "would drop Parent from User$2" in err
    assert s.snapshot() == before
    # a detached, childless entity may lose them
    lone = create(s, "Admin", "lone")
    assert set_schema(s, EntitySchema("Admin", None, {"Level": fs("Level", Int(1))})) is None
    assert set(s.entity_fields(lone)) == {"Level"}


def test_field_exists(s):
    assert s.query(FieldExists("Admin", "Email")).response is True
    assert s.query(FieldExists("Admin", "Level")).response is True
    assert s.query(FieldExists("User", "Level")).response is False
    assert s.query(FieldExists("Nope", "Name")).response is False


def test_schema_fields_are_sorted_by_rank_in_complete_schema(s):
    full = s.query(GetCompleteSchema("User")).response
    ranks = [f.rank for f in full.fields.values()]
    assert ranks == sorted(ranks)
    assert list(full.fields)[:3] == ["Name", "Parent", "Children"]
