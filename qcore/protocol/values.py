"""JSON codec for the store's types: the exact shapes of SPEC 2.3.

Enums are *externally tagged* like serde's default (``{"Int": 42}``,
``{"Read": {...}}``, ``{"UpdateEntity": {...}}``). Every ``decode_*`` takes
already-parsed JSON (``orjson.loads`` output) and either returns a store
object or raises :class:`CodecError` — never anything else — whose message
names the field as a path (``request.UpdateEntity.request[2].Write.value``),
what was expected and what came. Every ``encode_*`` returns plain JSON data
for ``orjson.dumps``.

Leniency, as serde does it: unknown object keys are ignored — except in an
``EntitySchema`` and its ``FieldSchema`` s, which are read by the same rules as
the config file (:mod:`qcore.store.schema_input`), where a misspelt key
(``inherits``) would otherwise change a type for good; optional fields
(``value``/``write_time``/``writer_id`` of a Read or Write, ``inherit``,
``read_permission``, ``write_permission``, ``choices``, ``page_opts``,
``parent_id``) may be omitted and mean null. Beyond serde, a Write's
``push_condition`` defaults to ``"Always"`` and ``adjust_behavior`` to
``"Set"``, a FieldSchema's ``rank`` to 0 and its ``field_type`` to its key.
Strictness: an Int is a JSON integer (``true`` is not an Int) in the signed
64-bit range; ids and timestamp seconds are unsigned 64-bit; a Float accepts
integers and must be finite.

Paths are built only when an error happens: each level re-raises the inner
error with its own segment prepended, so the success path pays nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from qcore.store.commands import (
    AdjustBehavior,
    CreateEntity,
    CreateEntityResponse,
    DeleteEntity,
    DeleteEntityResponse,
    EntityExists,
    EntityExistsResponse,
    FieldExists,
    FieldExistsResponse,
    FindEntities,
    FindEntitiesResponse,
    GetCompleteSchema,
    GetCompleteSchemaResponse,
    GetChildren,
    GetChildrenResponse,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
    LoadConfig,
    LoadConfigResponse,
    Notification,
    NotifyConfig,
    NotifyConfigEntityId,
    NotifyConfigEntityType,
    PageOpts,
    PageResult,
    PushCondition,
    Read,
    SetSchema,
    SetSchemaResponse,
    TreeNode,
    UpdateEntity,
    UpdateEntityResponse,
    Write,
)
from qcore.store.schema import EntitySchema, FieldSchema
from qcore.store.schema_input import SchemaInputError, join_path, read_entity_schema, read_field_schema
from qcore.store.types import (
    I64_MAX,
    I64_MIN,
    NANOS_PER_SEC,
    U64_MAX,
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
    make_unchecked,
)

__all__ = [
    "CodecError",
    "decode_command_request",
    "decode_command_response",
    "decode_entity_id",
    "decode_entity_schema",
    "decode_field_schema",
    "decode_load_config",
    "decode_notification",
    "decode_notify_config",
    "decode_page_opts",
    "decode_request",
    "decode_timestamp",
    "decode_value",
    "encode_command_request",
    "encode_command_response",
    "encode_entity_id",
    "encode_entity_schema",
    "encode_field_schema",
    "encode_load_config",
    "encode_notification",
    "encode_notify_config",
    "encode_page_opts",
    "encode_request",
    "encode_timestamp",
    "encode_value",
]


class CodecError(ValueError):
    """Malformed JSON for a store type. ``path`` is where (``a.b[2].c``),
    ``reason`` is what was expected and what came; ``str()`` joins them."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, segment: str) -> CodecError:
        """Prepend a path segment (``"name"`` or ``"[3]"``) and return self."""
        if not self.path:
            self.path = segment
        elif self.path.startswith("["):
            self.path = segment + self.path
        else:
            self.path = f"{segment}.{self.path}"
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


def _describe(obj: Any) -> str:
    if obj is None:
        return "null"
    name = _JSON_NAMES.get(type(obj), type(obj).__name__)
    if type(obj) is dict:
        keys = list(obj)[:6]
        return f"an object with keys {keys}" if keys else "an empty object"
    if type(obj) is list:
        return f"an array of {len(obj)} items"
    text = repr(obj) if type(obj) is not bool else ("true" if obj else "false")
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{name} {text}"


def _bad(expected: str, obj: Any, path: str = "") -> CodecError:
    return CodecError(f"expected {expected}, got {_describe(obj)}", path)


def _missing(expected: str, key: str) -> CodecError:
    return CodecError(f"expected {expected}, but the field is missing", key)


