"""Python values to and from a field's type, read from the field's schema.

A field's type is the variant of its schema's ``default_value``, and the
store takes nothing else (SPEC 3: no coercion on the wire). People write
``25`` for a Float, ``"Manual"`` for a Choice, an ``EntityId`` for a
reference, so the client converts by the schema before it sends:

=================  ==========================================================
field type         accepted (besides its own tagged JSON or store value)
=================  ==========================================================
Int                int (bool is not), a float with no fraction
Float              int, float (finite)
String             str
Bool               bool
Choice             a choice name, or its index; ``{"Choice": "Manual"}``
EntityReference    EntityId, ``"User$3"``, ``("User", 3)``, id JSON, None
EntityList         a list/tuple of any of those ids
Blob               bytes, bytearray, memoryview, a list of 0-255
Timestamp          an aware datetime, a store Timestamp, seconds since the epoch
=================  ==========================================================

Anything else is an :exc:`~qcore.client.errors.InvalidValue` naming the
field, its type and what came. The other way, :func:`python_value` gives the
Python value of a read: a Choice as its name, a Timestamp as an aware UTC
datetime (microseconds: a datetime has no nanoseconds), a Blob as bytes,
references as EntityId.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qcore.client import command_json, convert
from qcore.client.errors import InvalidValue

__all__ = ["FieldInfo", "fields_of_schema", "conform", "python_value", "describe_python"]

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_HOW = {
    "Int": "an integer, e.g. 42",
    "Float": "a number, e.g. 21.5",
    "String": "a string",
    "Bool": "True or False",
    "EntityReference": "an entity id such as 'Line$3' or EntityId('Line', 3), or None",
    "EntityList": "a list of entity ids",
    "Blob": "bytes",
    "Timestamp": "an aware datetime (with a timezone)",
}


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the client needs of a field's schema: its value type and, for a Choice, the names."""

    tag: str
    choices: tuple[str, ...] | None = None

    def expects(self) -> str:
        """What a value for this field must be, in words."""
        if self.tag == "Choice":
            names = ", ".join(repr(c) for c in self.choices or ())
            return f"one of {names} (or its index)" if names else "a choice index"
        return _HOW.get(self.tag, self.tag)


def fields_of_schema(schema: Mapping[str, Any] | None) -> dict[str, FieldInfo]:
    """Field name -> FieldInfo, from an EntitySchema's JSON (a complete schema, inherited fields too)."""
    out: dict[str, FieldInfo] = {}
    for name, fs in ((schema or {}).get("fields") or {}).items():
        default = fs.get("default_value") if isinstance(fs, Mapping) else None
        if isinstance(default, Mapping) and len(default) == 1:
            choices = fs.get("choices")
            out[name] = FieldInfo(next(iter(default)), tuple(choices) if isinstance(choices, list) else None)
    return out


def describe_python(x: Any) -> str:
    text = repr(x)
    return f"{text[:57]}..." if len(text) > 60 else text


def conform(value: Any, info: FieldInfo, where: str) -> dict[str, Any]:
    """``value`` (tagged JSON, a store value or plain Python) as tagged JSON of the field's type.

    ``where`` names the field for errors (``Machine$10.Mode``).
    """
    tagged = _tagged(value)
    if tagged is not None:
        ((tag, payload),) = tagged.items()
        if tag != info.tag or (tag == "Choice" and isinstance(payload, str)):
            return {info.tag: _convert(payload, info, where)}
        return tagged
    return {info.tag: _convert(value, info, where)}


def _tagged(x: Any) -> dict[str, Any] | None:
    """Tagged JSON of ``x`` if it is tagged JSON or a store value already, else None."""
    if isinstance(x, Mapping):
        if len(x) == 1 and next(iter(x)) in command_json.VALUE_TAGS:
            ((tag, payload),) = x.items()
            return {tag: payload}
        return None
    encoded = convert.encode_value(x)
    return encoded if isinstance(encoded, dict) else None


def _convert(x: Any, info: FieldInfo, where: str) -> Any:
    tag = info.tag
    try:
        if tag == "Int":
            if type(x) is float and x.is_integer():
                x = int(x)
            if type(x) is int and _I64_MIN <= x <= _I64_MAX:
                return x
        elif tag == "Float":
            if type(x) in (int, float) and math.isfinite(x):
                return float(x)
        elif tag == "String":
            if isinstance(x, str):
                return str(x)
        elif tag == "Bool":
            if type(x) is bool:
                return x
        elif tag == "Choice":
            return _choice(x, info, where)
        elif tag == "EntityReference":
            return None if x is None else command_json.entity_id(x)
        elif tag == "EntityList":
            if not isinstance(x, (str, bytes, Mapping)) and hasattr(x, "__iter__"):
                return [command_json.entity_id(e) for e in x]
        elif tag == "Blob":
            if isinstance(x, (bytes, bytearray, memoryview)):
                return list(bytes(x))
            if isinstance(x, (list, tuple)) and all(type(b) is int and 0 <= b <= 255 for b in x):
                return list(x)
        elif tag == "Timestamp":
            if isinstance(x, datetime.datetime) and x.tzinfo is None:
                raise InvalidValue(f"{where} is a Timestamp field: {describe_python(x)} has no timezone; "
                                   "give it one, e.g. datetime.now(timezone.utc)")
            if not isinstance(x, bool):
                return command_json.timestamp(x)
    except InvalidValue:
        raise
    except (ValueError, TypeError, KeyError):
        pass  # reported below, in the field's terms
    raise InvalidValue(f"{where} is {_article(tag)} {tag} field: cannot use {describe_python(x)} "
                       f"({type(x).__name__}); expected {info.expects()}")


def _choice(x: Any, info: FieldInfo, where: str) -> int:
    names = info.choices or ()
    if isinstance(x, str):
        if x in names:
            return names.index(x)
    elif type(x) is int and (0 <= x < len(names) or not names):
        return x
    raise InvalidValue(f"{where} is a Choice field: {describe_python(x)} is not one of its choices; "
                       f"expected {info.expects()}")


def _article(tag: str) -> str:
    return "an" if tag[0] in "AEIOU" else "a"


def python_value(value: Any, info: FieldInfo | None = None) -> Any:
    """The Python value of a read value (a store value or its tagged JSON); see the module docstring."""
    tagged = _tagged(value)
    if tagged is None:
        return value
    ((tag, p),) = tagged.items()
    if tag == "Choice":
        names = info.choices if info is not None else None
        return names[p] if names and type(p) is int and 0 <= p < len(names) else p
    if tag == "Blob":
        return bytes(p)
    if tag == "Timestamp":
        delta = datetime.timedelta(seconds=p["secs_since_epoch"], microseconds=p["nanos_since_epoch"] // 1000)
        return _EPOCH + delta
    if tag == "EntityReference":
        return None if p is None else convert.decode_entity_id(p)
    if tag == "EntityList":
        return [convert.decode_entity_id(e) for e in p]
    return p
