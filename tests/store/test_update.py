"""Read / Write semantics (SPEC 3): type checks, Add/Subtract, Changes/Always,
write times, indirection, atomic batches, change records."""

from __future__ import annotations

import pytest

from qcore.store import (
    AdjustBehavior,
    Blob,
    Bool,
    Change,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    PushCondition,
    Read,
    Store,
    StoreError,
    String,
    Timestamp,
    TimestampValue,
    UpdateEntity,
    Write,
)

from .helpers import T0, T1, create, make_store, read, read_full

ADD, SUB, SET = AdjustBehavior.Add, AdjustBehavior.Subtract, AdjustBehavior.Set


@pytest.fixture
def s() -> Store:
    return make_store()


def write(s: Store, eid, field, value, now=T1, **kw):
    resp, changes = s.apply(UpdateEntity([Write(eid, field, value, **kw)]), now)
    return resp, changes


def test_read_returns_value_time_and_writer(s):
    u = create(s, "User", "alice")
    r = read_full(s, u, "Name")
    assert (r.value, r.write_time, r.writer_id) == (String("alice"), T0, None)
    w = create(s, "User", "bob")
    resp, _ = write(s, u, "Email", String("a@x"), writer_id=w)
    assert resp.error is None
    r = read_full(s, u, "Email")
    assert (r.value, r.write_time, r.writer_id) == (String("a@x"), T1, w)


def test_explicit_write_time_is_kept(s):
    u = create(s, "User")
    t = Timestamp(42, 7)
    write(s, u, "Age", Int(3), write_time=t)
    assert read_full(s, u, "Age").write_time == t


def test_reads_echo_request_fields_and_writes_echo_as_given(s):
    u = create(s, "User", "x")
    w = Write(u, "Age", Int(5))
    resp, _ = s.apply(UpdateEntity([w, Read(u, "Age")]), T1)
    assert resp.response[0] is w
    assert resp.response[1] == Read(u, "Age", Int(5), T1, None)


@pytest.mark.parametrize(
    "field,value",
    [
        ("Age", String("5")),
        ("Age", Float(5.0)),
        ("Score", Int(1)),
        ("Active", Int(1)),
        ("Role", Int(1)),
        ("Manager", EntityList(())),
        ("Friends", EntityReference(None)),
        ("Avatar", String("x")),
        ("Seen", Int(0)),
        ("Email", Bool(True)),
    ],
)
def test_type_mismatch_is_an_error_and_changes_nothing(s, field, value):
    u = create(s, "User")
    before = s.snapshot()
    resp, changes = write(s, u, field, value)
    assert resp.error is not None and "type mismatch" in resp.error
    assert value.tag in resp.error
    assert changes == [] and resp.response == []
    assert s.snapshot() == before


def test_null_write_value_is_an_error(s):
    u = create(s, "User")
    resp, _ = write(s, u, "Email", None)
    assert "request[0]" in resp.error and "null" in resp.error


def test_unknown_field_and_missing_entity(s):
    u = create(s, "User")
    resp, _ = write(s, u, "Nope", Int(1))
    assert resp.error == f"request[0]: {u} has no field 'Nope'"
    resp, _ = write(s, EntityId("User", 999), "Age", Int(1))
    assert resp.error == "request[0]: entity User$999 does not exist"
    # the number exists but the type is wrong: still does not exist
    resp, _ = write(s, EntityId("Folder", u.id), "Age", Int(1))
    assert "does not exist" in resp.error
    resp = s.query(UpdateEntity([Read(EntityId("User", 999), "Name")]))
    assert resp.error == "request[0]: entity User$999 does not exist"


def test_choice_range(s):
    u = create(s, "User")
    assert write(s, u, "Role", Choice(2))[0].error is None
    assert read(s, u, "Role") == Choice(2)
    for bad in (3, -1):
        resp, _ = write(s, u, "Role", Choice(bad))
        assert "out of range" in resp.error
    assert read(s, u, "Role") == Choice(2)


