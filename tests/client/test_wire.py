"""Friendly arguments -> exact wire shapes (SPEC 2.2/2.3), and the retry classification."""

from __future__ import annotations

import datetime

import pytest

from qcore.client import wire
from qcore.client.client import is_idempotent, member_addresses, parse_addresses
from qcore.protocol import errors as wire_errors
from qcore.protocol import messages as m
from qcore.store.types import EntityId, Int, String


def test_entity_id_forms() -> None:
    j = {"typ": "User", "id": 123}
    assert wire.entity_id("User$123") == j
    assert wire.entity_id(("User", 123)) == j
    assert wire.entity_id(j) == j
    assert wire.entity_id(EntityId("User", 123)) == j
    assert wire.entity_id("A$B$7") == {"typ": "A$B", "id": 7}
    assert wire.entity_id_text(j) == "User$123"
    for bad in ("User", "User$", "$5", "User$-1", "User$1x"):
        with pytest.raises(ValueError, match="Type\\$number"):
            wire.entity_id(bad)
    with pytest.raises(ValueError):
        wire.entity_id({"typ": "User", "id": "1"})
    with pytest.raises(TypeError):
        wire.entity_id(5)


def test_values_from_python_tagged_and_store_types() -> None:
    assert wire.value(True) == {"Bool": True}
    assert wire.value(5) == {"Int": 5}
    assert wire.value(1.5) == {"Float": 1.5}
    assert wire.value("x") == {"String": "x"}
    assert wire.value(b"\x00\xff") == {"Blob": [0, 255]}
    assert wire.value(Int(7)) == {"Int": 7}
    assert wire.value(String("s")) == {"String": "s"}
    assert wire.value({"Choice": 2}) == {"Choice": 2}
    assert wire.value({"EntityReference": "User$1"}) == {"EntityReference": {"typ": "User", "id": 1}}
    assert wire.value({"EntityReference": None}) == {"EntityReference": None}
    assert wire.value({"EntityList": ["User$1", ("User", 2)]}) == {
        "EntityList": [{"typ": "User", "id": 1}, {"typ": "User", "id": 2}]
    }
    utc = datetime.timezone.utc
    assert wire.value(datetime.datetime(1970, 1, 1, 0, 0, 3, 5, tzinfo=utc)) == {
        "Timestamp": {"secs_since_epoch": 3, "nanos_since_epoch": 5000}
    }
    with pytest.raises(ValueError, match="bad value tag"):
        wire.value({"Integer": 5})
    with pytest.raises(TypeError):
        wire.value(None)


def test_timestamps() -> None:
    assert wire.timestamp((3, 4)) == {"secs_since_epoch": 3, "nanos_since_epoch": 4}
    assert wire.timestamp(2.5) == {"secs_since_epoch": 2, "nanos_since_epoch": 500_000_000}
    with pytest.raises(ValueError, match="naive"):
        wire.timestamp(datetime.datetime(2020, 1, 1))


def test_request_shapes_are_the_seeds() -> None:
    assert wire.update_entity([wire.read_request("User$123", "Name")]) == {
        "UpdateEntity": {
            "request": [
                {
                    "Read": {
                        "entity_id": {"typ": "User", "id": 123},
                        "field_type": "Name",
                        "value": None,
                        "write_time": None,
                        "writer_id": None,
                    }
                }
            ]
        }
    }
    assert wire.write_request("User$1", "Age", 3, push_condition="Changes", adjust="Add") == {
        "Write": {
            "entity_id": {"typ": "User", "id": 1},
            "field_type": "Age",
            "value": {"Int": 3},
            "push_condition": "Changes",
            "adjust_behavior": "Add",
            "write_time": None,
            "writer_id": None,
        }
    }
    with pytest.raises(ValueError, match="push_condition"):
        wire.write_request("User$1", "Age", 3, push_condition="Sometimes")
    assert wire.create_entity("User", "bob", "Folder$2") == {
        "CreateEntity": {"entity_type": "User", "parent_id": {"typ": "Folder", "id": 2}, "name": "bob"}
    }
    assert wire.find_entities("User") == {"FindEntities": {"entity_type": "User", "page_opts": None}}
    assert wire.find_entities("User", 10, "c") == {
        "FindEntities": {"entity_type": "User", "page_opts": {"limit": 10, "cursor": "c"}}
    }
    assert wire.field_exists("User", "Name") == {"FieldExists": {"entity_type": "User", "field_type": "Name"}}