def _obj(obj: Any, what: str) -> dict[str, Any]:
    if type(obj) is not dict:
        raise _bad(what, obj)
    return obj


def _field(d: dict[str, Any], key: str, check: Callable[[Any], Any], what: str) -> Any:
    """``check(d[key])`` with the key prepended to any error; a missing key is an error."""
    if key not in d:
        raise _missing(what, key)
    try:
        return check(d[key])
    except CodecError as e:
        raise e.within(key) from None


def _opt(d: dict[str, Any], key: str, check: Callable[[Any], Any]) -> Any:
    v = d.get(key)
    if v is None:
        return None
    try:
        return check(v)
    except CodecError as e:
        raise e.within(key) from None


def _str(obj: Any) -> str:
    if type(obj) is not str:
        raise _bad("a string", obj)
    return obj


def _u64(obj: Any) -> int:
    if type(obj) is not int or not 0 <= obj <= U64_MAX:
        raise _bad("an unsigned 64-bit integer", obj)
    return obj


def _i64(obj: Any) -> int:
    if type(obj) is not int or not I64_MIN <= obj <= I64_MAX:
        raise _bad("a signed 64-bit integer", obj)
    return obj


def _bool(obj: Any) -> bool:
    if type(obj) is not bool:
        raise _bad("a boolean", obj)
    return obj


def _tagged(obj: Any, what: str) -> tuple[str, Any]:
    if type(obj) is not dict or len(obj) != 1:
        raise _bad(what, obj)
    for item in obj.items():
        return item
    raise AssertionError  # pragma: no cover


def _list_of(obj: Any, check: Callable[[Any], Any], what: str) -> list[Any]:
    if type(obj) is not list:
        raise _bad(f"an array of {what}", obj)
    out = []
    i = 0
    try:
        for x in obj:
            out.append(check(x))
            i += 1
    except CodecError as e:
        raise e.within(f"[{i}]") from None
    return out


# ------------------------------------------------------------------ scalars


def decode_entity_id(obj: Any) -> EntityId:
    """``{"typ": "User", "id": 123}``."""
    if type(obj) is not dict:
        raise _bad('an EntityId {"typ": string, "id": integer}', obj)
    typ = obj.get("typ")
    n = obj.get("id")
    if type(typ) is not str:
        raise _missing("a string", "typ") if "typ" not in obj else _bad("a string", typ, "typ")
    if type(n) is not int or not 0 <= n <= U64_MAX:
        raise _missing("an integer", "id") if "id" not in obj else _bad("an unsigned 64-bit integer", n, "id")
    return EntityId(typ, n)


def encode_entity_id(e: EntityId) -> dict[str, Any]:
    return {"typ": e.typ, "id": e.id}


def _opt_eid(obj: Any) -> EntityId | None:
    return None if obj is None else decode_entity_id(obj)


def _enc_opt_eid(e: EntityId | None) -> dict[str, Any] | None:
    return None if e is None else {"typ": e.typ, "id": e.id}


def decode_timestamp(obj: Any) -> Timestamp:
    """``{"secs_since_epoch": S, "nanos_since_epoch": N}``."""
    if type(obj) is not dict:
        raise _bad('a Timestamp {"secs_since_epoch": integer, "nanos_since_epoch": integer}', obj)
    s = obj.get("secs_since_epoch")
    n = obj.get("nanos_since_epoch")
    if type(s) is not int or not 0 <= s <= U64_MAX:
        if "secs_since_epoch" not in obj:
            raise _missing("an integer", "secs_since_epoch")
        raise _bad("an unsigned 64-bit integer", s, "secs_since_epoch")
    if type(n) is not int or not 0 <= n < NANOS_PER_SEC:
        if "nanos_since_epoch" not in obj:
            raise _missing("an integer", "nanos_since_epoch")
        raise _bad("an integer in [0, 999999999]", n, "nanos_since_epoch")
    return Timestamp(s, n)


def encode_timestamp(t: Timestamp) -> dict[str, Any]:
    return {"secs_since_epoch": t.secs, "nanos_since_epoch": t.nanos}


def _opt_ts(obj: Any) -> Timestamp | None:
    return None if obj is None else decode_timestamp(obj)


def _enc_opt_ts(t: Timestamp | None) -> dict[str, Any] | None:
    return None if t is None else {"secs_since_epoch": t.secs, "nanos_since_epoch": t.nanos}


# -------------------------------------------------------------------- values


def _p_blob(p: Any) -> Value:
    if type(p) is not list:
        raise _bad("an array of bytes (integers 0-255)", p)
    for i, b in enumerate(p):
        if type(b) is not int or not 0 <= b <= 255:
            raise _bad("a byte (integer 0-255)", b, f"[{i}]")
    return make_unchecked(Blob, bytes(p))


