"""The WebSocket message envelopes: one dataclass per message type.

Every frame is one JSON object with exactly one key, the message type, whose
value holds the message's fields — serde's default ("externally tagged") enum
encoding, which the seed shows::

    {"Perform": {"id": "req-127", "request": {...}}}

This module only knows the envelopes. Payloads that have their own grammar —
a ``CommandRequest``/``CommandResponse`` (:mod:`qcore.protocol.values`), a Raft
message (:mod:`qcore.protocol.raft_codec`), a notification config — stay raw
JSON values here, so that the envelope can be decoded once, quickly, on every
frame and routed before anyone pays for the payload.

Decoding rules (``docs/protocol.md`` is the user-facing version):

* ``id`` may be a string or an integer; it is echoed back unchanged.
* Unknown fields inside a message are ignored (as serde does), so that nodes of
  neighbouring versions can talk; unknown message *types* are errors.
* Every error is a :class:`ProtocolError` whose text names the message type and
  field (``"Perform.id: expected string or integer, got boolean"``) and which
  carries the request id whenever it can be recovered, so that the server can
  answer ``{"Error": {"id": <that id>, ...}}``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias, Union

import orjson

__all__ = [
    "ProtocolError",
    "Message",
    "RequestId",
    "MESSAGE_TYPES",
    "RESPONSE_TYPES",
    "decode_message",
    "encode_message",
    "ok",
    "err",
    "INIT_OK",
    "result_of",
    "new_id",
    "Init",
    "InitResponse",
    "AddLearner",
    "AddLearnerResponse",
    "ChangeMembership",
    "ChangeMembershipResponse",
    "RemoveNode",
    "RemoveNodeResponse",
    "GetMetrics",
    "GetMetricsResponse",
    "Perform",
    "PerformResponse",
    "RaftVote",
    "RaftVoteResponse",
    "RaftAppend",
    "RaftAppendResponse",
    "RaftSnapshot",
    "RaftSnapshotResponse",
    "RaftForward",
    "RaftForwardResponse",
    "PeerAuth",
    "PeerAuthResponse",
    "RegisterNotification",
    "RegisterNotificationResponse",
    "UnregisterNotification",
    "UnregisterNotificationResponse",
    "Notification",
    "Error",
]

#: A request id as chosen by the sender: JSON string or integer.
RequestId: TypeAlias = "str | int"

#: The success value of ``InitResponse`` — exactly the string, as in the seed.
INIT_OK = "Ok"


class ProtocolError(ValueError):
    """A frame that is not a well-formed message.

    ``request_id`` is the id of the offending request when it could be
    recovered (the frame was an object whose single value had an ``id``), so
    that the reply can be matched to the request; otherwise ``None``.
    ``tag`` is the frame's message type when it is a known one (its body is
    what is wrong); otherwise ``None``.
    """

    def __init__(self, message: str, request_id: str | int | float | None = None, tag: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.tag = tag


def new_id() -> str:
    """A fresh request id (UUID4 text): unique without coordination."""
    return str(uuid.uuid4())


_NO_VALUE: Any = object()


def ok(value: Any = _NO_VALUE) -> Any:
    """The success arm of a response union.

    ``ok()`` is the bare string ``"Ok"`` (the seed's ``InitResponse``);
    ``ok(x)`` is ``{"Ok": x}`` (every other ``*Response``).
    """
    if value is _NO_VALUE:
        return INIT_OK
    return {"Ok": value}


def err(text: str) -> dict[str, str]:
    """The failure arm of a response union: ``{"Err": text}``."""
    return {"Err": text}


def result_of(response: Any) -> tuple[bool, Any]:
    """Split a response union into ``(True, value)`` or ``(False, error text)``.

    ``"Ok"`` gives ``(True, None)``. Anything that is not a valid union gives
    ``(False, <description>)`` rather than raising: a reply we cannot read is
    a failure to the caller.
    """
    if response == INIT_OK:
        return True, None
    if type(response) is dict and len(response) == 1:
        if "Ok" in response:
            return True, response["Ok"]
        if "Err" in response:
            return False, response["Err"]
    return False, f"malformed response: {response!r}"


# --------------------------------------------------------------------------
# Field checkers. Each takes the raw JSON value and returns the value to store
# or raises _Bad(expected) — the caller adds "<Type>.<field>" and what it got.


class _Bad(Exception):
    __slots__ = ("expected", "path", "got")

    def __init__(self, expected: str, got: Any, path: str = "") -> None:
        self.expected = expected
        self.got = got
        self.path = path


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _id(v: Any) -> str | int:
    t = type(v)
    if t is str or t is int:
        return v  # type: ignore[no-any-return]
    raise _Bad("string or integer", v)


def _error_id(v: Any) -> str | int | float:
    # An Error echoes whatever id could be recovered from a bad frame, even a number like 1.5.
    t = type(v)
    if t is str or t is int or t is float:
        return v  # type: ignore[no-any-return]
    raise _Bad("string or number", v)


def _str(v: Any) -> str:
    if type(v) is str:
        return v
    raise _Bad("string", v)


def _u64(v: Any) -> int:
    # orjson parses integers in [-2**63, 2**64) as int, anything beyond as float.
    if type(v) is int and v >= 0:
        return v
    raise _Bad("unsigned integer", v)


def _opt_u64(v: Any) -> int | None:
    return None if v is None else _u64(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _bool(v: Any) -> bool:
    if v is True or v is False:
        return v
    raise _Bad("boolean", v)


def _object(v: Any) -> dict[str, Any]:
    if type(v) is dict:
        return v
    raise _Bad("object", v)


def _any(v: Any) -> Any:
    return v


def _token(v: Any) -> str | int:
    t = type(v)
    if t is str or t is int:
        return v  # type: ignore[no-any-return]
    raise _Bad("string or integer", v)


def _result(v: Any) -> Any:
    """A response union: ``"Ok"``, ``{"Ok": x}`` or ``{"Err": "text"}``."""
    if v == INIT_OK:
        return v
    if type(v) is dict and len(v) == 1:
        if "Ok" in v:
            return v
        if "Err" in v:
            if type(v["Err"]) is not str:
                raise _Bad("string", v["Err"], ".Err")
            return v
    raise _Bad('"Ok", {"Ok": ...} or {"Err": "..."}', v)


def _nodes(v: Any) -> list[tuple[int, str]]:
    if type(v) is not list:
        raise _Bad("array of [node_id, address] pairs", v)
    out: list[tuple[int, str]] = []
    for i, pair in enumerate(v):
        if type(pair) is not list or len(pair) != 2:
            raise _Bad("[node_id, address] pair", pair, f"[{i}]")
        try:
            node_id = _u64(pair[0])
        except _Bad as e:
            e.path = f"[{i}][0]"
            raise
        try:
            addr = _str(pair[1])
        except _Bad as e:
            e.path = f"[{i}][1]"
            raise
        out.append((node_id, addr))
    return out


def _u64_list(v: Any) -> list[int]:
    if type(v) is not list:
        raise _Bad("array of node ids", v)
    for i, x in enumerate(v):
        if type(x) is not int or x < 0:
            raise _Bad("unsigned integer", x, f"[{i}]")
    return v


# A field: (name, checker, default). default is _REQUIRED for required fields.
_REQUIRED: Any = object()
_Field = tuple[str, Callable[[Any], Any], Any]
# A reply whose ``response`` is a union, and why it failed (qcore.protocol.errors).
_UNION_FIELDS: tuple[_Field, ...] = (("id", _id, _REQUIRED), ("response", _result, _REQUIRED), ("kind", _opt_str, None))


# --------------------------------------------------------------------------
# The messages. FIELDS drives decoding; OMIT lists optional fields left out of
# the encoded frame while they hold their default, so frames stay exactly as
# the seed shows them.


@dataclasses.dataclass(slots=True)
class Init:
    """Initialise a cluster: ``nodes=[]`` makes a single-node cluster of the receiver;
    ``admin_password`` starts it with users on (SPEC 8.3)."""

    TAG: ClassVar[str] = "Init"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED), ("nodes", _nodes, _REQUIRED), ("admin_password", _opt_str, None),
    )
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("admin_password", None),)
    id: str | int
    nodes: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    # SPEC 8.3: start with user admin (role admin) and users on; hashed before anything is proposed.
    admin_password: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(slots=True)
class InitResponse:
    """``response`` is ``"Ok"`` or ``{"Err": text}``."""

    TAG: ClassVar[str] = "InitResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class AddLearner:
    """Add a non-voting member; answered once it has caught up."""

    TAG: ClassVar[str] = "AddLearner"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED),
        ("node_id", _u64, _REQUIRED),
        ("node_addr", _str, _REQUIRED),
    )
    id: str | int
    node_id: int
    node_addr: str


@dataclasses.dataclass(slots=True)
class AddLearnerResponse:
    TAG: ClassVar[str] = "AddLearnerResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class ChangeMembership:
    """Set the voter set. ``retain``: keep removed voters as learners (openraft's flag)."""

    TAG: ClassVar[str] = "ChangeMembership"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED),
        ("members", _u64_list, _REQUIRED),
        ("retain", _bool, False),
    )
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("retain", False),)
    id: str | int
    members: list[int]
    retain: bool = False


