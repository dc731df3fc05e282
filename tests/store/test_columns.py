"""How columns keep values: text in one buffer per column (rewrites leave
garbage that is dropped between commands), defaults shared, equal states
stored (and snapshotted) alike."""

from __future__ import annotations

import pytest

from qcore.store import (
    CreateEntity,
    EntitySchema,
    Int,
    SetSchema,
    Store,
    String,
    UpdateEntity,
    Write,
)

from .helpers import T0, T1, USER, create, fs, make_store, read


@pytest.fixture
def s() -> Store:
    return make_store()


def test_rewritten_text_is_tidied_and_reads_stay_right(s):
    users = [create(s, "User", f"u{i}") for i in range(200)]
    col = s.entities.tables["User"].cols["Email"]
    for rnd in range(60):
        s.apply(UpdateEntity([Write(u, "Email", String(f"{rnd}-{i}-" + "x" * 400)) for i, u in enumerate(users)]), T1)
    assert col.used > col._GARBAGE_MIN
    assert len(col.buf) < 5 * col.used  # 60 rounds written, but the garbage did not pile up
    assert [read(s, u, "Email").v for u in users] == [f"59-{i}-" + "x" * 400 for i in range(200)]
    assert s.check_invariants() == []


def test_a_failed_batch_puts_text_back(s):
    u = create(s, "User", "u")
    s.apply(UpdateEntity([Write(u, "Email", String("before"))]), T1)
    resp, _ = s.apply(UpdateEntity([Write(u, "Email", String("é" * 10_000)), Write(u, "Nope", Int(1))]), T1)
    assert resp.error is not None
    assert read(s, u, "Email") == String("before")
    assert s.check_invariants() == []


def test_text_equal_to_the_default_is_the_default(s):
    a = create(s, "User", "a")
    b = create(s, "User", "b")
    s.apply(UpdateEntity([Write(a, "Email", String("x")), Write(a, "Email", String(""))]), T1)
    s.apply(UpdateEntity([Write(b, "Email", String(""))]), T1)
    assert s.entities.tables["User"].cols["Email"].used == 0  # no Email text of its own: both at the default
    # the same state reached another way gives the same snapshot
    other = make_store()
    create(other, "User", "a")
    create(other, "User", "b")
    other.apply(UpdateEntity([Write(a, "Email", String(""))]), T1)
    other.apply(UpdateEntity([Write(b, "Email", String(""))]), T1)
    assert other.snapshot() == s.snapshot()


def test_a_new_default_reaches_new_rows_only(s):
    old = create(s, "User", "old")
    user2 = EntitySchema("User", "Object", {**USER.fields, "Email": fs("Email", String("none@x"), 3)})
    assert s.apply(SetSchema(user2), T1)[0].error is None
    new = create(s, "User", "new")
    assert read(s, old, "Email") == String("") and read(s, new, "Email") == String("none@x")
    assert s.check_invariants() == []
    assert Store.restore(s.snapshot()).snapshot() == s.snapshot()


@pytest.mark.parametrize("written", [3, 40])  # few rows off the default (sparse) / most of them (dense)
def test_non_ascii_text_round_trips(s, written):
    users = [create(s, "User", "ü" * (i % 3)) for i in range(50)]
    texts = ["", "plain", "é ü ✓", "\u0000", "🙂 emoji", "\\\"quoted\\\""]
    s.apply(UpdateEntity([Write(u, "Email", String(texts[i % len(texts)] + str(i)))
                          for i, u in enumerate(users[:written])]), T1)
    r = Store.restore(s.snapshot())
    for u in users:
        assert r.entity_fields(u) == s.entity_fields(u)
    assert r.snapshot() == s.snapshot() and r.check_invariants() == []


def test_names_with_and_without_text(s):
    assert s.apply(SetSchema(EntitySchema("Thing", "Object", {})), T0)[0].error is None
    things = [create(s, "Thing", "" if i % 2 else f"t{i}") for i in range(10)]
    assert [read(s, t, "Name").v for t in things] == ["" if i % 2 else f"t{i}" for i in range(10)]
    assert s.entities.tables["Thing"].cols["Name"].used == sum(len(f"t{i}") for i in range(0, 10, 2))


def test_text_that_is_not_unicode_is_refused_as_a_value(s):
    u = create(s, "User", "u")
    before = s.snapshot()
    resp, _ = s.apply(UpdateEntity([Write(u, "Email", String("ok")), Write(u, "Email", String("\ud800"))]), T1)
    assert resp.error.startswith("request[1]: Email: a String must be valid Unicode text")
    resp, _ = s.apply(CreateEntity("User", None, "bad \udfff"), T1)
    assert resp.error.startswith("name must be valid Unicode text")
    assert s.snapshot() == before and s.check_invariants() == []


def test_ids_beyond_64_bits_from_embedded_code_are_refused_as_values(s):
    from qcore.store import EntityId, EntityReference

    u = create(s, "User", "u")
    before = s.snapshot()
    resp, _ = s.apply(UpdateEntity([Write(u, "Manager", EntityReference(EntityId("User", 2**64)))]), T1)
    assert "unsigned 64-bit" in resp.error
    resp, _ = s.apply(UpdateEntity([Write(u, "Age", Int(1), writer_id=EntityId("User", -1))]), T1)
    assert "writer_id must be an EntityId with an unsigned 64-bit id" in resp.error
    assert s.snapshot() == before