def _p_bool(p: Any) -> Value:
    if type(p) is not bool:
        raise _bad("a boolean", p)
    return make_unchecked(Bool, p)


def _p_choice(p: Any) -> Value:
    return make_unchecked(Choice, _i64(p))


def _p_list(p: Any) -> Value:
    return make_unchecked(EntityList, tuple(_list_of(p, decode_entity_id, "EntityIds")))


def _p_ref(p: Any) -> Value:
    return make_unchecked(EntityReference, None if p is None else decode_entity_id(p))


def _p_float(p: Any) -> Value:
    t = type(p)
    if t is float:
        return make_unchecked(Float, p)
    if t is int:
        try:
            f = float(p)
        except OverflowError:
            raise _bad("a finite number", p) from None
        return make_unchecked(Float, f)
    raise _bad("a number", p)


def _p_int(p: Any) -> Value:
    return make_unchecked(Int, _i64(p))


def _p_string(p: Any) -> Value:
    if type(p) is not str:
        raise _bad("a string", p)
    return make_unchecked(String, p)


def _p_ts(p: Any) -> Value:
    return make_unchecked(TimestampValue, decode_timestamp(p))


_VALUE_DEC: dict[str, Callable[[Any], Value]] = {
    "Blob": _p_blob,
    "Bool": _p_bool,
    "Choice": _p_choice,
    "EntityList": _p_list,
    "EntityReference": _p_ref,
    "Float": _p_float,
    "Int": _p_int,
    "String": _p_string,
    "Timestamp": _p_ts,
}
_VALUE_WHAT = "a Value: an object with exactly one key of " + ", ".join(_VALUE_DEC)


def decode_value(obj: Any) -> Value:
    """``{"Int": 42}`` and the other eight variants."""
    if type(obj) is not dict or len(obj) != 1:
        raise _bad(_VALUE_WHAT, obj)
    for tag, p in obj.items():
        dec = _VALUE_DEC.get(tag)
        if dec is None:
            raise CodecError(f"unknown Value variant {tag!r}; expected one of {', '.join(_VALUE_DEC)}")
        try:
            return dec(p)
        except CodecError as e:
            raise e.within(tag) from None
    raise AssertionError  # pragma: no cover


_VALUE_ENC: dict[type, Callable[[Any], dict[str, Any]]] = {
    Blob: lambda v: {"Blob": list(v)},
    Bool: lambda v: {"Bool": v},
    Choice: lambda v: {"Choice": v},
    EntityList: lambda v: {"EntityList": [{"typ": e.typ, "id": e.id} for e in v]},
    EntityReference: lambda v: {"EntityReference": None if v is None else {"typ": v.typ, "id": v.id}},
    Float: lambda v: {"Float": v},
    Int: lambda v: {"Int": v},
    String: lambda v: {"String": v},
    TimestampValue: lambda v: {"Timestamp": {"secs_since_epoch": v.secs, "nanos_since_epoch": v.nanos}},
}


def encode_value(v: Value) -> dict[str, Any]:
    return _VALUE_ENC[v.__class__](v.v)


def _opt_value(obj: Any) -> Value | None:
    return None if obj is None else decode_value(obj)


def _enc_opt_value(v: Value | None) -> dict[str, Any] | None:
    return None if v is None else _VALUE_ENC[v.__class__](v.v)


# ------------------------------------------------------------------ requests

_PUSH = {"Always": PushCondition.Always, "Changes": PushCondition.Changes}
_ADJUST = {"Set": AdjustBehavior.Set, "Add": AdjustBehavior.Add, "Subtract": AdjustBehavior.Subtract}


def _push(obj: Any) -> PushCondition:
    r = _PUSH.get(obj) if type(obj) is str else None
    if r is None:
        raise _bad('"Always" or "Changes"', obj)
    return r


def _adjust(obj: Any) -> AdjustBehavior:
    r = _ADJUST.get(obj) if type(obj) is str else None
    if r is None:
        raise _bad('"Set", "Add" or "Subtract"', obj)
    return r


def _fast_eid(e: Any) -> EntityId | None:
    """The common well-formed EntityId, or None to take the checked path."""
    if type(e) is dict:
        typ = e.get("typ")
        n = e.get("id")
        if type(typ) is str and type(n) is int and 0 <= n <= U64_MAX:
            return EntityId(typ, n)
    return None


