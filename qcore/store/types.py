"""Scalar types of the data model: entity ids, timestamps and field values.

Values are one small class per variant (``Int(5)``, ``String("x")``, ...)
rather than one tagged class, because the store's hottest check — "is this
write the same variant as the field?" — then becomes ``type(a) is type(b)``,
and a value's payload is a plain attribute ``.v``. Every value is immutable
(assignment raises), hashable and comparable; two values are equal only if
they are the same variant *and* carry equal payloads, so ``Int(1) != Float(1.0)``
and ``Bool(True) != Int(1)``.

Payload types (``.v``):

====================  =======================================================
``Blob``              ``bytes``
``Bool``              ``bool``
``Choice``            ``int`` (signed 64-bit): an index into the field's ``choices``
``EntityList``        ``tuple[EntityId, ...]``
``EntityReference``   ``EntityId | None``
``Float``             ``float`` (finite)
``Int``               ``int`` (signed 64-bit)
``String``            ``str``
``TimestampValue``    ``Timestamp`` (wire tag ``"Timestamp"``)
====================  =======================================================

Constructors check their payload (type, 64-bit range, finiteness) so that a
value built by embedded code can always be encoded to JSON and snapshotted.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
NANOS_PER_SEC = 1_000_000_000

_setattr = object.__setattr__


class EntityId:
    """The identity of an entity: its type name and a cluster-wide unique number.

    Ids are unique across all types (one counter), so ``id`` alone identifies
    an entity; ``typ`` is carried so that an id is self-describing on the wire
    (``{"typ": "User", "id": 123}``) and in text (``User$123``).
    Ordering is by ``(typ, id)``.
    """

    __slots__ = ("typ", "id")
    typ: str
    id: int

    def __init__(self, typ: str, id: int) -> None:
        _setattr(self, "typ", typ)
        _setattr(self, "id", id)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("EntityId is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("EntityId is immutable")

    def __eq__(self, other: object) -> bool:
        return (
            other.__class__ is EntityId
            and self.id == other.id
            and self.typ == other.typ
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.id, self.typ))

    def __lt__(self, other: EntityId) -> bool:
        return (self.typ, self.id) < (other.typ, other.id)

    def __le__(self, other: EntityId) -> bool:
        return (self.typ, self.id) <= (other.typ, other.id)

    def __gt__(self, other: EntityId) -> bool:
        return (self.typ, self.id) > (other.typ, other.id)

    def __ge__(self, other: EntityId) -> bool:
        return (self.typ, self.id) >= (other.typ, other.id)

    def __str__(self) -> str:
        return f"{self.typ}${self.id}"

    def __repr__(self) -> str:
        return f"EntityId({self.typ!r}, {self.id})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (EntityId, (self.typ, self.id))

    @staticmethod
    def parse(text: str) -> EntityId:
        """Parse the text form ``Type$123`` (the type may not contain ``$``)."""
        if not isinstance(text, str):
            raise ValueError(f"entity id must be a string like 'User$123', got {type(text).__name__}")
        typ, sep, num = text.rpartition("$")
        if not sep or not typ or "$" in typ or not num.isdigit() or not num.isascii():
            raise ValueError(f"invalid entity id {text!r}: expected 'Type$number', e.g. 'User$123'")
        n = int(num)
        if n > U64_MAX:
            raise ValueError(f"invalid entity id {text!r}: id exceeds the unsigned 64-bit range")
        return EntityId(typ, n)


class Timestamp:
    """A point in time as seconds and nanoseconds since the Unix epoch (UTC).

    Mirrors Rust's ``SystemTime`` serde shape; ``0 <= nanos < 1e9``,
    ``0 <= secs <= 2**64-1``. Ordered and hashable.
    """

    __slots__ = ("secs", "nanos")
    secs: int
    nanos: int

    def __init__(self, secs: int, nanos: int = 0) -> None:
        if type(secs) is not int or not 0 <= secs <= U64_MAX:
            raise ValueError(f"Timestamp secs must be an int in [0, 2^64-1], got {secs!r}")
        if type(nanos) is not int or not 0 <= nanos < NANOS_PER_SEC:
            raise ValueError(f"Timestamp nanos must be an int in [0, 999999999], got {nanos!r}")
        _setattr(self, "secs", secs)
        _setattr(self, "nanos", nanos)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Timestamp is immutable")

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        """Build from integer nanoseconds since the epoch (e.g. ``time.time_ns()``)."""
        return cls(ns // NANOS_PER_SEC, ns % NANOS_PER_SEC)

    def to_ns(self) -> int:
        return self.secs * NANOS_PER_SEC + self.nanos

    def __eq__(self, other: object) -> bool:
        return (
            other.__class__ is Timestamp
            and self.secs == other.secs
            and self.nanos == other.nanos
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.secs, self.nanos))

    def __lt__(self, other: Timestamp) -> bool:
        return (self.secs, self.nanos) < (other.secs, other.nanos)

    def __le__(self, other: Timestamp) -> bool:
        return (self.secs, self.nanos) <= (other.secs, other.nanos)

    def __gt__(self, other: Timestamp) -> bool:
        return (self.secs, self.nanos) > (other.secs, other.nanos)

    def __ge__(self, other: Timestamp) -> bool:
        return (self.secs, self.nanos) >= (other.secs, other.nanos)

    def __repr__(self) -> str:
        return f"Timestamp({self.secs}, {self.nanos})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Timestamp, (self.secs, self.nanos))


class Value:
    """Base class of the nine value variants; ``tag`` is the wire name."""

    __slots__ = ("v",)
    tag: ClassVar[str] = ""
    v: Any

    def __init__(self, v: Any) -> None:  # pragma: no cover - overridden
        _setattr(self, "v", v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self.tag} values are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.tag} values are immutable")

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and other.v == self.v

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.tag, self.v))

    def _key(self) -> tuple[Any, ...]:
        return (self.tag, self.v)

    def __lt__(self, other: Value) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Value) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Value) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Value) -> bool:
        return self._key() >= other._key()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.v!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.v,))


class Blob(Value):
    __slots__ = ()
    tag = "Blob"

    def __init__(self, v: bytes | bytearray | list[int] = b"") -> None:
        if type(v) is not bytes:
            v = bytes(v)
        _setattr(self, "v", v)


class Bool(Value):
    __slots__ = ()
    tag = "Bool"

    def __init__(self, v: bool = False) -> None:
        if type(v) is not bool:
            raise ValueError(f"Bool needs a bool, got {v!r}")
        _setattr(self, "v", v)


class Choice(Value):
    __slots__ = ()
    tag = "Choice"

    def __init__(self, v: int = 0) -> None:
        if type(v) is not int or not I64_MIN <= v <= I64_MAX:
            raise ValueError(f"Choice needs a signed 64-bit int, got {v!r}")
        _setattr(self, "v", v)


class EntityList(Value):
    __slots__ = ()
    tag = "EntityList"

    def __init__(self, v: tuple[EntityId, ...] | list[EntityId] = ()) -> None:
        if type(v) is not tuple:
            v = tuple(v)
        for e in v:
            if e.__class__ is not EntityId:
                raise ValueError(f"EntityList needs EntityIds, got {e!r}")
        _setattr(self, "v", v)

    def _key(self) -> tuple[Any, ...]:
        return (self.tag, tuple((e.typ, e.id) for e in self.v))


class EntityReference(Value):
    __slots__ = ()
    tag = "EntityReference"

    def __init__(self, v: EntityId | None = None) -> None:
        if v is not None and v.__class__ is not EntityId:
            raise ValueError(f"EntityReference needs an EntityId or None, got {v!r}")
        _setattr(self, "v", v)

    def _key(self) -> tuple[Any, ...]:
        v = self.v
        return (self.tag, () if v is None else (v.typ, v.id))


class Float(Value):
    __slots__ = ()
    tag = "Float"

    def __init__(self, v: float = 0.0) -> None:
        if type(v) is not float:
            if type(v) is not int:
                raise ValueError(f"Float needs a number, got {v!r}")
            v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"Float must be finite, got {v!r}")
        _setattr(self, "v", v)


class Int(Value):
    __slots__ = ()
    tag = "Int"

    def __init__(self, v: int = 0) -> None:
        if type(v) is not int or not I64_MIN <= v <= I64_MAX:
            raise ValueError(f"Int needs a signed 64-bit int, got {v!r}")
        _setattr(self, "v", v)


class String(Value):
    __slots__ = ()
    tag = "String"

    def __init__(self, v: str = "") -> None:
        if type(v) is not str:
            raise ValueError(f"String needs a str, got {v!r}")
        _setattr(self, "v", v)


class TimestampValue(Value):
    __slots__ = ()
    tag = "Timestamp"

    def __init__(self, v: Timestamp | None = None) -> None:
        if v is None:
            v = Timestamp(0, 0)
        elif v.__class__ is not Timestamp:
            raise ValueError(f"Timestamp value needs a Timestamp, got {v!r}")
        _setattr(self, "v", v)

    def _key(self) -> tuple[Any, ...]:
        return (self.tag, (self.v.secs, self.v.nanos))


VALUE_CLASSES: dict[str, type[Value]] = {
    c.tag: c
    for c in (Blob, Bool, Choice, EntityList, EntityReference, Float, Int, String, TimestampValue)
}
"""Wire tag -> variant class."""


def timestamp_unchecked(secs: int, nanos: int) -> Timestamp:
    """Build a Timestamp without the constructor's checks (the store uses
    this for times it stored itself)."""
    t = object.__new__(Timestamp)
    _setattr(t, "secs", secs)
    _setattr(t, "nanos", nanos)
    return t


def make_unchecked(cls: type[Value], payload: Any) -> Value:
    """Build a value without the constructor's checks (codec and snapshot use
    this after validating the payload themselves)."""
    obj = object.__new__(cls)
    _setattr(obj, "v", payload)
    return obj
