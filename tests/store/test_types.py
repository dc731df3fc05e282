"""EntityId, Timestamp and Value: identity, immutability, validation."""

from __future__ import annotations

import pickle

import pytest

from qcore.store import (
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    String,
    Timestamp,
    TimestampValue,
)


def test_entity_id_text_form():
    e = EntityId("User", 123)
    assert str(e) == "User$123"
    assert EntityId.parse("User$123") == e


@pytest.mark.parametrize("text", ["User", "User$", "$5", "User$-1", "User$1.5", "User$١", "A$B$3", "User$" + "9" * 30, ""])
def test_entity_id_parse_errors(text):
    with pytest.raises(ValueError):
        EntityId.parse(text)


def test_entity_id_identity_and_frozen():
    a, b = EntityId("User", 1), EntityId("User", 1)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != EntityId("Folder", 1) and a != EntityId("User", 2) and a != ("User", 1)
    assert sorted([EntityId("B", 1), EntityId("A", 2), EntityId("A", 1)]) == [
        EntityId("A", 1), EntityId("A", 2), EntityId("B", 1)]
    with pytest.raises(AttributeError):
        a.id = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a


def test_timestamp():
    t = Timestamp.from_ns(1_500_000_000_123)
    assert (t.secs, t.nanos) == (1500, 123) and t.to_ns() == 1_500_000_000_123
    assert Timestamp(1, 2) < Timestamp(1, 3) < Timestamp(2, 0)
    assert Timestamp(1, 2) == Timestamp(1, 2) and hash(Timestamp(1, 2)) == hash(Timestamp(1, 2))
    for bad in [(-1, 0), (0, 10**9), (0, -1), (2**64, 0), (1.5, 0), (True, 0)]:
        with pytest.raises(ValueError):
            Timestamp(*bad)
    with pytest.raises(AttributeError):
        Timestamp(1, 2).secs = 3  # type: ignore[misc]


def test_values_equal_only_within_a_variant():
    assert Int(1) == Int(1) and Int(1) != Float(1.0) and Bool(True) != Int(1) and Choice(1) != Int(1)
    assert String("a") != Blob(b"a")
    assert EntityReference(None) == EntityReference(None)
    assert EntityList((EntityId("U", 1),)) == EntityList([EntityId("U", 1)])
    vals = {Int(1), Float(1.0), Bool(True), Choice(1), String("1"), TimestampValue(Timestamp(1, 0))}
    assert len(vals) == 6
    assert Int(1) < Int(2) and sorted([String("b"), String("a")]) == [String("a"), String("b")]
    with pytest.raises(AttributeError):
        Int(1).v = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(EntityList((EntityId("U", 1),)))) == EntityList((EntityId("U", 1),))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Int(2**63),
        lambda: Int(True),
        lambda: Int(1.0),
        lambda: Choice("1"),
        lambda: Float(float("nan")),
        lambda: Float(float("inf")),
        lambda: Float("1"),
        lambda: Bool(1),
        lambda: String(b"x"),
        lambda: EntityReference("User$1"),
        lambda: EntityList(["User$1"]),
        lambda: TimestampValue(5),
        lambda: Blob([300]),
    ],
)
def test_value_constructors_check_payloads(make):
    with pytest.raises(ValueError):
        make()


def test_value_defaults():
    assert Int().v == 0 and Float().v == 0.0 and String().v == "" and Bool().v is False
    assert EntityList().v == () and EntityReference().v is None and Blob().v == b""
    assert TimestampValue().v == Timestamp(0, 0) and Float(3).v == 3.0 and type(Float(3).v) is float