def _dec_read(d: Any) -> Read:
    # Fast path: the shape every client sends (nothing to fill in yet).
    if type(d) is dict:
        ft = d.get("field_type")
        if type(ft) is str and d.get("value") is None and d.get("write_time") is None and d.get("writer_id") is None:
            e = _fast_eid(d.get("entity_id"))
            if e is not None:
                return Read(e, ft)
    d = _obj(d, "a Read object")
    return Read(
        _field(d, "entity_id", decode_entity_id, "an EntityId"),
        _field(d, "field_type", _str, "a string"),
        _opt(d, "value", decode_value),
        _opt(d, "write_time", decode_timestamp),
        _opt(d, "writer_id", decode_entity_id),
    )


def _dec_write(d: Any) -> Write:
    # Fast path: well-formed ids, a value, no explicit time / writer.
    if type(d) is dict:
        ft = d.get("field_type")
        e = _fast_eid(d.get("entity_id"))
        pc = d.get("push_condition", "Always")
        ab = d.get("adjust_behavior", "Set")
        if (
            e is not None
            and type(ft) is str
            and type(pc) is str
            and type(ab) is str
            and d.get("write_time") is None
            and d.get("writer_id") is None
        ):
            pcv = _PUSH.get(pc)
            abv = _ADJUST.get(ab)
            v = d.get("value")
            if pcv is not None and abv is not None:
                try:
                    value = None if v is None else decode_value(v)
                except CodecError as err:
                    raise err.within("value") from None
                return Write(e, ft, value, pcv, abv)
    d = _obj(d, "a Write object")
    pc = d.get("push_condition")
    ab = d.get("adjust_behavior")
    return Write(
        _field(d, "entity_id", decode_entity_id, "an EntityId"),
        _field(d, "field_type", _str, "a string"),
        _opt(d, "value", decode_value),
        PushCondition.Always if pc is None else _opt(d, "push_condition", _push),
        AdjustBehavior.Set if ab is None else _opt(d, "adjust_behavior", _adjust),
        _opt(d, "write_time", decode_timestamp),
        _opt(d, "writer_id", decode_entity_id),
    )


def decode_request(obj: Any) -> Read | Write:
    """``{"Read": {...}}`` or ``{"Write": {...}}``."""
    tag, body = _tagged(obj, 'a Request: {"Read": {...}} or {"Write": {...}}')
    try:
        if tag == "Read":
            return _dec_read(body)
        if tag == "Write":
            return _dec_write(body)
    except CodecError as e:
        raise e.within(tag) from None
    raise CodecError(f'unknown Request variant {tag!r}; expected "Read" or "Write"')


def encode_request(r: Read | Write) -> dict[str, Any]:
    e = r.entity_id
    if r.__class__ is Read:
        return {
            "Read": {
                "entity_id": {"typ": e.typ, "id": e.id},
                "field_type": r.field_type,
                "value": _enc_opt_value(r.value),
                "write_time": _enc_opt_ts(r.write_time),
                "writer_id": _enc_opt_eid(r.writer_id),
            }
        }
    return {
        "Write": {
            "entity_id": {"typ": e.typ, "id": e.id},
            "field_type": r.field_type,
            "value": _enc_opt_value(r.value),
            "push_condition": r.push_condition.value,  # type: ignore[union-attr]
            "adjust_behavior": r.adjust_behavior.value,  # type: ignore[union-attr]
            "write_time": _enc_opt_ts(r.write_time),
            "writer_id": _enc_opt_eid(r.writer_id),
        }
    }


# ------------------------------------------------------------------- schemas


def _schema_value(raw: Any, path: str, choices: tuple[str, ...] | None) -> Value:
    try:
        return decode_value(raw)
    except CodecError as e:
        raise SchemaInputError(join_path(path, e.path), e.reason) from None


def _schema_eid(raw: Any, path: str) -> EntityId:
    try:
        return decode_entity_id(raw)
    except CodecError as e:
        raise SchemaInputError(join_path(path, e.path), e.reason) from None


def decode_field_schema(obj: Any, key: str | None = None) -> FieldSchema:
    """A FieldSchema; ``key`` (its name in the ``fields`` map) fills in a missing ``field_type``.
    Read by the config file's rules (:mod:`qcore.store.schema_input`): unknown keys are errors."""
    try:
        return read_field_schema(key, obj, _schema_value, _schema_eid, "")
    except SchemaInputError as e:
        raise CodecError(e.reason, e.path) from None


def encode_field_schema(fs: FieldSchema) -> dict[str, Any]:
    return {
        "field_type": fs.field_type,
        "default_value": encode_value(fs.default_value),
        "rank": fs.rank,
        "read_permission": _enc_opt_eid(fs.read_permission),
        "write_permission": _enc_opt_eid(fs.write_permission),
        "choices": None if fs.choices is None else list(fs.choices),
    }