@dataclasses.dataclass(slots=True)
class ChangeMembershipResponse:
    TAG: ClassVar[str] = "ChangeMembershipResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class RemoveNode:
    """Take a node out of the configuration, voter or learner (etcd's ``member remove``)."""

    TAG: ClassVar[str] = "RemoveNode"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED),
        ("node_id", _u64, _REQUIRED),
    )
    id: str | int
    node_id: int


@dataclasses.dataclass(slots=True)
class RemoveNodeResponse:
    TAG: ClassVar[str] = "RemoveNodeResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class GetMetrics:
    TAG: ClassVar[str] = "GetMetrics"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED),)
    id: str | int


@dataclasses.dataclass(slots=True)
class GetMetricsResponse:
    """``response`` is the node's metrics object (openraft ``RaftMetrics`` names)."""

    TAG: ClassVar[str] = "GetMetricsResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("response", _object, _REQUIRED))
    id: str | int
    response: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Perform:
    """``request`` is a raw ``CommandRequest`` (decoded by :mod:`qcore.protocol.values`)."""

    TAG: ClassVar[str] = "Perform"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class PerformResponse:
    """``response`` is a raw ``CommandResponse``."""

    TAG: ClassVar[str] = "PerformResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("response", _object, _REQUIRED))
    id: str | int
    response: dict[str, Any]