@pytest.mark.parametrize(
    "field,start,delta,behavior,expected",
    [
        ("Age", Int(10), Int(5), ADD, Int(15)),
        ("Age", Int(10), Int(15), SUB, Int(-5)),
        ("Score", Float(1.5), Float(2.25), ADD, Float(3.75)),
        ("Score", Float(1.5), Float(2.0), SUB, Float(-0.5)),
        ("Email", String("ab"), String("cd"), ADD, String("abcd")),
        ("Avatar", Blob(b"\x01"), Blob(b"\x02\x03"), ADD, Blob(b"\x01\x02\x03")),
        (
            "Friends",
            EntityList((EntityId("User", 1), EntityId("User", 2))),
            EntityList((EntityId("User", 1), EntityId("User", 3))),
            ADD,
            EntityList((EntityId("User", 1), EntityId("User", 2), EntityId("User", 1), EntityId("User", 3))),
        ),
        (
            "Friends",
            EntityList((EntityId("User", 1), EntityId("User", 2), EntityId("User", 1), EntityId("User", 3))),
            EntityList((EntityId("User", 1), EntityId("User", 9))),
            SUB,
            EntityList((EntityId("User", 2), EntityId("User", 3))),
        ),
    ],
)
def test_add_subtract_matrix_allowed(s, field, start, delta, behavior, expected):
    u = create(s, "User")
    assert write(s, u, field, start)[0].error is None
    resp, changes = write(s, u, field, delta, adjust_behavior=behavior)
    assert resp.error is None
    assert read(s, u, field) == expected
    assert changes == [Change(u, field, start, expected, T1, None)]


@pytest.mark.parametrize(
    "field,value,behavior",
    [
        ("Email", String("x"), SUB),
        ("Avatar", Blob(b"x"), SUB),
        ("Active", Bool(True), ADD),
        ("Active", Bool(True), SUB),
        ("Role", Choice(1), ADD),
        ("Role", Choice(1), SUB),
        ("Manager", EntityReference(None), ADD),
        ("Manager", EntityReference(None), SUB),
        ("Seen", TimestampValue(Timestamp(1, 0)), ADD),
        ("Seen", TimestampValue(Timestamp(1, 0)), SUB),
    ],
)
def test_add_subtract_matrix_refused(s, field, value, behavior):
    u = create(s, "User")
    before = s.snapshot()
    resp, _ = write(s, u, field, value, adjust_behavior=behavior)
    assert resp.error is not None and f"cannot {behavior.value}" in resp.error
    assert s.snapshot() == before


def test_int_overflow_and_float_overflow_are_errors(s):
    u = create(s, "User")
    write(s, u, "Age", Int(2**63 - 1))
    assert "overflow" in write(s, u, "Age", Int(1), adjust_behavior=ADD)[0].error
    write(s, u, "Age", Int(-(2**63)))
    assert "overflow" in write(s, u, "Age", Int(1), adjust_behavior=SUB)[0].error
    write(s, u, "Score", Float(1.7e308))
    assert "overflow" in write(s, u, "Score", Float(1.7e308), adjust_behavior=ADD)[0].error
    assert read(s, u, "Score") == Float(1.7e308)


def test_changes_skips_equal_value_and_keeps_time_and_writer(s):
    u = create(s, "User")
    w = create(s, "User")
    write(s, u, "Email", String("x"), now=T1, writer_id=w)
    later = Timestamp(9_999, 0)
    resp, changes = write(s, u, "Email", String("x"), now=later, push_condition=PushCondition.Changes)
    assert resp.error is None and changes == []
    r = read_full(s, u, "Email")
    assert (r.write_time, r.writer_id) == (T1, w)
    # a different value is written
    resp, changes = write(s, u, "Email", String("y"), now=later, push_condition=PushCondition.Changes)
    assert read_full(s, u, "Email").write_time == later and len(changes) == 1


