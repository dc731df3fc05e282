"""Building ``CommandRequest`` JSON and reading ``CommandResponse`` JSON (SPEC 2.2, 2.3).

The helpers of :class:`qcore.client.Client` and the command-line client accept
friendly arguments — ``"User$123"`` for an entity id, ``42`` for an ``Int`` —
and this module turns them into the exact wire shapes. It is pure (no I/O) so
that the shapes are tested without a server. Tagged JSON (``{"Int": 42}``,
``{"typ": "User", "id": 123}``) is always accepted as is, and so are the
store's own types, through :mod:`qcore.client.convert`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from qcore.client import convert
from qcore.client.errors import CommandError

__all__ = [
    "VALUE_TAGS",
    "entity_id",
    "entity_id_text",
    "value",
    "timestamp",
    "read_request",
    "write_request",
    "update_entity",
    "create_entity",
    "delete_entity",
    "set_schema",
    "get_schema",
    "get_complete_schema",
    "find_entities",
    "get_children",
    "get_entity_types",
    "entity_exists",
    "field_exists",
    "is_read_only",
    "unwrap",
]

JSON = dict[str, Any]

VALUE_TAGS = frozenset(
    {"Blob", "Bool", "Choice", "EntityList", "EntityReference", "Float", "Int", "String", "Timestamp"}
)
PUSH_CONDITIONS = ("Always", "Changes")
PATH_SEP = "->"  # field paths: Parent->Name
ADJUST_BEHAVIORS = ("Set", "Add", "Subtract")

_READ_ONLY_COMMANDS = frozenset(
    {"GetSchema", "GetCompleteSchema", "FindEntities", "GetEntityTypes", "GetChildren", "EntityExists", "FieldExists"}
)
# SetSchema sets a whole schema: sending it twice leaves the same state as once.
_IDEMPOTENT_WRITES = frozenset({"SetSchema"})


# ------------------------------------------------------------------ values


def entity_id(x: Any) -> JSON:
    """``"User$123"``, ``("User", 123)``, ``{"typ": "User", "id": 123}`` or a store EntityId -> JSON."""
    if isinstance(x, str):
        typ, sep, num = x.rpartition("$")
        if not sep or not typ or not num.isdigit():
            raise ValueError(f"bad entity id {x!r}: expected Type$number, e.g. User$123")
        return {"typ": typ, "id": int(num)}
    if isinstance(x, Mapping):
        if set(x) != {"typ", "id"} or not isinstance(x["typ"], str) or type(x["id"]) is not int:
            raise ValueError(f"bad entity id {x!r}: expected {{'typ': str, 'id': int}}")
        return {"typ": x["typ"], "id": x["id"]}
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) and type(x[1]) is int:
        return {"typ": x[0], "id": x[1]}
    encoded = convert.encode_entity_id(x)
    if encoded is not None:
        return encoded
    raise TypeError(f"cannot use {x!r} as an entity id")


def entity_id_text(eid: Any) -> str:
    """The text form ``User$123`` of any entity id accepted by :func:`entity_id`."""
    j = entity_id(eid)
    return f"{j['typ']}${j['id']}"


def timestamp(x: Any) -> JSON:
    """A ``Timestamp``: ``{"secs_since_epoch", "nanos_since_epoch"}`` from a datetime, a
    ``(secs, nanos)`` pair, a number of seconds, or the JSON itself."""
    if isinstance(x, Mapping):
        return {"secs_since_epoch": int(x["secs_since_epoch"]), "nanos_since_epoch": int(x["nanos_since_epoch"])}
    if isinstance(x, datetime.datetime):
        if x.tzinfo is None:
            raise ValueError("naive datetime: give it a timezone (e.g. datetime.timezone.utc)")
        delta = x - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        secs = delta.days * 86400 + delta.seconds
        return {"secs_since_epoch": secs, "nanos_since_epoch": delta.microseconds * 1000}
    if isinstance(x, tuple) and len(x) == 2:
        return {"secs_since_epoch": int(x[0]), "nanos_since_epoch": int(x[1])}
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        secs = int(x // 1)
        nanos = int(round((x - secs) * 1e9))
        if nanos == 1_000_000_000:  # rounded up to the next second: carry it
            secs, nanos = secs + 1, 0
        return {"secs_since_epoch": secs, "nanos_since_epoch": nanos}
    encoded = convert.encode_timestamp(x)
    if encoded is not None:
        return encoded
    raise TypeError(f"cannot use {x!r} as a timestamp")


def value(x: Any) -> JSON:
    """A ``Value``: tagged JSON (``{"Int": 5}``) as is, or a Python value by its type —
    bool -> Bool, int -> Int, float -> Float, str -> String, bytes -> Blob,
    datetime -> Timestamp, a store EntityId -> EntityReference, a list of them
    -> EntityList — or a store Value.

    This is the reading with no schema to go by; :class:`qcore.client.Client`
    then fits it to the field's type (:mod:`qcore.client.field_values`): an int
    for a Float field, a choice name for a Choice, ``"User$1"`` for a reference.
    """
    if isinstance(x, Mapping):
        if len(x) != 1:
            raise ValueError(f"bad value {x!r}: expected one tag of {sorted(VALUE_TAGS)}")
        ((tag, inner),) = x.items()
        if tag not in VALUE_TAGS:
            raise ValueError(f"bad value tag {tag!r}: expected one of {sorted(VALUE_TAGS)}")
        if tag == "EntityReference":
            return {tag: None if inner is None else entity_id(inner)}
        if tag == "EntityList":
            return {tag: [entity_id(e) for e in inner]}
        if tag == "Timestamp":
            return {tag: timestamp(inner)}
        if tag == "Blob" and isinstance(inner, (bytes, bytearray)):
            return {tag: list(inner)}
        return {tag: inner}
    if isinstance(x, bool):
        return {"Bool": x}
    if isinstance(x, int):
        return {"Int": x}
    if isinstance(x, float):
        return {"Float": x}
    if isinstance(x, str):
        return {"String": x}
    if isinstance(x, (bytes, bytearray)):
        return {"Blob": list(x)}
    if isinstance(x, datetime.datetime):
        return {"Timestamp": timestamp(x)}
    encoded = convert.encode_value(x)
    if encoded is not None:
        return encoded
    ref = convert.encode_entity_id(x)
    if ref is not None:
        return {"EntityReference": ref}
    if isinstance(x, (list, tuple)):
        try:
            return {"EntityList": [entity_id(e) for e in x]}
        except (ValueError, TypeError):
            pass
    raise TypeError(
        f"cannot use {x!r} ({type(x).__name__}) as a value: give a bool, int, float, str, bytes, datetime, "
        "an EntityId or a list of them, or a tagged value such as {'Int': 5}"
    )


# ------------------------------------------------------------------ requests


def read_request(eid: Any, field: str) -> JSON:
    return {"Read": {"entity_id": entity_id(eid), "field_type": field, "value": None, "write_time": None, "writer_id": None}}


def write_request(
    eid: Any,
    field: str,
    val: Any,
    *,
    push_condition: str = "Always",
    adjust: str = "Set",
    write_time: Any = None,
    writer_id: Any = None,
) -> JSON:
    if push_condition not in PUSH_CONDITIONS:
        raise ValueError(f"push_condition must be one of {PUSH_CONDITIONS}, got {push_condition!r}")
    if adjust not in ADJUST_BEHAVIORS:
        raise ValueError(f"adjust must be one of {ADJUST_BEHAVIORS}, got {adjust!r}")
    return {
        "Write": {
            "entity_id": entity_id(eid),
            "field_type": field,
            "value": None if val is None else value(val),
            "push_condition": push_condition,
            "adjust_behavior": adjust,
            "write_time": None if write_time is None else timestamp(write_time),
            "writer_id": None if writer_id is None else entity_id(writer_id),
        }
    }


def _request_json(r: Any) -> JSON:
    if isinstance(r, Mapping):
        return dict(r)
    encoded = convert.encode_request(r)
    if encoded is None:
        raise TypeError(f"cannot use {r!r} as a Request; build it with read_request/write_request")
    return encoded


def update_entity(requests: Iterable[Any]) -> JSON:
    return {"UpdateEntity": {"request": [_request_json(r) for r in requests]}}


def create_entity(entity_type: str, name: str, parent: Any = None) -> JSON:
    return {
        "CreateEntity": {
            "entity_type": entity_type,
            "parent_id": None if parent is None else entity_id(parent),
            "name": name,
        }
    }


def delete_entity(eid: Any) -> JSON:
    return {"DeleteEntity": {"entity_id": entity_id(eid)}}


def set_schema(schema: Any) -> JSON:
    if not isinstance(schema, Mapping):
        encoded = convert.encode_schema(schema)
        if encoded is None:
            raise TypeError(f"cannot use {schema!r} as an EntitySchema")
        schema = encoded
    return {"SetSchema": {"entity_schema": dict(schema)}}


def get_schema(entity_type: str) -> JSON:
    return {"GetSchema": {"entity_type": entity_type}}


def get_complete_schema(entity_type: str) -> JSON:
    return {"GetCompleteSchema": {"entity_type": entity_type}}


def _page_opts(limit: int | None, cursor: Any) -> JSON | None:
    if limit is None and cursor is None:
        return None
    return {"limit": 500 if limit is None else limit, "cursor": cursor}


def find_entities(entity_type: str, limit: int | None = None, cursor: Any = None) -> JSON:
    return {"FindEntities": {"entity_type": entity_type, "page_opts": _page_opts(limit, cursor)}}


def get_entity_types(limit: int | None = None, cursor: Any = None) -> JSON:
    return {"GetEntityTypes": {"page_opts": _page_opts(limit, cursor)}}


def get_children(eid: Any, limit: int | None = None, cursor: Any = None) -> JSON:
    return {"GetChildren": {"entity_id": entity_id(eid), "page_opts": _page_opts(limit, cursor)}}


def entity_exists(eid: Any) -> JSON:
    return {"EntityExists": {"entity_id": entity_id(eid)}}


def field_exists(entity_type: str, field: str) -> JSON:
    return {"FieldExists": {"entity_type": entity_type, "field_type": field}}


def is_read_only(request: Mapping[str, Any]) -> bool:
    """True if sending this CommandRequest twice has the effect of sending it once."""
    if len(request) != 1:
        return False
    ((tag, body),) = request.items()
    if tag in _READ_ONLY_COMMANDS or tag in _IDEMPOTENT_WRITES:
        return True
    if tag == "UpdateEntity" and isinstance(body, Mapping):
        reqs = body.get("request")
        return isinstance(reqs, list) and all(isinstance(r, Mapping) and list(r) == ["Read"] for r in reqs)
    return False


# ------------------------------------------------------------------ responses


def unwrap(response: Mapping[str, Any], tag: str) -> JSON:
    """The body of a ``CommandResponse`` of type ``tag``; raises CommandError on its ``error``."""
    body = response.get(tag) if len(response) == 1 else None
    if not isinstance(body, Mapping):
        raise CommandError(f"unexpected response to {tag}: {response!r}", dict(response))
    error = body.get("error")
    if error is not None:
        raise CommandError(str(error), dict(response), body.get("kind"))
    return dict(body)