@dataclasses.dataclass(slots=True)
class RaftVote:
    """A peer's vote request; ``request`` is decoded by :mod:`qcore.protocol.raft_codec`."""

    TAG: ClassVar[str] = "RaftVote"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class RaftVoteResponse:
    TAG: ClassVar[str] = "RaftVoteResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("response", _result, _REQUIRED))
    id: str | int
    response: Any


@dataclasses.dataclass(slots=True)
class RaftAppend:
    TAG: ClassVar[str] = "RaftAppend"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class RaftAppendResponse:
    TAG: ClassVar[str] = "RaftAppendResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("response", _result, _REQUIRED))
    id: str | int
    response: Any


@dataclasses.dataclass(slots=True)
class RaftSnapshot:
    TAG: ClassVar[str] = "RaftSnapshot"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class RaftSnapshotResponse:
    TAG: ClassVar[str] = "RaftSnapshotResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class RaftForward:
    """A follower's batch of writes for the leader; ``request`` is decoded by
    :mod:`qcore.protocol.raft_codec` (``ForwardBatch``)."""

    TAG: ClassVar[str] = "RaftForward"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class RaftForwardResponse:
    """Sent only when the leader did not take the batch: ``{"Ok": <BatchRefused, "taken": false>}``."""

    TAG: ClassVar[str] = "RaftForwardResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("response", _result, _REQUIRED))
    id: str | int
    response: Any


