"""Values as people type and read them on the command line.

``parse_value`` reads command-line text as a field's type (``42`` for an
Int, ``Manual`` or ``1`` for a Choice, ``User$3`` for a reference, ``now``
for a Timestamp); a text that does not fit says what the field expects, in
qcore's words, never Python's. ``format_value`` prints tagged JSON for
people: ``Float 21.5``, ``Choice Manual (1)``, ``EntityReference User$3``.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import orjson

from qcore.client import command_json
from qcore.client.field_values import FieldInfo

__all__ = ["UsageError", "CliError", "VALUE_TYPES", "parse_value", "guess_value", "parse_time", "format_value",
           "format_time", "format_eid"]

VALUE_TYPES = ("Int", "Float", "String", "Bool", "Choice", "EntityReference", "EntityList", "Blob", "Timestamp")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_INT = re.compile(r"[+-]?[0-9]+")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_EXPECTED = {
    "Int": "an integer, e.g. 42",
    "Float": "a number, e.g. 21.5",
    "Bool": "true or false (or yes/no, on/off, 1/0)",
    "EntityReference": "an entity id such as User$3, or null",
    "EntityList": "entity ids separated by commas, e.g. User$1,User$2",
    "Blob": "hexadecimal bytes, e.g. 0a0bff",
    "Timestamp": "now, seconds since the epoch, or ISO 8601 such as 2026-11-25T17:00:00Z",
}


class UsageError(Exception):
    """A bad command line found after parsing (an entity id or a value that does not fit,
    options that do not go together): exit status 2, as argparse's own usage errors."""


class CliError(Exception):
    """A command that cannot go on for a reason neither of its command line nor a refusal by
    the node: a file it cannot read or write, a password not given (exit status 1)."""


class _Unfit(Exception):
    pass


def parse_value(text: str, typ: str, choices: tuple[str, ...] | None = None, where: str = "the value") -> dict[str, Any]:
    """Command-line text -> tagged JSON Value of type ``typ``; UsageError naming ``where`` if it does not fit."""
    if typ not in VALUE_TYPES:
        raise UsageError(f"unknown value type {typ!r}; one of {', '.join(VALUE_TYPES)}")
    try:
        return {typ: _payload(text, typ, choices)}
    except _Unfit:
        expected = FieldInfo(typ, choices).expects() if typ == "Choice" else _EXPECTED.get(typ, typ)
        article = "an" if typ[0] in "AEIOU" else "a"
        raise UsageError(f"{where} is {article} {typ} field: cannot read {text!r}; expected {expected}") from None


def _payload(text: str, typ: str, choices: tuple[str, ...] | None) -> Any:
    if typ == "String":
        return text
    if typ == "Int":
        if _INT.fullmatch(text.strip()) and _I64_MIN <= int(text) <= _I64_MAX:
            return int(text)
    elif typ == "Float":
        try:
            x = float(text)
        except ValueError:
            raise _Unfit from None
        if math.isfinite(x):
            return x
    elif typ == "Bool":
        low = text.strip().lower()
        if low in _TRUE + _FALSE:
            return low in _TRUE
    elif typ == "Choice":
        names = choices or ()
        if text in names:
            return names.index(text)
        if _INT.fullmatch(text.strip()) and (not names or 0 <= int(text) < len(names)):
            return int(text)
    elif typ == "EntityReference":
        if text.strip().lower() in ("", "null", "none"):
            return None
        return _entity_id(text)
    elif typ == "EntityList":
        return [_entity_id(t.strip()) for t in text.strip().strip("[]").split(",") if t.strip()]
    elif typ == "Blob":
        try:
            return list(bytes.fromhex(text.strip().removeprefix("0x")))
        except ValueError:
            raise _Unfit from None
    elif typ == "Timestamp":
        return parse_time(text)
    raise _Unfit


def _entity_id(text: str) -> dict[str, Any]:
    try:
        return command_json.entity_id(text)
    except ValueError:
        raise _Unfit from None


def parse_time(text: str) -> dict[str, int]:
    """``now``, seconds since the epoch (``1700000000.5``) or ISO 8601 (UTC unless it says),
    to the nanosecond: a fraction's digits are read as written (not through a float, nor
    datetime's microseconds); one finer than a nanosecond does not fit."""
    if text == "now":
        return command_json.timestamp(datetime.datetime.now(datetime.timezone.utc))
    m = _DECIMAL_SECS.fullmatch(text.strip())
    if m:
        return {"secs_since_epoch": int(m[1]), "nanos_since_epoch": _nanos(m[2] or "")}
    try:
        secs = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(secs) or secs < 0:
            raise _Unfit
        return command_json.timestamp(secs)
    iso = text.strip().replace("Z", "+00:00")
    m = _ISO_FRACTION.match(iso)
    try:
        dt = datetime.datetime.fromisoformat(iso[:m.start(1) - 1] + iso[m.end(1):] if m else iso)
    except ValueError:
        raise _Unfit from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    ts = command_json.timestamp(dt)
    if ts["secs_since_epoch"] < 0:
        raise _Unfit
    ts["nanos_since_epoch"] = _nanos(m[1] if m else "")
    return ts


_DECIMAL_SECS = re.compile(r"\+?([0-9]+)(?:\.([0-9]*))?")
# The fraction after the time's digits (hh:mm:ss.fff, or ISO 8601's basic hhmmss.fff): the
# part of a second that datetime.fromisoformat would read, there cut to the microsecond.
_ISO_FRACTION = re.compile(r"[0-9Ww-]+[^0-9-][0-9:]+[.,]([0-9]+)")


def _nanos(fraction: str) -> int:
    """A fraction of a second's digits as nanoseconds; more than nine (non-zero) do not fit."""
    if fraction[9:].strip("0"):
        raise _Unfit
    return int(fraction[:9].ljust(9, "0"))


def guess_value(text: str) -> dict[str, Any]:
    """A value with no schema to go by: the obvious reading of the text."""
    low = text.lower()
    if low in ("true", "false"):
        return {"Bool": low == "true"}
    for typ in ("Int", "Float"):
        try:
            return parse_value(text, typ)
        except UsageError:
            pass
    try:
        return {"EntityReference": command_json.entity_id(text)}
    except ValueError:
        return {"String": text}


def format_time(ts: Any) -> str:
    if not isinstance(ts, dict):
        return "-"
    dt = datetime.datetime.fromtimestamp(ts["secs_since_epoch"], datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts['nanos_since_epoch']:09d}Z"


def format_value(v: Any, info: FieldInfo | None = None) -> str:
    """A tagged JSON value for people: ``Int 42``, ``String "x"``, ``Choice Manual (1)``."""
    if not isinstance(v, dict) or len(v) != 1:
        return "null" if v is None else orjson.dumps(v).decode()
    ((tag, p),) = v.items()
    if tag == "String":
        text = orjson.dumps(p).decode()
    elif tag == "EntityReference":
        text = "null" if p is None else command_json.entity_id_text(p)
    elif tag == "EntityList":
        text = "[" + ", ".join(command_json.entity_id_text(e) for e in p) + "]"
    elif tag == "Blob":
        text = "0x" + bytes(p).hex()
    elif tag == "Timestamp":
        text = format_time(p)
    elif tag == "Bool":
        text = "true" if p else "false"
    elif tag == "Choice":
        names = info.choices if info is not None and info.tag == "Choice" else None
        text = f"{names[p]} ({p})" if names and type(p) is int and 0 <= p < len(names) else str(p)
    else:
        text = str(p)
    return f"{tag} {text}"


def format_eid(e: Any) -> str:
    return "null" if e is None else command_json.entity_id_text(e)
