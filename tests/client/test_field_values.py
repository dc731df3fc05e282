"""Python values fitted to a field's type by its schema, and back (qcore.client.field_values)."""

from __future__ import annotations

import datetime

import pytest

from qcore.client import InvalidValue
from qcore.client.field_values import FieldInfo, conform, fields_of_schema, python_value
from qcore.store.types import Choice, EntityId, Float, Int, String, Timestamp, TimestampValue

UTC = datetime.timezone.utc
MODE = FieldInfo("Choice", ("Auto", "Manual", "Off"))


@pytest.mark.parametrize("info,value,expected", [
    (FieldInfo("Float"), 25, {"Float": 25.0}),
    (FieldInfo("Float"), {"Int": 25}, {"Float": 25.0}),
    (FieldInfo("Float"), Int(3), {"Float": 3.0}),
    (FieldInfo("Int"), 7.0, {"Int": 7}),
    (FieldInfo("String"), "x", {"String": "x"}),
    (FieldInfo("Bool"), False, {"Bool": False}),
    (MODE, "Manual", {"Choice": 1}),
    (MODE, {"Choice": "Off"}, {"Choice": 2}),
    (MODE, 2, {"Choice": 2}),
    (MODE, Choice(0), {"Choice": 0}),
    (FieldInfo("EntityReference"), EntityId("Line", 3), {"EntityReference": {"typ": "Line", "id": 3}}),
    (FieldInfo("EntityReference"), "Line$3", {"EntityReference": {"typ": "Line", "id": 3}}),
    (FieldInfo("EntityReference"), None, {"EntityReference": None}),
    (FieldInfo("EntityList"), [EntityId("Line", 3), "Line$4"],
     {"EntityList": [{"typ": "Line", "id": 3}, {"typ": "Line", "id": 4}]}),
    (FieldInfo("EntityList"), (), {"EntityList": []}),
    (FieldInfo("Blob"), b"\x00\xff", {"Blob": [0, 255]}),
    (FieldInfo("Timestamp"), datetime.datetime(1970, 1, 1, 0, 0, 2, 5, tzinfo=UTC),
     {"Timestamp": {"secs_since_epoch": 2, "nanos_since_epoch": 5000}}),
    (FieldInfo("Timestamp"), TimestampValue(Timestamp(9, 1)), {"Timestamp": {"secs_since_epoch": 9, "nanos_since_epoch": 1}}),
])
def test_python_values_take_the_fields_type(info: FieldInfo, value: object, expected: dict) -> None:
    assert conform(value, info, "M$1.F") == expected


@pytest.mark.parametrize("info,value,message", [
    (FieldInfo("Float"), "hot", "M$1.F is a Float field: cannot use 'hot' (str); expected a number, e.g. 21.5"),
    (FieldInfo("Int"), 1.5, "M$1.F is an Int field: cannot use 1.5 (float); expected an integer, e.g. 42"),
    (FieldInfo("Int"), True, "M$1.F is an Int field: cannot use True (bool)"),
    (FieldInfo("String"), 5, "M$1.F is a String field: cannot use 5 (int); expected a string"),
    (MODE, "Manul", "M$1.F is a Choice field: 'Manul' is not one of its choices; expected one of 'Auto', 'Manual', 'Off'"),
    (MODE, 3, "M$1.F is a Choice field: 3 is not one of its choices"),
    (FieldInfo("EntityReference"), 5, "M$1.F is an EntityReference field: cannot use 5 (int); expected an entity id"),
    (FieldInfo("EntityList"), "Line$3", "M$1.F is an EntityList field: cannot use 'Line$3' (str)"),
    (FieldInfo("Timestamp"), datetime.datetime(2026, 1, 1), "has no timezone; give it one"),
    (FieldInfo("Float"), float("nan"), "M$1.F is a Float field: cannot use nan"),
])
def test_a_value_that_does_not_fit_names_the_field_and_its_type(info: FieldInfo, value: object, message: str) -> None:
    with pytest.raises(InvalidValue) as e:
        conform(value, info, "M$1.F")
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_read_values_come_back_as_python() -> None:
    assert python_value(Choice(1), MODE) == "Manual"
    assert python_value(Choice(7), MODE) == 7  # out of range: the index, not a guess
    assert python_value(Float(2.5)) == 2.5
    assert python_value(String("x")) == "x"
    assert python_value({"Blob": [1, 2]}) == b"\x01\x02"
    assert python_value({"EntityList": [{"typ": "L", "id": 1}]}) == [EntityId("L", 1)]
    assert python_value({"EntityReference": None}) is None
    assert python_value(TimestampValue(Timestamp(2, 5_999))) == datetime.datetime(1970, 1, 1, 0, 0, 2, 5, tzinfo=UTC)


def test_field_infos_come_from_a_complete_schema() -> None:
    schema = {"entity_type": "M", "inherit": None, "fields": {
        "Mode": {"field_type": "Mode", "default_value": {"Choice": 0}, "rank": 1, "choices": ["Auto", "Manual"]},
        "T": {"field_type": "T", "default_value": {"Float": 0.0}, "rank": 2, "choices": None}}}
    assert fields_of_schema(schema) == {"Mode": FieldInfo("Choice", ("Auto", "Manual")), "T": FieldInfo("Float")}
