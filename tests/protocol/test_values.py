"""The JSON shapes of SPEC 2.3 and the codec's error messages."""

from __future__ import annotations

import orjson
import pytest

from qcore.protocol import values as V
from qcore.protocol.values import CodecError
from qcore.store import (
    AdjustBehavior,
    Blob,
    Bool,
    Choice,
    CreateEntity,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldSchema,
    Float,
    Int,
    LoadConfig,
    NotifyConfig,
    PushCondition,
    Read,
    String,
    Timestamp,
    TimestampValue,
    UpdateEntity,
    UpdateEntityResponse,
    Write,
)

SEED_PERFORM = b"""{
  "UpdateEntity": {
    "request": [
      {"Read": {"entity_id": {"typ": "User", "id": 123}, "field_type": "Name",
                "value": null, "write_time": null, "writer_id": null}}
    ]
  }
}"""


def test_seed_example_decodes_and_re_encodes_identically():
    obj = orjson.loads(SEED_PERFORM)
    cmd = V.decode_command_request(obj)
    assert cmd == UpdateEntity([Read(EntityId("User", 123), "Name")])
    assert V.encode_command_request(cmd) == obj


@pytest.mark.parametrize(
    "value,json",
    [
        (Blob(b"\x00\xff"), {"Blob": [0, 255]}),
        (Bool(True), {"Bool": True}),
        (Choice(2), {"Choice": 2}),
        (EntityList((EntityId("User", 1),)), {"EntityList": [{"typ": "User", "id": 1}]}),
        (EntityReference(None), {"EntityReference": None}),
        (EntityReference(EntityId("User", 5)), {"EntityReference": {"typ": "User", "id": 5}}),
        (Float(1.5), {"Float": 1.5}),
        (Int(42), {"Int": 42}),
        (String("x"), {"String": "x"}),
        (TimestampValue(Timestamp(3, 4)), {"Timestamp": {"secs_since_epoch": 3, "nanos_since_epoch": 4}}),
    ],
)
def test_value_shapes(value, json):
    assert V.encode_value(value) == json
    assert V.decode_value(json) == value