def decode_entity_schema(obj: Any) -> EntitySchema:
    """``{"entity_type": "User", "inherit": "Object" | null, "fields": {...}}``; unknown keys are errors."""
    try:
        return read_entity_schema(obj, _schema_value, _schema_eid)
    except SchemaInputError as e:
        raise CodecError(e.reason, e.path) from None


def encode_entity_schema(s: EntitySchema) -> dict[str, Any]:
    return {
        "entity_type": s.entity_type,
        "inherit": s.inherit,
        "fields": {k: encode_field_schema(fs) for k, fs in s.fields.items()},
    }


def decode_page_opts(obj: Any) -> PageOpts | None:
    """``{"limit": n, "cursor": string | null}`` or null."""
    if obj is None:
        return None
    d = _obj(obj, 'page options {"limit": integer, "cursor": string | null}')
    return PageOpts(_field(d, "limit", _u64, "an integer"), _opt(d, "cursor", _str))


def encode_page_opts(p: PageOpts | None) -> dict[str, Any] | None:
    return None if p is None else {"limit": p.limit, "cursor": p.cursor}


# --------------------------------------------------------------- load config


def _dec_tree_node(obj: Any) -> TreeNode:
    d = _obj(obj, "a tree node object")
    attrs_raw = d.get("attributes")
    attrs = {}
    if attrs_raw is not None:
        a = _obj(attrs_raw, "an object mapping field names to Values")
        for k, v in a.items():
            try:
                attrs[k] = decode_value(v)
            except CodecError as e:
                raise e.within(k).within("attributes") from None
    children = _opt(d, "children", lambda c: _list_of(c, _dec_tree_node, "tree nodes")) or []
    return TreeNode(_field(d, "entity_type", _str, "a string"), _opt(d, "name", _str) or "", attrs, children)


def _enc_tree_node(n: TreeNode) -> dict[str, Any]:
    return {
        "entity_type": n.entity_type,
        "name": n.name,
        "attributes": {k: encode_value(v) for k, v in n.attributes.items()},
        "children": [_enc_tree_node(c) for c in n.children],
    }


def decode_load_config(obj: Any) -> LoadConfig:
    """``{"schemas": [EntitySchema...], "tree": [node...]}``."""
    d = _obj(obj, 'a LoadConfig object {"schemas": [...], "tree": [...]}')
    schemas = _opt(d, "schemas", lambda s: _list_of(s, decode_entity_schema, "EntitySchemas")) or []
    try:
        tree = _opt(d, "tree", lambda t: _list_of(t, _dec_tree_node, "tree nodes")) or []
    except RecursionError:
        raise CodecError("the tree is nested too deeply", "tree") from None
    return LoadConfig(schemas, tree)


def encode_load_config(c: LoadConfig) -> dict[str, Any]:
    return {"schemas": [encode_entity_schema(s) for s in c.schemas], "tree": [_enc_tree_node(n) for n in c.tree]}


# ------------------------------------------------------------------ commands


def _dec_update(d: dict[str, Any]) -> UpdateEntity:
    return UpdateEntity(_field(d, "request", lambda r: _list_of(r, decode_request, "Requests"), "an array"))


_CMD_DEC: dict[str, Callable[[dict[str, Any]], Any]] = {
    "UpdateEntity": _dec_update,
    "CreateEntity": lambda d: CreateEntity(
        _field(d, "entity_type", _str, "a string"),
        _opt(d, "parent_id", decode_entity_id),
        _field(d, "name", _str, "a string"),
    ),
    "DeleteEntity": lambda d: DeleteEntity(_field(d, "entity_id", decode_entity_id, "an EntityId")),
    "SetSchema": lambda d: SetSchema(_field(d, "entity_schema", decode_entity_schema, "an EntitySchema")),
    "GetSchema": lambda d: GetSchema(_field(d, "entity_type", _str, "a string")),
    "GetCompleteSchema": lambda d: GetCompleteSchema(_field(d, "entity_type", _str, "a string")),
    "FindEntities": lambda d: FindEntities(
        _field(d, "entity_type", _str, "a string"), _opt(d, "page_opts", decode_page_opts)
    ),
    "GetEntityTypes": lambda d: GetEntityTypes(_opt(d, "page_opts", decode_page_opts)),
    "GetChildren": lambda d: GetChildren(
        _field(d, "entity_id", decode_entity_id, "an EntityId"), _opt(d, "page_opts", decode_page_opts)
    ),
    "EntityExists": lambda d: EntityExists(_field(d, "entity_id", decode_entity_id, "an EntityId")),
    "FieldExists": lambda d: FieldExists(
        _field(d, "entity_type", _str, "a string"), _field(d, "field_type", _str, "a string")
    ),
}
_CMD_WHAT = "a CommandRequest: an object with exactly one key of " + ", ".join(_CMD_DEC)


