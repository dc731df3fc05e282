"""Friendly arguments -> exact wire shapes (SPEC 2.2/2.3), and the retry classification."""

from __future__ import annotations

import datetime

import orjson
import pytest

from qcore.client import wire
from qcore.client.client import is_idempotent, member_addresses, parse_addresses
from qcore.protocol import errors as wire_errors
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind
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


def test_errors_carry_their_kind_over_the_wire() -> None:
    frame = m.encode_message(wire_errors.error("r1", Kind.NOT_LEADER, "not leader; leader is 2 at h:1",
                                               leader_id=2, leader_addr="h:1"))
    assert orjson.loads(frame) == {"Error": {"id": "r1", "error": "not leader; leader is 2 at h:1",
                                             "kind": "not_leader", "leader_id": 2, "leader_addr": "h:1"}}
    why = wire_errors.refusal_of(m.decode_message(frame))
    assert (why.text, why.kind, why.leader_id, why.leader_addr, why.retry) == (  # type: ignore[union-attr]
        "not leader; leader is 2 at h:1", "not_leader", 2, "h:1", "definite")
    # A union's {"Err": ...} keeps the seed's shape; the kind sits beside it.
    frame = m.encode_message(wire_errors.refusal(m.InitResponse, 7, Kind.INVALID, "already initialised"))
    assert orjson.loads(frame) == {"InitResponse": {"id": 7, "response": {"Err": "already initialised"},
                                                    "kind": "invalid"}}
    assert wire_errors.refusal_of(m.decode_message(frame)).retry == "final"  # type: ignore[union-attr]
    assert orjson.loads(m.encode_message(m.InitResponse(7, "Ok"))) == {"InitResponse": {"id": 7, "response": "Ok"}}
    assert wire_errors.refusal_of(m.PerformResponse(1, {"UpdateEntity": {"response": [], "error": "x"}})) is None


@pytest.mark.parametrize("kind,retry", [
    *[(k, "definite") for k in ("not_leader", "no_leader", "not_initialised", "removed", "shutting_down",
                               "overloaded", "unavailable")],
    ("outcome_unknown", "unknown"),
    *[(k, "final") for k in ("invalid", "rejected", "not_found", "compacted", "internal", "fell_behind",
                             "permission_denied", "something_new", None)],
])
def test_what_each_kind_allows(kind: str | None, retry: str) -> None:
    assert wire_errors.retry_class(kind) == retry


def test_addresses() -> None:
    assert parse_addresses("a:1, ws://b:2/,a:1") == ["a:1", "b:2"]
    with pytest.raises(ValueError):
        parse_addresses("nohost")
    with pytest.raises(ValueError):
        parse_addresses("")
    metrics = {"membership_config": {"membership": {"configs": [[1, 2]], "nodes": {"1": {"addr": "h:1"}, "2": "h:2"}}}}
    assert member_addresses(metrics) == {1: "h:1", 2: "h:2"}