def test_changes_compares_the_adjusted_value(s):
    u = create(s, "User")
    resp, changes = write(s, u, "Age", Int(0), adjust_behavior=ADD, push_condition=PushCondition.Changes)
    assert changes == [] and read_full(s, u, "Age").write_time == T0


def test_always_writes_equal_value_and_records_change(s):
    u = create(s, "User", "n")
    resp, changes = write(s, u, "Name", String("n"), now=T1)
    assert changes == [Change(u, "Name", String("n"), String("n"), T1, None)]
    assert read_full(s, u, "Name").write_time == T1


# ----------------------------------------------------------- indirection


def tree(s):
    root = create(s, "Folder", "root")
    a = create(s, "User", "a", root)
    b = create(s, "User", "b", root)
    write(s, a, "Manager", EntityReference(b))
    return root, a, b


def test_indirection_reads(s):
    root, a, b = tree(s)
    assert read(s, a, "Parent->Name") == String("root")
    assert read(s, root, "Children->1->Name") == String("b")
    assert read(s, a, "Parent->Children->0->Manager->Name") == String("b")
    r = read_full(s, a, "Manager->Name")
    assert r.field_type == "Manager->Name" and r.entity_id == a


def test_indirection_writes_hit_the_target_entity(s):
    root, a, b = tree(s)
    resp, changes = write(s, a, "Parent->Children->1->Email", String("b@x"))
    assert resp.error is None
    assert read(s, b, "Email") == String("b@x")
    assert changes == [Change(b, "Email", String(""), String("b@x"), T1, None)]
    write(s, a, "Manager->Age", Int(3), adjust_behavior=ADD)
    assert read(s, b, "Age") == Int(3)


@pytest.mark.parametrize(
    "path,fragment",
    [
        ("Parent->Parent->Name", "'Parent->Parent': Folder$1.Parent is a null reference"),
        ("Parent->Children->5->Name", "'Parent->Children->5': index 5 out of range (Folder$1.Children has 2 entries)"),
        ("Parent->Children->x->Name", "expected an index after it, got 'x'"),
        ("Parent->Children->-1->Name", "expected an index after it, got '-1'"),
        ("Name->Email", "'Name': User$2.Name is String, not an EntityReference or EntityList"),
        ("Nope->Name", "'Nope': User$2 has no field 'Nope'"),
        ("Parent->Nope", "'Parent->Nope': Folder$1 has no field 'Nope'"),
        ("Parent->Children->0", "ends with an index"),
        ("Manager->Email", None),  # fine: control
    ],
)
def test_broken_paths_say_where(s, path, fragment):
    root, a, b = tree(s)
    resp = s.query(UpdateEntity([Read(a, path)]))
    if fragment is None:
        assert resp.error is None
        return
    assert resp.error is not None and fragment in resp.error, resp.error
    assert resp.error.startswith("request[0]: path ")
    # the same path is refused for writes, with the same message
    wresp, _ = write(s, a, path, String("v"))
    assert wresp.error is not None and fragment in wresp.error


def test_path_through_deleted_entity(s):
    from qcore.store import DeleteEntity

    root, a, b = tree(s)
    s.apply(DeleteEntity(b), T1)
    resp = s.query(UpdateEntity([Read(a, "Manager->Name")]))
    assert resp.error == "request[0]: path 'Manager->Name' broke at 'Manager': entity User$3 does not exist"


def test_read_path_helper(s):
    root, a, b = tree(s)
    assert s.read_path(a, "Manager->Name") == (String("b"), T0, None)
    with pytest.raises(StoreError, match="null reference"):
        s.read_path(a, "Parent->Parent->Name")
    with pytest.raises(StoreError, match="does not exist"):
        s.read_path(EntityId("User", 77), "Name")


# ----------------------------------------------------------- atomic batches