def decode_command_request(obj: Any, path: str = "request", allow_internal: bool = False) -> Any:
    """Decode a ``CommandRequest``. ``LoadConfig`` is internal (it comes only
    from the Init bootstrap entry) and is refused unless ``allow_internal``."""
    # Fast path for the hot command (every node decodes every logged one):
    # an UpdateEntity batch of well-formed requests. Any problem falls through
    # to the checked path below, which then reports it with its full path.
    if type(obj) is dict and len(obj) == 1:
        body = obj.get("UpdateEntity")
        if type(body) is dict:
            reqs = body.get("request")
            if type(reqs) is list:
                out: list[Read | Write] = []
                try:
                    for r in reqs:
                        if type(r) is not dict or len(r) != 1:
                            break
                        rd = r.get("Read")
                        if rd is not None:
                            out.append(_dec_read(rd))
                            continue
                        wr = r.get("Write")
                        if wr is None:
                            break
                        out.append(_dec_write(wr))
                    else:
                        return UpdateEntity(out)
                except CodecError:
                    pass
    try:
        if type(obj) is not dict or len(obj) != 1:
            raise _bad(_CMD_WHAT, obj)
        for tag, body in obj.items():
            dec = _CMD_DEC.get(tag)
            if dec is None:
                if tag == "LoadConfig" and allow_internal:
                    try:
                        return decode_load_config(body)
                    except CodecError as e:
                        raise e.within(tag) from None
                raise CodecError(f"unknown CommandRequest variant {tag!r}; expected one of {', '.join(_CMD_DEC)}")
            try:
                if type(body) is not dict:
                    raise _bad(f"a {tag} object", body)
                return dec(body)
            except CodecError as e:
                raise e.within(tag) from None
        raise AssertionError  # pragma: no cover
    except CodecError as e:
        raise e.within(path) if path else e from None


def encode_command_request(cmd: Any) -> dict[str, Any]:
    c = cmd.__class__
    if c is UpdateEntity:
        return {"UpdateEntity": {"request": [encode_request(r) for r in cmd.request]}}
    if c is CreateEntity:
        return {
            "CreateEntity": {
                "entity_type": cmd.entity_type,
                "parent_id": _enc_opt_eid(cmd.parent_id),
                "name": cmd.name,
            }
        }
    if c is DeleteEntity:
        return {"DeleteEntity": {"entity_id": encode_entity_id(cmd.entity_id)}}
    if c is SetSchema:
        return {"SetSchema": {"entity_schema": encode_entity_schema(cmd.entity_schema)}}
    if c is GetSchema:
        return {"GetSchema": {"entity_type": cmd.entity_type}}
    if c is GetCompleteSchema:
        return {"GetCompleteSchema": {"entity_type": cmd.entity_type}}
    if c is FindEntities:
        return {"FindEntities": {"entity_type": cmd.entity_type, "page_opts": encode_page_opts(cmd.page_opts)}}
    if c is GetEntityTypes:
        return {"GetEntityTypes": {"page_opts": encode_page_opts(cmd.page_opts)}}
    if c is GetChildren:
        return {"GetChildren": {"entity_id": encode_entity_id(cmd.entity_id), "page_opts": encode_page_opts(cmd.page_opts)}}
    if c is EntityExists:
        return {"EntityExists": {"entity_id": encode_entity_id(cmd.entity_id)}}
    if c is FieldExists:
        return {"FieldExists": {"entity_type": cmd.entity_type, "field_type": cmd.field_type}}
    if c is LoadConfig:
        return {"LoadConfig": encode_load_config(cmd)}
    raise TypeError(f"not a CommandRequest: {cmd!r}")


# ----------------------------------------------------------------- responses


def _enc_page(p: PageResult | None, ids: bool) -> dict[str, Any] | None:
    if p is None:
        return None
    items = [encode_entity_id(e) for e in p.items] if ids else list(p.items)
    return {"items": items, "total": p.total, "next_cursor": p.next_cursor}


#: The ``kind`` beside a command response's ``error`` (qcore.protocol.errors): the state machine
#: executed the command in log order and refused it; a final answer.
COMMAND_ERROR_KIND = "rejected"


def encode_command_response(resp: Any) -> dict[str, Any]:
    out = _encode_command_response(resp)
    if getattr(resp, "error", None) is not None:
        ((_, body),) = out.items()
        body["kind"] = COMMAND_ERROR_KIND
    return out


