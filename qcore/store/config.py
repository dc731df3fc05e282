"""The schema config file (SPEC 4): YAML -> a LoadConfig command.

Layout::

    schemas:
      - entity_type: User
        inherit: Object
        fields:
          Email: {default_value: {String: ""}, rank: 3}
    tree:
      - entity_type: Root
        name: Root
        attributes: {Description: {String: "top"}}
        children: [...]

Values use the tagged form (``{Int: 5}``, ``{EntityReference: "User$3"}``,
``{Timestamp: {secs_since_epoch: 0, nanos_since_epoch: 0}}``, ...). Bare YAML
scalars are accepted where the meaning is unambiguous:

* a ``default_value``: ``true`` -> Bool, ``5`` -> Int, ``1.5`` -> Float,
  ``"x"`` -> String, a YAML date/time -> Timestamp (to the nanosecond); on a field that lists
  ``choices``, an int or a choice *name* -> Choice;
* an attribute: the field's variant decides (``5`` on a Float field is 5.0,
  ``"User$3"`` on an EntityReference field is a reference, ``Admin`` on a
  Choice field is the index of that choice name, a list of ``"Type$n"`` on an
  EntityList field is that list).

Tree entities are created depth-first in file order, so their ids are
predictable: on a fresh cluster the first tree entity is ``Type$1``, the next
``Type$2``, and so on (ids count across all types).

Booleans are YAML 1.2's (``true``/``false``): a bare ``Off``, ``On``, ``Yes``
or ``No`` is a string (a choice name), though a Bool field still takes them.

Every error (YAML syntax, unknown key, wrong shape, unknown type or parent,
inheritance cycle, wrong value type) raises :class:`ConfigError` naming the
file, the path inside it and the reason. Schemas are read by the same rules
as ``SetSchema`` on the wire (:mod:`qcore.store.schema_input`). Semantic checks are done by applying
the command to a scratch :class:`Store`, so the file is accepted exactly when
the cluster would accept it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from .commands import LoadConfig, LoadConfigResponse, TreeNode
from .schema import EntitySchema, FieldSchema, SchemaError, resolve_complete
from .schema_input import SchemaInputError, check_keys, describe, read_entity_schema
from .types import (
    I64_MAX,
    I64_MIN,
    VALUE_CLASSES,
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    String,
    Timestamp,
    TimestampValue,
    Value,
)
from .yaml_load import gc_paused, parse_yaml

logger = logging.getLogger(__name__)

_NODE_KEYS = ("entity_type", "name", "attributes", "children")
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false. YAML 1.1 also reads
    yes/no/on/off as booleans, which made a choice named ``Off`` the boolean
    False; a Bool field still takes yes/no/on/off (:func:`_payload`)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _NanoDatetime(_dt.datetime):
    """A YAML timestamp whose fraction has more than six digits: datetime keeps
    microseconds, ``nanos`` (0-999) the nanoseconds beyond them."""

    nanos: int = 0


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """PyYAML's timestamp, without dropping digits past the microsecond (PyYAML
    cuts the fraction to six): up to nine are kept, more are refused. One that
    names no instant (``2024-02-30``, a leap second's ``23:59:60``, which Unix
    time has no room for) is refused with its line and column."""
    try:
        value = loader.construct_yaml_timestamp(node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"timestamp {node.value!r} is not a date/time: {exc}", node.start_mark) from None
    m = yaml.SafeLoader.timestamp_regexp.match(node.value)
    fraction = (m.group("fraction") or "") if m else ""
    if len(fraction) <= 6 or not isinstance(value, _dt.datetime):
        return value
    if len(fraction) > 9 and fraction[9:].strip("0"):
        raise yaml.constructor.ConstructorError(
            None, None, f"timestamp {node.value!r} is more precise than a nanosecond", node.start_mark)
    precise = _NanoDatetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                            value.microsecond, value.tzinfo)
    precise.nanos = int(fraction[6:9].ljust(3, "0"))
    return precise


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


class ConfigError(Exception):
    """A config file that cannot be loaded: ``file``, ``path`` inside it
    (``schemas[1].fields.Email.default_value``) and ``reason``."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        self.file = file
        self.path = path
        self.reason = reason
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {reason}")



