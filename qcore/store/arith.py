"""Add and Subtract (SPEC 3): Int/Float sum and difference with range checks,
String/Blob append, EntityList concatenation and removal; anything else fails."""

from __future__ import annotations

import math

from .errors import Fail
from .types import I64_MAX, I64_MIN, Blob, EntityId, EntityList, Float, Int, String, Value, make_unchecked


def add(cls: type[Value], old: Value, v: Value, eid: EntityId, name: str) -> Value:
    if cls is Int:
        s = old.v + v.v
        if not I64_MIN <= s <= I64_MAX:
            raise Fail(f"Int overflow: {eid}.{name} {old.v} + {v.v} leaves the signed 64-bit range")
        return make_unchecked(Int, s)
    if cls is Float:
        s = old.v + v.v
        if not math.isfinite(s):
            raise Fail(f"Float overflow: {eid}.{name} {old.v} + {v.v} is not finite")
        return make_unchecked(Float, s)
    if cls is String or cls is Blob or cls is EntityList:
        return make_unchecked(cls, old.v + v.v)
    raise Fail(f"cannot Add to {eid}.{name}: Add works on Int, Float, String, Blob and EntityList, not {cls.tag}")


def subtract(cls: type[Value], old: Value, v: Value, eid: EntityId, name: str) -> Value:
    if cls is Int:
        s = old.v - v.v
        if not I64_MIN <= s <= I64_MAX:
            raise Fail(f"Int overflow: {eid}.{name} {old.v} - {v.v} leaves the signed 64-bit range")
        return make_unchecked(Int, s)
    if cls is Float:
        s = old.v - v.v
        if not math.isfinite(s):
            raise Fail(f"Float overflow: {eid}.{name} {old.v} - {v.v} is not finite")
        return make_unchecked(Float, s)
    if cls is EntityList:
        gone = set(v.v)
        return make_unchecked(EntityList, tuple(x for x in old.v if x not in gone))
    raise Fail(
        f"cannot Subtract from {eid}.{name}: Subtract works on Int, Float and EntityList, not {cls.tag}"
    )