def test_failing_batch_applies_nothing_and_names_the_index(s):
    u = create(s, "User")
    before = s.snapshot()
    batch = [
        Write(u, "Age", Int(1)),
        Write(u, "Email", String("x"), adjust_behavior=ADD),
        Read(u, "Age"),
        Write(u, "Role", Choice(7)),
        Write(u, "Name", String("late")),
    ]
    resp, changes = s.apply(UpdateEntity(batch), T1)
    assert resp.error.startswith("request[3]: ") and "out of range" in resp.error
    assert resp.response == [] and changes == []
    assert s.snapshot() == before


def test_batch_failure_undoes_repeated_writes_to_same_field(s):
    u = create(s, "User")
    before = s.snapshot()
    batch = [Write(u, "Age", Int(1), adjust_behavior=ADD)] * 3 + [Write(u, "Nope", Int(1))]
    resp, _ = s.apply(UpdateEntity(batch), T1)
    assert resp.error.startswith("request[3]: ")
    assert s.snapshot() == before


def test_later_requests_see_earlier_writes(s):
    root, a, b = tree(s)
    c = create(s, "User", "c")
    batch = [
        Write(a, "Manager", EntityReference(c)),
        Write(a, "Manager->Name", String("via-new-manager")),
        Read(c, "Name"),
        Write(a, "Age", Int(2), adjust_behavior=ADD),
        Write(a, "Age", Int(2), adjust_behavior=ADD),
        Read(a, "Age"),
    ]
    resp, changes = s.apply(UpdateEntity(batch), T1)
    assert resp.error is None
    assert resp.response[2].value == String("via-new-manager")
    assert resp.response[5].value == Int(4)
    assert [c_.field_type for c_ in changes] == ["Manager", "Name", "Age", "Age"]


def test_empty_batch_is_fine(s):
    resp, changes = s.apply(UpdateEntity([]), T1)
    assert resp.error is None and resp.response == [] and changes == []


# ------------------------------------------------------- managed fields


def test_children_cannot_be_written(s):
    root, a, b = tree(s)
    for beh in (SET, ADD, SUB):
        resp, _ = write(s, root, "Children", EntityList(()), adjust_behavior=beh)
        assert "maintained by the store" in resp.error
    same = read(s, root, "Children")
    for pc in PushCondition:
        resp, _ = write(s, root, "Children", same, push_condition=pc)
        assert "maintained by the store" in resp.error
    resp, _ = write(s, a, "Parent->Children", same)
    assert "Folder$1.Children is maintained by the store" in resp.error


def test_writing_parent_moves_the_entity(s):
    root, a, b = tree(s)
    other = create(s, "Folder", "other")
    resp, changes = write(s, a, "Parent", EntityReference(other))
    assert resp.error is None
    assert read(s, root, "Children") == EntityList((b,))
    assert read(s, other, "Children") == EntityList((a,))
    assert read(s, a, "Parent") == EntityReference(other)
    assert {(c.entity_id, c.field_type) for c in changes} == {(root, "Children"), (other, "Children"), (a, "Parent")}
    # detach to top level
    write(s, a, "Parent", EntityReference(None))
    assert read(s, other, "Children") == EntityList(())


def test_a_move_writes_both_childrens_writer_only_when_told(s):
    """``moves_by_writer`` (set by the node for log entries of level 2): both parents'
    Children record the move's writer; without it (the rules before), no writer."""
    root, a, b = tree(s)
    other = create(s, "Folder", "other")
    w = EntityId("User", 77)
    move = Write(a, "Parent", EntityReference(other), writer_id=w)
    _, changes = s.apply(UpdateEntity([move]), T1)
    assert {c.field_type: c.writer_id for c in changes} == {"Children": None, "Parent": w}
    assert read_full(s, root, "Children").writer_id is None and read_full(s, other, "Children").writer_id is None
    back = Write(a, "Parent", EntityReference(root), writer_id=w)
    _, changes = s.apply(UpdateEntity([back], moves_by_writer=True), T1)
    assert [(c.entity_id, c.field_type, c.writer_id) for c in changes] == [
        (other, "Children", w), (root, "Children", w), (a, "Parent", w)]
    assert read_full(s, root, "Children").writer_id == w and read_full(s, other, "Children").writer_id == w
    assert Store.restore(s.snapshot()).snapshot() == s.snapshot()