#: A refused command's response, by command type (encode_refusal).
_REFUSED_SHAPES: dict[type, Callable[[str], Any]] = {
    UpdateEntity: lambda t: UpdateEntityResponse([], t),
    CreateEntity: lambda t: CreateEntityResponse(None, t),
    DeleteEntity: lambda t: DeleteEntityResponse(t),
    SetSchema: lambda t: SetSchemaResponse(t),
    GetSchema: lambda t: GetSchemaResponse(None, t),
    GetCompleteSchema: lambda t: GetCompleteSchemaResponse(None, t),
    FindEntities: lambda t: FindEntitiesResponse(None, t),
    GetEntityTypes: lambda t: GetEntityTypesResponse(None, t),
    GetChildren: lambda t: GetChildrenResponse(None, t),
    EntityExists: lambda t: EntityExistsResponse(False),
    FieldExists: lambda t: FieldExistsResponse(False),
}


def encode_refusal(cmd: Any, text: str, kind: str) -> dict[str, Any]:
    """The response to `cmd` refused before the store ran it (a permission, SPEC 8.3): its
    response type with ``error`` = `text` and `kind`; the ``*Exists`` answers, which have
    no error of their own, say ``false`` beside it."""
    make = _REFUSED_SHAPES.get(cmd.__class__)
    if make is None:
        raise TypeError(f"not a CommandRequest: {cmd!r}")
    out = _encode_command_response(make(text))
    ((_, body),) = out.items()
    body["error"] = text
    body["kind"] = kind
    return out


def _encode_command_response(resp: Any) -> dict[str, Any]:
    c = resp.__class__
    if c is UpdateEntityResponse:
        return {"UpdateEntity": {"response": [encode_request(r) for r in resp.response], "error": resp.error}}
    if c is CreateEntityResponse:
        return {"CreateEntity": {"response": _enc_opt_eid(resp.response), "error": resp.error}}
    if c is DeleteEntityResponse:
        return {"DeleteEntity": {"error": resp.error}}
    if c is SetSchemaResponse:
        return {"SetSchema": {"error": resp.error}}
    if c is GetSchemaResponse or c is GetCompleteSchemaResponse:
        tag = "GetSchema" if c is GetSchemaResponse else "GetCompleteSchema"
        s = resp.response
        return {tag: {"response": None if s is None else encode_entity_schema(s), "error": resp.error}}
    if c is FindEntitiesResponse:
        return {"FindEntities": {"response": _enc_page(resp.response, True), "error": resp.error}}
    if c is GetEntityTypesResponse:
        return {"GetEntityTypes": {"response": _enc_page(resp.response, False), "error": resp.error}}
    if c is GetChildrenResponse:
        return {"GetChildren": {"response": _enc_page(resp.response, True), "error": resp.error}}
    if c is EntityExistsResponse:
        return {"EntityExists": {"response": resp.response}}
    if c is FieldExistsResponse:
        return {"FieldExists": {"response": resp.response}}
    if c is LoadConfigResponse:
        return {"LoadConfig": {"error": resp.error, "created": resp.created}}
    raise TypeError(f"not a CommandResponse: {resp!r}")


def _err(d: dict[str, Any]) -> str | None:
    err: str | None = _opt(d, "error", _str)
    return err


def _dec_page(obj: Any, item: Callable[[Any], Any], what: str) -> PageResult | None:
    if obj is None:
        return None
    d = _obj(obj, 'a page {"items": [...], "total": integer, "next_cursor": string | null}')
    return PageResult(
        _field(d, "items", lambda x: _list_of(x, item, what), "an array"),
        _field(d, "total", _u64, "an integer"),
        _opt(d, "next_cursor", _str),
    )


_RESP_DEC: dict[str, Callable[[dict[str, Any]], Any]] = {
    "UpdateEntity": lambda d: UpdateEntityResponse(
        _opt(d, "response", lambda r: _list_of(r, decode_request, "Requests")) or [], _err(d)
    ),
    "CreateEntity": lambda d: CreateEntityResponse(_opt(d, "response", decode_entity_id), _err(d)),
    "DeleteEntity": lambda d: DeleteEntityResponse(_err(d)),
    "SetSchema": lambda d: SetSchemaResponse(_err(d)),
    "GetSchema": lambda d: GetSchemaResponse(_opt(d, "response", decode_entity_schema), _err(d)),
    "GetCompleteSchema": lambda d: GetCompleteSchemaResponse(_opt(d, "response", decode_entity_schema), _err(d)),
    "FindEntities": lambda d: FindEntitiesResponse(
        _opt(d, "response", lambda p: _dec_page(p, decode_entity_id, "EntityIds")), _err(d)
    ),
    "GetEntityTypes": lambda d: GetEntityTypesResponse(
        _opt(d, "response", lambda p: _dec_page(p, _str, "strings")), _err(d)
    ),
    "GetChildren": lambda d: GetChildrenResponse(
        _opt(d, "response", lambda p: _dec_page(p, decode_entity_id, "EntityIds")), _err(d)
    ),
    "EntityExists": lambda d: EntityExistsResponse(_field(d, "response", _bool, "a boolean")),
    "FieldExists": lambda d: FieldExistsResponse(_field(d, "response", _bool, "a boolean")),
    "LoadConfig": lambda d: LoadConfigResponse(_err(d), _opt(d, "created", _u64) or 0),
}