def test_write_shape_and_defaults():
    w = Write(EntityId("User", 1), "Age", Int(3), PushCondition.Changes, AdjustBehavior.Add,
              Timestamp(9, 0), EntityId("User", 2))
    assert V.encode_request(w) == {
        "Write": {
            "entity_id": {"typ": "User", "id": 1},
            "field_type": "Age",
            "value": {"Int": 3},
            "push_condition": "Changes",
            "adjust_behavior": "Add",
            "write_time": {"secs_since_epoch": 9, "nanos_since_epoch": 0},
            "writer_id": {"typ": "User", "id": 2},
        }
    }
    minimal = V.decode_request({"Write": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A", "value": {"Int": 1}}})
    assert minimal == Write(EntityId("U", 1), "A", Int(1))


def test_float_accepts_ints_and_int_refuses_floats_and_bools():
    assert V.decode_value({"Float": 3}) == Float(3.0)
    with pytest.raises(CodecError, match="expected a signed 64-bit integer, got number 3.0"):
        V.decode_value({"Int": 3.0})
    with pytest.raises(CodecError, match="got boolean true"):
        V.decode_value({"Int": True})
    with pytest.raises(CodecError, match="expected a number, got boolean"):
        V.decode_value({"Float": False})


@pytest.mark.parametrize(
    "obj,message",
    [
        ({"Int": 2**63}, "Int: expected a signed 64-bit integer, got integer 9223372036854775808"),
        ({"Int": -(2**63) - 1}, "Int: expected a signed 64-bit integer"),
        ({"Choice": "1"}, "Choice: expected a signed 64-bit integer, got string '1'"),
        ({"Blob": [1, 256]}, "Blob[1]: expected a byte (integer 0-255), got integer 256"),
        ({"Blob": [True]}, "Blob[0]: expected a byte (integer 0-255), got boolean true"),
        ({"Blob": "AAE="}, "Blob: expected an array of bytes (integers 0-255), got string 'AAE='"),
        ({"EntityList": [{"typ": "U", "id": 1}, {"typ": "U"}]}, "EntityList[1].id: expected an integer, but the field is missing"),
        ({"EntityReference": {"typ": 3, "id": 1}}, "EntityReference.typ: expected a string, got integer 3"),
        ({"String": None}, "String: expected a string, got null"),
        ({"Timestamp": {"secs_since_epoch": 1, "nanos_since_epoch": 10**9}}, "Timestamp.nanos_since_epoch: expected an integer in [0, 999999999]"),
        ({"Timestamp": {"secs_since_epoch": -1, "nanos_since_epoch": 0}}, "Timestamp.secs_since_epoch: expected an unsigned 64-bit integer"),
        ({"Nope": 1}, "unknown Value variant 'Nope'"),
        ({"Int": 1, "Float": 2}, "expected a Value: an object with exactly one key"),
        (5, "expected a Value: an object with exactly one key of Blob, Bool, Choice, EntityList, EntityReference, Float, Int, String, Timestamp, got integer 5"),
    ],
)
def test_value_errors(obj, message):
    with pytest.raises(CodecError) as ei:
        V.decode_value(obj)
    assert message in str(ei.value)


def test_entity_id_u64_range():
    assert V.decode_entity_id({"typ": "U", "id": 2**64 - 1}).id == 2**64 - 1
    with pytest.raises(CodecError, match=r"^id: expected an unsigned 64-bit integer, got integer 18446744073709551616$"):
        V.decode_entity_id({"typ": "U", "id": 2**64})
    with pytest.raises(CodecError, match="id: expected an unsigned 64-bit integer, got boolean true"):
        V.decode_entity_id({"typ": "U", "id": True})


@pytest.mark.parametrize(
    "obj,message",
    [
        (
            {"UpdateEntity": {"request": [{"Read": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A"}},
                                          {"Read": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A"}},
                                          {"Write": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A",
                                                     "value": "hello"}}]}},
            "request.UpdateEntity.request[2].Write.value: expected a Value: an object with exactly one key of",
        ),
        ({"UpdateEntity": {"request": {}}}, "request.UpdateEntity.request: expected an array of Requests, got an empty object"),
        ({"UpdateEntity": {}}, "request.UpdateEntity.request: expected an array, but the field is missing"),
        ({"UpdateEntity": {"request": [{"Delete": {}}]}}, "request.UpdateEntity.request[0]: unknown Request variant 'Delete'"),
        ({"UpdateEntity": {"request": [{"Write": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A",
                                                  "value": None, "push_condition": "Sometimes"}}]}},
         "request.UpdateEntity.request[0].Write.push_condition: expected \"Always\" or \"Changes\", got string 'Sometimes'"),
        ({"UpdateEntity": {"request": [{"Write": {"entity_id": {"typ": "U", "id": 1}, "field_type": "A",
                                                  "value": None, "adjust_behavior": 1}}]}},
         "request.UpdateEntity.request[0].Write.adjust_behavior: expected \"Set\", \"Add\" or \"Subtract\", got integer 1"),
        ({"UpdateEntity": {"request": [{"Read": {"entity_id": {"typ": "U", "id": 1}, "field_type": 7}}]}},
         "request.UpdateEntity.request[0].Read.field_type: expected a string, got integer 7"),
        ({"CreateEntity": {"entity_type": "U", "parent_id": 5, "name": "x"}}, "request.CreateEntity.parent_id: expected an EntityId"),
        ({"CreateEntity": []}, "request.CreateEntity: expected a CreateEntity object, got an array of 0 items"),
        ({"FindEntities": {"entity_type": "U", "page_opts": {"limit": -1}}}, "request.FindEntities.page_opts.limit: expected an unsigned 64-bit integer, got integer -1"),
        ({"FindEntities": {"entity_type": "U", "page_opts": {"limit": 1, "cursor": 5}}}, "request.FindEntities.page_opts.cursor: expected a string, got integer 5"),
        ({"SetSchema": {"entity_schema": {"entity_type": "U", "fields": {"E": {"default_value": {"String": ""}, "rank": "3"}}}}},
         "request.SetSchema.entity_schema.fields.E.rank: expected an integer (signed 64-bit), got string '3'"),
        ({"SetSchema": {"entity_schema": {"entity_type": "U", "fields": {"E": {"default_value": {"String": ""}, "choices": ["a", 1]}}}}},
         "request.SetSchema.entity_schema.fields.E.choices[1]: expected a choice name (a string), got number 1"),
        ({"LoadConfig": {}}, "request: unknown CommandRequest variant 'LoadConfig'"),
        ({"Perform": {}}, "request: unknown CommandRequest variant 'Perform'; expected one of UpdateEntity, CreateEntity"),
        ("UpdateEntity", "request: expected a CommandRequest: an object with exactly one key of UpdateEntity"),
    ],
)
def test_command_request_errors_name_the_path(obj, message):
    with pytest.raises(CodecError) as ei:
        V.decode_command_request(obj)
    assert str(ei.value).startswith(message), str(ei.value)


def test_error_path_prefix_is_configurable():
    with pytest.raises(CodecError) as ei:
        V.decode_command_request({"DeleteEntity": {}}, path="Perform.request")
    assert str(ei.value) == "Perform.request.DeleteEntity.entity_id: expected an EntityId, but the field is missing"
    assert ei.value.path == "Perform.request.DeleteEntity.entity_id"
    assert ei.value.reason == "expected an EntityId, but the field is missing"


def test_load_config_only_when_allowed():
    cfg = LoadConfig([EntitySchema("A", None, {"x": FieldSchema("x", Int(0))})], [])
    obj = V.encode_command_request(cfg)
    assert V.decode_command_request(obj, allow_internal=True) == cfg


def test_field_schema_field_type_defaults_to_key():
    s = V.decode_entity_schema({"entity_type": "U", "fields": {"E": {"default_value": {"Bool": False}}}})
    assert s == EntitySchema("U", None, {"E": FieldSchema("E", Bool(False), 0)})


def test_response_shapes():
    assert V.encode_command_response(UpdateEntityResponse([], "request[0]: boom")) == {
        "UpdateEntity": {"response": [], "error": "request[0]: boom", "kind": "rejected"}
    }
    from qcore.store import CreateEntityResponse, EntityExistsResponse, FindEntitiesResponse, PageResult

    assert V.encode_command_response(CreateEntityResponse(EntityId("U", 1))) == {
        "CreateEntity": {"response": {"typ": "U", "id": 1}, "error": None}
    }
    assert V.encode_command_response(EntityExistsResponse(True)) == {"EntityExists": {"response": True}}
    assert V.encode_command_response(FindEntitiesResponse(PageResult([EntityId("U", 1)], 3, "1"))) == {
        "FindEntities": {"response": {"items": [{"typ": "U", "id": 1}], "total": 3, "next_cursor": "1"}, "error": None}
    }


def test_notify_config_shapes():
    obj = {"EntityType": {"entity_type": "User", "field_type": "Name", "trigger_on_change": True, "context": ["Parent->Name"]}}
    c = V.decode_notify_config(obj)
    assert isinstance(c, NotifyConfig.EntityType) and c.context == ("Parent->Name",)
    assert V.encode_notify_config(c) == obj
    with pytest.raises(CodecError, match=r"^EntityId.entity_id: expected an EntityId, but the field is missing$"):
        V.decode_notify_config({"EntityId": {"field_type": "Name"}})


def test_codec_error_is_the_only_exception_for_garbage():
    for garbage in [None, 1, "x", [], {}, {"a": 1, "b": 2}, {"UpdateEntity": None}, {"UpdateEntity": {"request": [None]}}]:
        with pytest.raises(CodecError):
            V.decode_command_request(garbage)
    assert issubclass(CodecError, ValueError)


def test_create_entity_round_trip_through_bytes():
    cmd = CreateEntity("User", EntityId("Folder", 2), "alice")
    assert V.decode_command_request(orjson.loads(orjson.dumps(V.encode_command_request(cmd)))) == cmd


def test_deep_tree_is_a_codec_error_not_a_crash():
    node: dict = {"entity_type": "Object", "name": "x"}
    for _ in range(2000):
        node = {"entity_type": "Object", "children": [node]}
    with pytest.raises(CodecError) as ei:
        V.decode_load_config({"schemas": [], "tree": [node]})
    assert ei.value.path.startswith("tree") and "too deeply" in ei.value.reason
