"""An upper bound on the JSON size of a command's response, from the store's
answer, before it is encoded.

A small request can have a huge reply: a ``Read`` batch naming a 1 MiB Blob a
thousand times is answered with a thousand copies of it, and a Blob goes on the
wire as a list of byte values (``list(v)``: ~8 bytes of pointers in memory and
up to 4 bytes of JSON per byte). Measuring costs a few C-speed passes over a
large value (a Blob's bytes once per batch, a String's characters) and builds
nothing per byte, so a node refuses a reply over its frame limit before it
encodes anything large (:func:`perform_reply`; qcore.node.users for reads,
qcore.node.state_machine for batches that write; docs/security.md). A
:class:`ReadMeter` measures a batch's Reads as the store makes them, so that
the store stops making them once the reply is over the limit: a String is
decoded afresh by every read of it.

The size is never below ``len(orjson.dumps(encode_command_response(resp)))``;
Blobs, long Strings, names and page ids are counted exactly, the rest at its
longest (ids, numbers, timestamps: up to ~100 bytes a Read over):
tests/protocol/test_reply_size.py holds it to both.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from qcore.protocol import messages as m
from qcore.protocol.errors import Kind, error
from qcore.protocol.values import encode_command_response
from qcore.store import (
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    Float,
    Int,
    PageResult,
    Read,
    String,
    TimestampValue,
    Value,
    Write,
)
from qcore.store.commands import (
    CreateEntityResponse,
    FindEntitiesResponse,
    GetChildrenResponse,
    GetCompleteSchemaResponse,
    GetEntityTypesResponse,
    GetSchemaResponse,
    UpdateEntityResponse,
)

__all__ = ["ReadMeter", "over_limit", "perform_reply", "response_size", "value_size", "text_size", "blob_size"]

_NUMBER = 24  # the longest int (i64/u64: 20 chars) or float orjson writes (e.g. -2.2250738585072014e-308)
_TAG = 24  # {"EntityReference": } and the like around a value
_TIMESTAMP = len('{"Timestamp":{"secs_since_epoch":,"nanos_since_epoch":}}') + 2 * _NUMBER
_OPT_TIMESTAMP = len('{"secs_since_epoch":,"nanos_since_epoch":}') + 2 * _NUMBER
_EID = len('{"typ":,"id":}')  # plus the type name's text and the id's digits
_READ = len('{"Read":{"entity_id":{"typ":,"id":},"field_type":,"value":,"write_time":,"writer_id":}},') \
    + _NUMBER + _OPT_TIMESTAMP
_WRITE = _READ + len('"Write""push_condition":"Changes","adjust_behavior":"Subtract",')
_FIELD_SCHEMA = len('"":{"field_type":,"default_value":,"rank":,"read_permission":,"write_permission":,"choices":},') \
    + _NUMBER
_FRAME = 64  # {"PerformResponse":{"id":,"response":}} around it (the id is counted apart)
_ENVELOPE = 96  # {"UpdateEntity":{"response":[],"error":null,"kind":"rejected"}} and the like
#: A value whose size does not depend on its payload, at its longest (None: ``null``).
_FIXED: dict[type, int] = {Int: _TAG + _NUMBER, Float: _TAG + _NUMBER, Choice: _TAG + _NUMBER, Bool: _TAG + 5,
                           TimestampValue: _TIMESTAMP, type(None): 4}
_SHORT = 32  # a String this short is counted at 6 bytes a character (its longest), not scanned
_FIELD = attrgetter("field_type")
_TYPE = attrgetter("entity_id.typ")
_CONTROL = {c: None for c in range(0x20)}  # str.translate table that drops what JSON escapes as \uXXXX
_SHORT_ESCAPES = "\b\t\n\f\r"  # control characters JSON writes in 2 bytes, not 6
_ONE_DIGIT = bytes(range(10))
_TWO_DIGITS = bytes(range(100))


def text_size(s: str) -> int:
    """Bytes of ``s`` as a JSON string, exactly: its UTF-8, the quotes, and the
    escapes (``\\"``, ``\\\\``, ``\\n`` and the like, ``\\uXXXX`` for other control characters)."""
    n = len(s)
    if not s.isascii():
        n = len(s.encode("utf-8", "surrogatepass"))
    n += 2 + s.count('"') + s.count("\\")
    if not s.isprintable():  # rare: look for control characters only then
        n += 5 * (len(s) - len(s.translate(_CONTROL))) - 4 * sum(s.count(c) for c in _SHORT_ESCAPES)
    return n


def blob_size(b: bytes) -> int:
    """Bytes of ``list(b)`` as JSON: a digit per byte, one more for each over 9 and
    over 99 (counted in C: two copies of ``b``, none of the list), and the commas."""
    n = len(b)
    return 2 + max(n - 1, 0) + n + len(b.translate(None, _ONE_DIGIT)) + len(b.translate(None, _TWO_DIGITS))


def _eid_size(e: EntityId | None) -> int:
    return 4 if e is None else _EID + text_size(e.typ) + len(str(e.id))


def value_size(v: Value | None) -> int:
    """Bytes of ``encode_value(v)`` as JSON (``null`` for None)."""
    if v is None:
        return 4
    c = v.__class__
    if c is Blob:
        return _TAG + blob_size(v.v)
    if c is String:
        return _TAG + text_size(v.v)
    if c is EntityList:
        return _TAG + sum(_eid_size(e) + 1 for e in v.v)
    if c is EntityReference:
        return _TAG + _eid_size(v.v)
    if c is TimestampValue:
        return _TIMESTAMP
    if c is Float:
        return _TAG + _NUMBER
    return _TAG + len(str(v.v))  # Int, Choice, Bool (True: 4, False: 5)


class ReadMeter:
    """Adds up the JSON size of a batch's Reads (or Writes) as the store makes them:
    :meth:`add` is ``Store.query``'s ``stop``, True once over ``limit``, so a batch
    asking for too much is cut short before it builds it all (a String is decoded
    afresh by every read of it). What does not depend on the values read (the
    names each request echoes, the keys, ids and timestamps at their longest) is
    counted for the whole batch at once, from ``requests``; a large payload that
    recurs is measured once."""

    __slots__ = ("size", "limit", "requests", "_names", "_payloads")

    def __init__(self, requests: list[Any], limit: int = -1) -> None:
        self.limit = limit
        self.requests = len(requests)
        names = self._names = {s: text_size(s) for s in set(map(_FIELD, requests)) | set(map(_TYPE, requests))}
        lookup = names.__getitem__
        self.size = (len(requests) * _READ + list(map(type, requests)).count(Write) * (_WRITE - _READ)
                     + sum(map(lookup, map(_FIELD, requests))) + sum(map(lookup, map(_TYPE, requests))))
        self._payloads: dict[int, int] = {}  # id of a Blob's or EntityList's payload (kept alive by its Read)

    def add(self, r: Any) -> bool:
        v = r.value
        c = v.__class__
        if c is String:
            p = v.v
            n = _TAG + 2 + 6 * len(p) if len(p) <= _SHORT else _TAG + text_size(p)
        elif c is Blob or c is EntityList:
            key = id(v.v)
            n = self._payloads.get(key, -1)
            if n < 0:
                n = self._payloads[key] = value_size(v)
        elif c is EntityReference:
            n = _TAG + (4 if v.v is None else _EID + _NUMBER + self._name(v.v.typ))
        else:
            n = _FIXED[c]
        w = r.writer_id
        self.size += n + (4 if w is None else _EID + _NUMBER + self._name(w.typ))
        return self.size > self.limit

    def _name(self, s: str) -> int:
        n = self._names.get(s)
        if n is None:
            n = self._names[s] = text_size(s)
        return n


def _page_size(p: PageResult | None, ids: bool) -> int:
    if p is None:
        return 4
    items = sum(_eid_size(e) + 1 for e in p.items) if ids else sum(text_size(t) + 1 for t in p.items)
    cursor = 4 if p.next_cursor is None else text_size(p.next_cursor)
    return len('{"items":[],"total":,"next_cursor":}') + _NUMBER + items + cursor


def _schema_size(s: EntitySchema | None) -> int:
    if s is None:
        return 4
    size = len('{"entity_type":,"inherit":,"fields":{}}') + text_size(s.entity_type)
    size += 4 if s.inherit is None else text_size(s.inherit)
    for name, fs in s.fields.items():
        size += _FIELD_SCHEMA + text_size(name) + text_size(fs.field_type) + value_size(fs.default_value)
        size += _eid_size(fs.read_permission) + _eid_size(fs.write_permission)
        if fs.choices is not None:
            size += sum(text_size(c) + 1 for c in fs.choices)
    return size


def response_size(resp: Any, meter: ReadMeter | None = None) -> int:
    """Never less than the bytes of ``orjson.dumps(encode_command_response(resp))``;
    ``meter``: what a ReadMeter already counted of ``resp``'s Reads as they were made."""
    c = resp.__class__
    error = getattr(resp, "error", None)
    size = _ENVELOPE + (0 if error is None else text_size(error))
    if c is UpdateEntityResponse:
        if meter is None:
            meter = ReadMeter(resp.response)
            for r in resp.response:
                meter.add(r)
        return size + meter.size
    if c is FindEntitiesResponse or c is GetChildrenResponse:
        return size + _page_size(resp.response, True)
    if c is GetEntityTypesResponse:
        return size + _page_size(resp.response, False)
    if c is GetSchemaResponse or c is GetCompleteSchemaResponse:
        return size + _schema_size(resp.response)
    if c is CreateEntityResponse:
        return size + _eid_size(resp.response)
    return size + _NUMBER  # EntityExists, FieldExists, DeleteEntity, SetSchema, LoadConfig: a few fields


def over_limit(resp: Any, limit: int, rid: Any = "", meter: ReadMeter | None = None) -> str | None:
    """Why a ``PerformResponse`` frame carrying ``resp`` (to request ``rid``) must not
    be built: it could be over ``limit`` bytes; None if it fits. With a ``meter`` that
    cut the batch short, ``resp`` is only the part that was read: "at least"."""
    size = response_size(resp, meter) + _FRAME + text_size(str(rid))
    if size <= limit:
        return None
    return (f"reply too large: it would be at least {size} bytes, over the limit of {limit}"
            f" (--max-frame-bytes) by {size - limit}; {_advice(resp, meter)}")


def _advice(resp: Any, meter: ReadMeter | None) -> str:
    c = resp.__class__
    if c is UpdateEntityResponse and (len(resp.response) if meter is None else meter.requests) > 1:
        return "read fewer values per request"
    if c in (FindEntitiesResponse, GetChildrenResponse, GetEntityTypesResponse):
        return "ask for smaller pages (page_opts.limit)"
    # One value larger than a frame: Add appends to a String, Blob or EntityList past what one write carries.
    return "read fewer values per request; one value this large needs a node with a larger --max-frame-bytes"


def perform_reply(rid: Any, resp: Any, limit: int, meter: ReadMeter | None = None) -> m.PerformResponse | m.Error:
    """The ``PerformResponse`` frame for the store's answer ``resp``, encoded only
    if it fits in ``limit`` bytes; otherwise an ``invalid`` Error saying by how
    much it is over (re-sending the request as it is cannot help). ``meter``: the
    ReadMeter the store's query was given as its ``stop``."""
    why = over_limit(resp, limit, rid, meter)
    if why is not None:
        return error(rid, Kind.INVALID, why)
    return m.PerformResponse(rid, encode_command_response(resp))