@dataclasses.dataclass(slots=True)
class PeerAuth:
    """One step of the peer handshake (SPEC 8.2); ``request`` is ``{"Hello": ...}``
    or ``{"Proof": ...}``, read by :mod:`qcore.node.peer_auth`."""

    TAG: ClassVar[str] = "PeerAuth"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("request", _object, _REQUIRED))
    id: str | int
    request: dict[str, Any]


@dataclasses.dataclass(slots=True)
class PeerAuthResponse:
    """``{"Ok": {"Challenge": ...}}``, ``{"Ok": "Authenticated"}`` or ``{"Err": ...}``."""

    TAG: ClassVar[str] = "PeerAuthResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class RegisterNotification:
    """Subscribe this connection; ``from_index`` replays retained changes from that log index."""

    TAG: ClassVar[str] = "RegisterNotification"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED),
        ("config", _object, _REQUIRED),
        ("from_index", _opt_u64, None),
    )
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("from_index", None),)
    id: str | int
    config: dict[str, Any]
    from_index: int | None = None


@dataclasses.dataclass(slots=True)
class RegisterNotificationResponse:
    """``response`` is ``{"Ok": token}`` or ``{"Err": text}``."""

    TAG: ClassVar[str] = "RegisterNotificationResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class UnregisterNotification:
    TAG: ClassVar[str] = "UnregisterNotification"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("token", _token, _REQUIRED))
    id: str | int
    token: str | int


@dataclasses.dataclass(slots=True)
class UnregisterNotificationResponse:
    TAG: ClassVar[str] = "UnregisterNotificationResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class Notification:
    """A server push; it answers no request, so it has a ``token`` instead of an ``id``."""

    TAG: ClassVar[str] = "Notification"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("token", _token, _REQUIRED), ("notification", _object, _REQUIRED))
    token: str | int
    notification: dict[str, Any]


@dataclasses.dataclass(slots=True)
class Error:
    """A request that could not be served at all (bad frame, unknown type, no leader...).

    ``id`` is the request's id when it could be recovered, else a fresh UUID.
    Build it with :func:`qcore.protocol.errors.error`.
    """

    TAG: ClassVar[str] = "Error"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _error_id, _REQUIRED),
        ("error", _str, _REQUIRED),
        ("kind", _opt_str, None),
        ("leader_id", _opt_u64, None),
        ("leader_addr", _opt_str, None),
    )
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None), ("leader_id", None), ("leader_addr", None))
    id: str | int | float
    error: str
    kind: str | None = None  # why, as qcore.protocol.errors.Kind (the node always sends one)
    leader_id: int | None = None  # with kind "not_leader": where to go, when known
    leader_addr: str | None = None


Message: TypeAlias = Union[
    Init,
    InitResponse,
    AddLearner,
    AddLearnerResponse,
    ChangeMembership,
    ChangeMembershipResponse,
    RemoveNode,
    RemoveNodeResponse,
    GetMetrics,
    GetMetricsResponse,
    Perform,
    PerformResponse,
    RaftVote,
    RaftVoteResponse,
    RaftAppend,
    RaftAppendResponse,
    RaftSnapshot,
    RaftSnapshotResponse,
    RaftForward,
    RaftForwardResponse,
    PeerAuth,
    PeerAuthResponse,
    RegisterNotification,
    RegisterNotificationResponse,
    UnregisterNotification,
    UnregisterNotificationResponse,
    Notification,
    Error,
]

#: Message type name -> class.
MESSAGE_TYPES: dict[str, type[Any]] = {cls.TAG: cls for cls in Message.__args__}  # type: ignore[attr-defined]

