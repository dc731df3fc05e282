"""Friendly arguments -> exact wire shapes (SPEC 2.2/2.3), and the retry classification."""

from __future__ import annotations

import datetime

import orjson
import pytest

from qcore.client import command_json
from qcore.client.client import is_idempotent, member_addresses, parse_addresses
from qcore.protocol import errors as wire_errors
from qcore.protocol import messages as m
from qcore.protocol.errors import Kind
from qcore.store.types import EntityId, Int, String


def test_entity_id_forms() -> None:
    j = {"typ": "User", "id": 123}
    assert command_json.entity_id("User$123") == j
    assert command_json.entity_id(("User", 123)) == j
    assert command_json.entity_id(j) == j
    assert command_json.entity_id(EntityId("User", 123)) == j
    assert command_json.entity_id("A$B$7") == {"typ": "A$B", "id": 7}
    assert command_json.entity_id_text(j) == "User$123"
    for bad in ("User", "User$", "$5", "User$-1", "User$1x"):
        with pytest.raises(ValueError, match="Type\\$number"):
            command_json.entity_id(bad)
    with pytest.raises(ValueError):
        command_json.entity_id({"typ": "User", "id": "1"})
    with pytest.raises(TypeError):
        command_json.entity_id(5)


def test_values_from_python_tagged_and_store_types() -> None:
    assert command_json.value(True) == {"Bool": True}
    assert command_json.value(5) == {"Int": 5}
    assert command_json.value(1.5) == {"Float": 1.5}
    assert command_json.value("x") == {"String": "x"}
    assert command_json.value(b"\x00\xff") == {"Blob": [0, 255]}
    assert command_json.value(Int(7)) == {"Int": 7}
    assert command_json.value(String("s")) == {"String": "s"}
    assert command_json.value({"Choice": 2}) == {"Choice": 2}
    assert command_json.value({"EntityReference": "User$1"}) == {"EntityReference": {"typ": "User", "id": 1}}
    assert command_json.value({"EntityReference": None}) == {"EntityReference": None}
    assert command_json.value({"EntityList": ["User$1", ("User", 2)]}) == {
        "EntityList": [{"typ": "User", "id": 1}, {"typ": "User", "id": 2}]
    }
    utc = datetime.timezone.utc
    assert command_json.value(datetime.datetime(1970, 1, 1, 0, 0, 3, 5, tzinfo=utc)) == {
        "Timestamp": {"secs_since_epoch": 3, "nanos_since_epoch": 5000}
    }
    with pytest.raises(ValueError, match="bad value tag"):
        command_json.value({"Integer": 5})
    with pytest.raises(TypeError):
        command_json.value(None)


def test_timestamps() -> None:
    assert command_json.timestamp((3, 4)) == {"secs_since_epoch": 3, "nanos_since_epoch": 4}
    assert command_json.timestamp(2.5) == {"secs_since_epoch": 2, "nanos_since_epoch": 500_000_000}
    with pytest.raises(ValueError, match="naive"):
        command_json.timestamp(datetime.datetime(2020, 1, 1))


def test_request_shapes_are_the_seeds() -> None:
    assert command_json.update_entity([command_json.read_request("User$123", "Name")]) == {
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
    assert command_json.write_request("User$1", "Age", 3, push_condition="Changes", adjust="Add") == {
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
        command_json.write_request("User$1", "Age", 3, push_condition="Sometimes")
    assert command_json.create_entity("User", "bob", "Folder$2") == {
        "CreateEntity": {"entity_type": "User", "parent_id": {"typ": "Folder", "id": 2}, "name": "bob"}
    }
    assert command_json.find_entities("User") == {"FindEntities": {"entity_type": "User", "page_opts": None}}
    assert command_json.find_entities("User", 10, "c") == {
        "FindEntities": {"entity_type": "User", "page_opts": {"limit": 10, "cursor": "c"}}
    }
    assert command_json.field_exists("User", "Name") == {"FieldExists": {"entity_type": "User", "field_type": "Name"}}


def test_idempotency() -> None:
    read = command_json.update_entity([command_json.read_request("User$1", "Name")])
    write = command_json.update_entity([command_json.write_request("User$1", "Name", "x")])
    mixed = command_json.update_entity([command_json.read_request("User$1", "Name"), command_json.write_request("User$1", "Name", "x")])
    assert command_json.is_read_only(read) and not command_json.is_read_only(write) and not command_json.is_read_only(mixed)
    assert command_json.is_read_only(command_json.get_schema("User")) and command_json.is_read_only(command_json.find_entities("User"))
    assert command_json.is_read_only(command_json.set_schema({"entity_type": "X", "inherit": None, "fields": {}}))
    assert not command_json.is_read_only(command_json.create_entity("User", "x"))
    assert not command_json.is_read_only(command_json.delete_entity("User$1"))
    assert is_idempotent(m.Perform("1", read)) and not is_idempotent(m.Perform("1", write))
    assert is_idempotent(m.GetMetrics("1")) and is_idempotent(m.ChangeMembership("1", [1]))
    assert not is_idempotent(m.Init("1", []))


def test_unwrap() -> None:
    assert command_json.unwrap({"DeleteEntity": {"error": None}}, "DeleteEntity") == {"error": None}
    from qcore.client import CommandError

    with pytest.raises(CommandError, match="boom") as info:
        command_json.unwrap({"DeleteEntity": {"error": "boom"}}, "DeleteEntity")
    assert info.value.response == {"DeleteEntity": {"error": "boom"}}
    with pytest.raises(CommandError, match="unexpected response"):
        command_json.unwrap({"SetSchema": {"error": None}}, "DeleteEntity")


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
    assert wire_errors.refusal_of(m.GetMetricsResponse(1, {"id": 1, "state": "Leader"})) is None  # not a union


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
    assert parse_addresses("wss://[::1]:8080/") == ["[::1]:8080"]
    # An http:// address was looked up as host "http" ("Name or service not known"), a
    # port past 65535 went to the socket ("Port out of range"): both now say what is wrong.
    for bad, why in (("http://127.0.0.1:8080", "expected host:port (a URL may start ws:// or wss://)"),
                     ("127.0.0.1:8080/ws", "expected host:port (a URL may start ws:// or wss://)"),
                     ("127.0.0.1:99999", "the port must be 1-65535"),
                     ("127.0.0.1:0", "the port must be 1-65535")):
        with pytest.raises(ValueError) as refused:
            parse_addresses(f"h:1,{bad}")
        assert str(refused.value) == f"bad address {bad!r}: {why}"
    metrics = {"membership_config": {"membership": {"configs": [[1, 2]], "nodes": {"1": {"addr": "h:1"}, "2": "h:2"}}}}
    assert member_addresses(metrics) == {1: "h:1", 2: "h:2"}


def test_a_float_timestamp_that_rounds_up_carries_into_the_seconds() -> None:
    assert command_json.timestamp(1.9999999999) == {"secs_since_epoch": 2, "nanos_since_epoch": 0}
    assert command_json.timestamp(1.25) == {"secs_since_epoch": 1, "nanos_since_epoch": 250_000_000}
