"""Shared builders for store tests: a small schema set in the seed's style."""

from __future__ import annotations

from qcore.store import (
    Choice,
    CreateEntity,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldSchema,
    Float,
    Int,
    Read,
    SetSchema,
    Store,
    String,
    Timestamp,
    UpdateEntity,
    Value,
    Bool,
    Blob,
    TimestampValue,
)

T0 = Timestamp(1_000, 0)
T1 = Timestamp(2_000, 5)


def fs(name: str, default: Value, rank: int = 0, choices: list[str] | None = None) -> FieldSchema:
    return FieldSchema(name, default, rank, None, None, None if choices is None else tuple(choices))


OBJECT = EntitySchema(
    "Object",
    None,
    {
        "Name": fs("Name", String(""), 0),
        "Parent": fs("Parent", EntityReference(None), 1),
        "Children": fs("Children", EntityList(()), 2),
    },
)
FOLDER = EntitySchema("Folder", "Object", {"Description": fs("Description", String(""), 3)})
USER = EntitySchema(
    "User",
    "Object",
    {
        "Email": fs("Email", String(""), 3),
        "Active": fs("Active", Bool(True), 4),
        "Age": fs("Age", Int(0), 5),
        "Score": fs("Score", Float(0.0), 6),
        "Role": fs("Role", Choice(0), 7, ["Viewer", "Operator", "Admin"]),
        "Manager": fs("Manager", EntityReference(None), 8),
        "Friends": fs("Friends", EntityList(()), 9),
        "Avatar": fs("Avatar", Blob(b""), 10),
        "Seen": fs("Seen", TimestampValue(Timestamp(0, 0)), 11),
    },
)
ADMIN = EntitySchema("Admin", "User", {"Level": fs("Level", Int(1), 20)})


def make_store() -> Store:
    s = Store()
    for sch in (OBJECT, FOLDER, USER, ADMIN):
        resp, _ = s.apply(SetSchema(sch), T0)
        assert resp.error is None, resp.error
    return s


def create(s: Store, typ: str, name: str = "", parent: EntityId | None = None, now: Timestamp = T0) -> EntityId:
    resp, _ = s.apply(CreateEntity(typ, parent, name), now)
    assert resp.error is None, resp.error
    return resp.response


def read(s: Store, eid: EntityId, field: str) -> Value:
    resp = s.query(UpdateEntity([Read(eid, field)]))
    assert resp.error is None, resp.error
    return resp.response[0].value


def read_full(s: Store, eid: EntityId, field: str) -> Read:
    resp = s.query(UpdateEntity([Read(eid, field)]))
    assert resp.error is None, resp.error
    return resp.response[0]