#: Request class -> the class of its reply (an ``Error`` may come instead).
RESPONSE_TYPES: dict[type[Any], type[Any]] = {
    Init: InitResponse,
    AddLearner: AddLearnerResponse,
    ChangeMembership: ChangeMembershipResponse,
    RemoveNode: RemoveNodeResponse,
    GetMetrics: GetMetricsResponse,
    Perform: PerformResponse,
    RaftVote: RaftVoteResponse,
    RaftAppend: RaftAppendResponse,
    RaftSnapshot: RaftSnapshotResponse,
    RaftForward: RaftForwardResponse,
    PeerAuth: PeerAuthResponse,
    RegisterNotification: RegisterNotificationResponse,
    UnregisterNotification: UnregisterNotificationResponse,
}


# --------------------------------------------------------------------------
# Codec


def _recover_id(body: Any) -> str | int | float | None:
    if type(body) is dict:
        rid = body.get("id")
        t = type(rid)
        if t is str or t is int or t is float:
            return rid
    return None


def decode_message(data: str | bytes | bytearray | memoryview) -> Message:
    """Parse one frame into its message dataclass, or raise :class:`ProtocolError`."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"invalid JSON: {e}") from None
    if type(frame) is not dict:
        raise ProtocolError(f"expected an object with one message type as its key, got {_json_type(frame)}")
    if len(frame) != 1:
        if not frame:
            raise ProtocolError("expected an object with one message type as its key, got an empty object")
        raise ProtocolError(
            f"expected exactly one message type, got {len(frame)}: {', '.join(sorted(frame))}"
        )
    ((tag, body),) = frame.items()
    cls = MESSAGE_TYPES.get(tag)
    if cls is None:
        raise ProtocolError(f"unknown message type \"{tag}\"", _recover_id(body))
    if type(body) is not dict:
        raise ProtocolError(f"{tag}: expected object, got {_json_type(body)}", tag=tag)
    args = []
    for name, check, default in cls.FIELDS:
        raw = body.get(name, _REQUIRED)
        if raw is _REQUIRED:
            if default is _REQUIRED:
                raise ProtocolError(f"{tag}.{name}: missing field", _recover_id(body), tag)
            args.append(default)
            continue
        try:
            args.append(check(raw))
        except _Bad as e:
            raise ProtocolError(
                f"{tag}.{name}{e.path}: expected {e.expected}, got {_json_type(e.got)}", _recover_id(body), tag
            ) from None
    return cls(*args)  # type: ignore[no-any-return]


_WIRE_FIELDS: dict[type, tuple[str, ...]] = {}


def _wire_fields(cls: type) -> tuple[str, ...]:
    """A message type's fields in definition order, as orjson would write the
    dataclass (it leaves out names starting with ``_``)."""
    names = _WIRE_FIELDS.get(cls)
    if names is None:
        names = _WIRE_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if not f.name.startswith("_"))
    return names


def _to_wire(msg: Any) -> dict[str, Any]:
    body = {name: getattr(msg, name) for name in _wire_fields(type(msg))}
    for name, default in getattr(msg, "OMIT", ()):
        if body[name] == default:
            del body[name]
    return body


def encode_message(msg: Message) -> bytes:
    """Serialise a message as one frame (UTF-8 JSON bytes, sent as a text frame).

    The body is built here, not left to orjson's dataclass support: for a
    slotted dataclass orjson first looks up ``__dict__``, which raises and
    discards an AttributeError on every message (2x slower for a reply)."""
    return orjson.dumps({type(msg).TAG: _to_wire(msg)})


def register(request: type[Any], response: type[Any]) -> None:
    """Add a request type and its reply defined in another module (same codec)."""
    MESSAGE_TYPES[request.TAG] = request
    MESSAGE_TYPES[response.TAG] = response
    RESPONSE_TYPES[request] = response


# Message families kept in modules of their own register themselves here.
from qcore.protocol import ops as _ops  # noqa: E402,F401
from qcore.protocol import auth as _auth  # noqa: E402,F401