def _eid(x: Any, path: str) -> EntityId:
    if isinstance(x, str):
        try:
            return EntityId.parse(x.strip())
        except ValueError as e:
            raise SchemaInputError(path, str(e)) from None
    if isinstance(x, dict) and set(x) == {"typ", "id"} and isinstance(x["typ"], str):
        n = x["id"]
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
            return EntityId(x["typ"], n)
    raise SchemaInputError(path, f"expected an entity id like 'User$123', got {describe(x)}")


def _int(x: Any, path: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise SchemaInputError(path, f"expected an integer, got {describe(x)}")
    if not I64_MIN <= x <= I64_MAX:
        raise SchemaInputError(path, f"integer {x} is outside the signed 64-bit range")
    return x


def _timestamp(x: Any, path: str) -> Timestamp:
    if isinstance(x, _dt.datetime):
        sub_us = getattr(x, "nanos", 0)  # before replace(), which drops it
        if x.tzinfo is None:
            x = x.replace(tzinfo=_dt.timezone.utc)
        delta = x - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + sub_us
        if ns < 0:
            raise SchemaInputError(path, "timestamps before 1970 are not supported")
        return Timestamp.from_ns(ns)
    if isinstance(x, _dt.date):
        return _timestamp(_dt.datetime(x.year, x.month, x.day), path)
    if isinstance(x, dict):
        check_keys(x, ("secs_since_epoch", "nanos_since_epoch"), path)
        s = x.get("secs_since_epoch", 0)
        n = x.get("nanos_since_epoch", 0)
        try:
            return Timestamp(s, n)
        except ValueError as e:
            raise SchemaInputError(path, str(e)) from None
    raise SchemaInputError(path, f"expected {{secs_since_epoch: S, nanos_since_epoch: N}} or a date/time, got {describe(x)}")


def _choice(x: Any, choices: tuple[str, ...] | None, path: str) -> Value:
    if isinstance(x, str):
        if choices is None or x not in choices:
            raise SchemaInputError(path, f"{x!r} is not one of the field's choices {list(choices or ())}")
        return Choice(choices.index(x))
    return Choice(_int(x, path))


def _payload(tag: str, p: Any, choices: tuple[str, ...] | None, path: str) -> Value:
    """The tagged form ``{tag: p}``."""
    if tag == "Bool":
        if isinstance(p, str) and p.lower() in _TRUE + _FALSE:
            return Bool(p.lower() in _TRUE)
        if not isinstance(p, bool):
            raise SchemaInputError(path, f"expected true or false, got {describe(p)}")
        return Bool(p)
    if tag == "Int":
        return Int(_int(p, path))
    if tag == "Float":
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise SchemaInputError(path, f"expected a number, got {describe(p)}")
        try:
            return Float(float(p))
        except (ValueError, OverflowError) as e:
            raise SchemaInputError(path, str(e)) from None
    if tag == "String":
        if not isinstance(p, str):
            raise SchemaInputError(path, f"expected a string (quote it), got {describe(p)}")
        return String(p)
    if tag == "Choice":
        return _choice(p, choices, path)
    if tag == "EntityReference":
        return EntityReference(None if p is None else _eid(p, path))
    if tag == "EntityList":
        if p is None:
            return EntityList(())
        if not isinstance(p, list):
            raise SchemaInputError(path, f"expected a list of entity ids, got {describe(p)}")
        return EntityList(tuple(_eid(x, f"{path}[{i}]") for i, x in enumerate(p)))
    if tag == "Blob":
        if isinstance(p, (bytes, bytearray)):
            return Blob(bytes(p))
        if not isinstance(p, list):
            raise SchemaInputError(path, f"expected a list of bytes (0-255) or !!binary, got {describe(p)}")
        for i, b in enumerate(p):
            if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= 255:
                raise SchemaInputError(f"{path}[{i}]", f"expected a byte (0-255), got {describe(b)}")
        return Blob(bytes(p))
    if tag == "Timestamp":
        return TimestampValue(_timestamp(p, path))
    raise SchemaInputError(path, f"unknown value type {tag!r} (expected one of {', '.join(VALUE_CLASSES)})")


def parse_value(x: Any, path: str, hint: type[Value] | None = None, choices: tuple[str, ...] | None = None) -> Value:
    """A YAML value: tagged form, or a bare scalar read as ``hint``'s variant
    when given (else the obvious variant of the scalar)."""
    if isinstance(x, dict):
        if len(x) == 1:
            tag, p = next(iter(x.items()))
            if isinstance(tag, str) and tag in VALUE_CLASSES:
                return _payload(tag, p, choices, f"{path}.{tag}")
        if hint is TimestampValue and "secs_since_epoch" in x:
            return TimestampValue(_timestamp(x, path))
        raise SchemaInputError(path, f"expected a value like {{String: x}} or {{Int: 5}}, got {describe(x)}")
    if hint is not None:
        if hint is EntityReference and (x is None or isinstance(x, str)):
            return _payload("EntityReference", x, choices, path)
        if hint in (EntityList, Blob) and isinstance(x, list):
            return _payload(hint.tag, x, choices, path)
        if hint in (Int, Float, Choice, Bool, String) and x is not None and not isinstance(x, (list, dict)):
            return _payload(hint.tag, x, choices, path)
        if hint is TimestampValue and isinstance(x, (_dt.date, int)) and not isinstance(x, bool):
            if isinstance(x, int):
                return TimestampValue(Timestamp(x, 0)) if x >= 0 else _payload("Timestamp", x, None, path)
            return TimestampValue(_timestamp(x, path))
    if isinstance(x, bool):
        return Bool(x)
    if isinstance(x, int):
        return Int(_int(x, path))
    if isinstance(x, float):
        return _payload("Float", x, None, path)
    if isinstance(x, str):
        return String(x)
    if isinstance(x, _dt.date):
        return TimestampValue(_timestamp(x, path))
    raise SchemaInputError(path, f"cannot tell the value type of {describe(x)}; use the tagged form, e.g. {{String: x}}")


def _default_value(raw: Any, path: str, choices: tuple[str, ...] | None) -> Value:
    """A field's default: on a field with choices, an int or a choice name is a Choice."""
    is_int = isinstance(raw, int) and not isinstance(raw, bool)
    hint = Choice if choices is not None and (isinstance(raw, str) or is_int) else None
    if hint is None and isinstance(raw, str) and raw.lower() in _TRUE[1:] + _FALSE[1:]:
        # The default fixes the field's type: do not guess between YAML 1.1 and 1.2 here.
        raise SchemaInputError(path, f"{raw!r} could be a Bool or a String: write {{Bool: "
                                     f"{str(raw.lower() in _TRUE).lower()}}} or {{String: {raw!r}}}")
    return parse_value(raw, path, hint, choices)


def _parse_schema(d: Any, path: str) -> EntitySchema:
    return read_entity_schema(d, _default_value, _eid, path)


def _parse_node(d: Any, path: str, complete: Mapping[str, Mapping[str, FieldSchema]]) -> TreeNode:
    if not isinstance(d, dict):
        raise SchemaInputError(path, f"expected a mapping with entity_type, name, attributes, children; got {describe(d)}")
    check_keys(d, _NODE_KEYS, path)
    t = d.get("entity_type")
    if not isinstance(t, str) or not t:
        raise SchemaInputError(f"{path}.entity_type", f"expected a type name, got {describe(t)}")
    name = d.get("name", "")
    if name is None:
        name = ""
    if not isinstance(name, str):
        name = str(name) if isinstance(name, (int, float)) and not isinstance(name, bool) else name
        if not isinstance(name, str):
            raise SchemaInputError(f"{path}.name", f"expected a string, got {describe(name)}")
    attrs_raw = d.get("attributes") or {}
    if not isinstance(attrs_raw, dict):
        raise SchemaInputError(f"{path}.attributes", f"expected a mapping of field -> value, got {describe(attrs_raw)}")
    cs = complete.get(t, {})
    attrs: dict[str, Value] = {}
    for k, v in attrs_raw.items():
        fs = cs.get(k)
        hint = fs.default_value.__class__ if fs is not None else None
        attrs[str(k)] = parse_value(v, f"{path}.attributes.{k}", hint, fs.choices if fs is not None else None)
    kids_raw = d.get("children") or []
    if not isinstance(kids_raw, list):
        raise SchemaInputError(f"{path}.children", f"expected a list of entities, got {describe(kids_raw)}")
    kids = [_parse_node(c, f"{path}.children[{i}]", complete) for i, c in enumerate(kids_raw)]
    return TreeNode(t, name, attrs, kids)


def _load_yaml(text: str, filename: str) -> Any:
    try:
        return parse_yaml(text, _Loader, unique_keys=True)
    except RecursionError:
        raise ConfigError(filename, "", "the document is nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(filename, where, f"invalid YAML: {problem}") from None


def load_schemas_text(text: str, filename: str = "<schemas>") -> list[EntitySchema]:
    """Schemas from YAML (``qcore-cli set-schema``): one schema, a list of them, or a
    config file (its ``schemas:``), read by the config file's rules; raises ConfigError."""
    doc = _load_yaml(text, filename)
    base = ""
    if isinstance(doc, dict) and "schemas" in doc:  # a config file: its tree is not a schema
        doc, base = doc["schemas"], "schemas"
    items = doc if isinstance(doc, list) else [doc]
    try:
        return [_parse_schema(s, f"{base}[{i}]" if isinstance(doc, list) else base) for i, s in enumerate(items)]
    except SchemaInputError as b:
        raise ConfigError(filename, b.path, b.reason) from None


def load_config_text(text: str, filename: str = "<config>") -> LoadConfig:
    """Parse and validate config text; raises ConfigError."""
    with gc_paused():  # everything built here survives: collections would only rescan it
        return _load_config_text(text, filename)


def _load_config_text(text: str, filename: str) -> LoadConfig:
    doc = _load_yaml(text, filename)
    try:
        if not isinstance(doc, dict):
            raise SchemaInputError("", f"expected a mapping with 'schemas' and 'tree', got {describe(doc)}")
        check_keys(doc, ("schemas", "tree"), "")
        raw_schemas = doc.get("schemas") or []
        if not isinstance(raw_schemas, list):
            raise SchemaInputError("schemas", f"expected a list of schemas, got {describe(raw_schemas)}")
        schemas = [_parse_schema(s, f"schemas[{i}]") for i, s in enumerate(raw_schemas)]
        try:
            complete = resolve_complete({s.entity_type: s for s in schemas})
        except SchemaError:
            complete = {}  # reported with its path by the validation below
        raw_tree = doc.get("tree") or []
        if not isinstance(raw_tree, list):
            raise SchemaInputError("tree", f"expected a list of entities, got {describe(raw_tree)}")
        tree = [_parse_node(n, f"tree[{i}]", complete) for i, n in enumerate(raw_tree)]
    except RecursionError:
        raise ConfigError(filename, "tree", "the tree is nested too deeply") from None
    except SchemaInputError as b:
        raise ConfigError(filename, b.path, b.reason) from None
    cfg = LoadConfig(schemas, tree)
    from .state import Store

    resp, _ = Store().apply(cfg, Timestamp(0, 0))
    assert isinstance(resp, LoadConfigResponse)
    if resp.error is not None:
        path, sep, reason = resp.error.partition(": ")
        if not sep or " " in path:
            path, reason = "", resp.error
        raise ConfigError(filename, path, reason)
    logger.debug("config %s: %d schemas, %d tree entities", filename, len(schemas), resp.created)
    return cfg


def load_config(path: str | Path) -> LoadConfig:
    """Read and validate a config file; raises ConfigError (also for I/O errors)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), "", f"cannot read the file: {e}") from None
    return load_config_text(text, str(p))