def decode_command_response(obj: Any, path: str = "response") -> Any:
    try:
        tag, body = _tagged(obj, "a CommandResponse: an object with exactly one key of " + ", ".join(_RESP_DEC))
        dec = _RESP_DEC.get(tag)
        if dec is None:
            raise CodecError(f"unknown CommandResponse variant {tag!r}")
        try:
            return dec(_obj(body, f"a {tag} object"))
        except CodecError as e:
            raise e.within(tag) from None
    except CodecError as e:
        raise e.within(path) if path else e from None


# ------------------------------------------------------------- notifications


def decode_notify_config(obj: Any) -> NotifyConfig:
    """``{"EntityId": {entity_id, field_type, trigger_on_change, context}}`` or
    ``{"EntityType": {entity_type, ...}}``."""
    tag, body = _tagged(obj, 'a NotifyConfig: {"EntityId": {...}} or {"EntityType": {...}}')
    try:
        d = _obj(body, f"a {tag} object")
        ft = _field(d, "field_type", _str, "a string")
        toc = _opt(d, "trigger_on_change", _bool) or False
        ctx = tuple(_opt(d, "context", lambda c: _list_of(c, _str, "field paths")) or ())
        if tag == "EntityId":
            return NotifyConfigEntityId(_field(d, "entity_id", decode_entity_id, "an EntityId"), ft, toc, ctx)
        if tag == "EntityType":
            return NotifyConfigEntityType(_field(d, "entity_type", _str, "a string"), ft, toc, ctx)
    except CodecError as e:
        raise e.within(tag) from None
    raise CodecError(f'unknown NotifyConfig variant {tag!r}; expected "EntityId" or "EntityType"')


def encode_notify_config(c: NotifyConfig) -> dict[str, Any]:
    if isinstance(c, NotifyConfigEntityId):
        return {
            "EntityId": {
                "entity_id": encode_entity_id(c.entity_id),
                "field_type": c.field_type,
                "trigger_on_change": c.trigger_on_change,
                "context": list(c.context),
            }
        }
    if isinstance(c, NotifyConfigEntityType):
        return {
            "EntityType": {
                "entity_type": c.entity_type,
                "field_type": c.field_type,
                "trigger_on_change": c.trigger_on_change,
                "context": list(c.context),
            }
        }
    raise TypeError(f"not a NotifyConfig: {c!r}")


def _ctx_map(obj: Any) -> dict[str, Value | None]:
    d = _obj(obj, "an object mapping field paths to Values or null")
    out: dict[str, Value | None] = {}
    for k, v in d.items():
        try:
            out[k] = None if v is None else decode_value(v)
        except CodecError as e:
            raise e.within(k) from None
    return out


def decode_notification(obj: Any) -> Notification:
    """The inner ``notification`` object of a pushed ``Notification`` message."""
    d = _obj(obj, "a Notification object")
    return Notification(
        _field(d, "entity_id", decode_entity_id, "an EntityId"),
        _field(d, "field_type", _str, "a string"),
        _field(d, "current_value", decode_value, "a Value"),
        _field(d, "previous_value", decode_value, "a Value"),
        _field(d, "write_time", decode_timestamp, "a Timestamp"),
        _opt(d, "writer_id", decode_entity_id),
        _opt(d, "context", _ctx_map) or {},
        _opt(d, "log_index", _u64) or 0,
    )


def encode_notification(n: Notification) -> dict[str, Any]:
    return {
        "entity_id": encode_entity_id(n.entity_id),
        "field_type": n.field_type,
        "current_value": encode_value(n.current_value),
        "previous_value": encode_value(n.previous_value),
        "write_time": encode_timestamp(n.write_time),
        "writer_id": _enc_opt_eid(n.writer_id),
        "context": {k: _enc_opt_value(v) for k, v in n.context.items()},
        "log_index": n.log_index,
    }