def test_move_refuses_cycles_and_missing_parents(s):
    root, a, b = tree(s)
    sub = create(s, "Folder", "sub", root)
    before = s.snapshot()
    resp, _ = write(s, root, "Parent", EntityReference(sub))
    assert "itself or its descendant" in resp.error
    resp, _ = write(s, root, "Parent", EntityReference(root))
    assert "itself or its descendant" in resp.error
    resp, _ = write(s, a, "Parent", EntityReference(EntityId("Folder", 99)))
    assert "does not exist" in resp.error
    assert s.snapshot() == before


def test_move_then_fail_in_same_batch_is_undone(s):
    root, a, b = tree(s)
    other = create(s, "Folder", "other")
    before = s.snapshot()
    resp, _ = s.apply(UpdateEntity([Write(a, "Parent", EntityReference(other)), Write(a, "Nope", Int(1))]), T1)
    assert resp.error.startswith("request[1]")
    assert s.snapshot() == before


# ------------------------------------------------------- query purity


def test_query_refuses_writes_and_never_mutates(s):
    u = create(s, "User")
    with pytest.raises(StoreError):
        s.query(UpdateEntity([Write(u, "Age", Int(1))]))
    before = s.snapshot()
    s.query(UpdateEntity([Read(u, "Name"), Read(u, "Nope")]))
    assert s.snapshot() == before


def test_is_read_only():
    from qcore.store import (
        CreateEntity,
        DeleteEntity,
        EntityExists,
        FieldExists,
        FindEntities,
        GetCompleteSchema,
        GetEntityTypes,
        GetSchema,
        LoadConfig,
        SetSchema,
    )
    from .helpers import USER

    u = EntityId("User", 1)
    assert Store.is_read_only(UpdateEntity([Read(u, "Name")]))
    assert Store.is_read_only(UpdateEntity([]))
    assert not Store.is_read_only(UpdateEntity([Read(u, "Name"), Write(u, "Name", String(""))]))
    for c in (GetSchema("User"), GetCompleteSchema("User"), FindEntities("User"), GetEntityTypes(),
              EntityExists(u), FieldExists("User", "Name")):
        assert Store.is_read_only(c)
    for c in (CreateEntity("User", None, ""), DeleteEntity(u), SetSchema(USER), LoadConfig()):
        assert not Store.is_read_only(c)


def test_apply_accepts_read_only_commands_too(s):
    from qcore.store import EntityExists

    u = create(s, "User")
    resp, changes = s.apply(EntityExists(u), T1)
    assert resp.response is True and changes == []
    resp, changes = s.apply(UpdateEntity([Read(u, "Name")]), T1)
    assert resp.response[0].value == String("")


def test_apply_rejects_non_commands(s):
    with pytest.raises(StoreError):
        s.apply("nope", T1)  # type: ignore[arg-type]


def test_batch_is_undone_even_when_the_caller_passes_garbage(s):
    u = create(s, "User")
    before = s.snapshot()
    with pytest.raises(AttributeError):
        s.apply(UpdateEntity([Write(u, "Age", Int(1)), Write(None, "Age", Int(2))]), T1)  # type: ignore[arg-type]
    assert s.snapshot() == before
    resp, _ = s.apply(UpdateEntity([Write(u, "Age", Int(1)), Write(u, "Age", 5)]), T1)  # type: ignore[arg-type]
    assert resp.error == f"request[1]: write to {u}.Age: value must be a Value, got int"
    assert s.snapshot() == before