def test_idempotency() -> None:
    read = wire.update_entity([wire.read_request("User$1", "Name")])
    write = wire.update_entity([wire.write_request("User$1", "Name", "x")])
    mixed = wire.update_entity([wire.read_request("User$1", "Name"), wire.write_request("User$1", "Name", "x")])
    assert wire.is_read_only(read) and not wire.is_read_only(write) and not wire.is_read_only(mixed)
    assert wire.is_read_only(wire.get_schema("User")) and wire.is_read_only(wire.find_entities("User"))
    assert wire.is_read_only(wire.set_schema({"entity_type": "X", "inherit": None, "fields": {}}))
    assert not wire.is_read_only(wire.create_entity("User", "x"))
    assert not wire.is_read_only(wire.delete_entity("User$1"))
    assert is_idempotent(m.Perform("1", read)) and not is_idempotent(m.Perform("1", write))
    assert is_idempotent(m.GetMetrics("1")) and is_idempotent(m.ChangeMembership("1", [1]))
    assert not is_idempotent(m.Init("1", []))


def test_unwrap() -> None:
    assert wire.unwrap({"DeleteEntity": {"error": None}}, "DeleteEntity") == {"error": None}
    from qcore.client import CommandError

    with pytest.raises(CommandError, match="boom") as info:
        wire.unwrap({"DeleteEntity": {"error": "boom"}}, "DeleteEntity")
    assert info.value.response == {"DeleteEntity": {"error": "boom"}}
    with pytest.raises(CommandError, match="unexpected response"):
        wire.unwrap({"SetSchema": {"error": None}}, "DeleteEntity")


def test_error_texts_round_trip_through_classify() -> None:
    r = wire_errors.classify(wire_errors.not_leader(2, "127.0.0.1:8081"))
    assert r == wire_errors.Retryable("not_leader", 2, "127.0.0.1:8081")
    assert wire_errors.classify(wire_errors.not_leader(2, None)) == wire_errors.Retryable("not_leader", 2, None)
    assert wire_errors.classify(wire_errors.not_leader(None, None)).kind == "no_leader"  # type: ignore[union-attr]
    assert wire_errors.classify("not leader; leader is 3 at unknown address") == wire_errors.Retryable("not_leader", 3)
    assert wire_errors.classify("node is not initialised: send Init").kind == "not_initialised"  # type: ignore[union-attr]
    assert wire_errors.classify("node is shutting down").kind == "shutting_down"  # type: ignore[union-attr]
    assert wire_errors.classify("too many requests in flight").kind == "overloaded"  # type: ignore[union-attr]
    assert wire_errors.classify("request 2: type mismatch") is None
    # the node's own wordings
    for text in ("leadership changed before the write committed; it was not applied",
                 "cannot reach the leader at 127.0.0.1:9: refused",
                 wire_errors.safe_to_retry("anything")):
        assert wire_errors.classify(text) == wire_errors.Retryable("not_applied"), text
    for text in ("write was proposed but not applied within 10s; outcome unknown",
                 "connection to leader at 127.0.0.1:9 lost while the request was in flight",
                 "the leader at 127.0.0.1:9 did not answer within 10s",
                 wire_errors.outcome_unknown("no leader any more")):
        why = wire_errors.classify(text)
        assert why == wire_errors.Retryable("unknown_outcome") and not why.definite, text


def test_addresses() -> None:
    assert parse_addresses("a:1, ws://b:2/,a:1") == ["a:1", "b:2"]
    with pytest.raises(ValueError):
        parse_addresses("nohost")
    with pytest.raises(ValueError):
        parse_addresses("")
    metrics = {"membership_config": {"membership": {"configs": [[1, 2]], "nodes": {"1": {"addr": "h:1"}, "2": "h:2"}}}}
    assert member_addresses(metrics) == {1: "h:1", 2: "h:2"}
