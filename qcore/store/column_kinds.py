"""The payload storage of each value variant (see :class:`.columns.Column`
for what every column shares). :func:`new_column` picks the kind:

==================  ==========================================================
Int, Choice         ``array('q')``
Float               ``array('d')`` (bit-exact, so ``-0.0`` stays ``-0.0``)
Bool                ``bytearray``
String              UTF-8 in one ``bytearray``, an offset and a length per row
EntityReference     ``array('i')`` type code (0: null) + ``array('Q')`` number
Blob, EntityList,   a ``list`` of payload objects (one shared object for the
Timestamp           default, so an unwritten cell costs one pointer)
Children            nothing: the values are the store's tree (tree.py)
==================  ==========================================================
"""

from __future__ import annotations

from array import array
from itertools import compress
from typing import Any, Callable

from .columns import Column, Names
from .errors import Fail
from .schema import CHILDREN
from .types import (
    Blob,
    Bool,
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    Float,
    Int,
    String,
    TimestampValue,
    Value,
    make_unchecked,
)

_new = object.__new__
_set = object.__setattr__


class _SequenceColumn(Column):
    """Payloads in one indexable sequence, ``vals``; a kind says how to
    build it (``_seq``) and how a stored item reads back (``value``)."""

    __slots__ = ("vals",)
    vals: Any

    def _seq(self, items: list[Any]) -> Any:  # pragma: no cover - every kind overrides
        raise NotImplementedError

    def init(self, rows: int) -> None:
        self.vals = self._seq([self.default.v]) * rows

    def rows(self) -> int:
        return len(self.vals)

    def value(self, row: int) -> Value:
        v = _new(self.cls)
        _set(v, "v", self.vals[row])
        return v

    def put(self, row: int, v: Value) -> None:
        self.vals[row] = v.v

    def payload(self, row: int) -> Any:
        return self.vals[row]

    def set_payload(self, row: int, p: Any) -> None:
        self.vals[row] = p

    def grow(self) -> None:
        self.vals.append(self.default.v)

    def _keep_payloads(self, rows: list[int]) -> None:
        v = self.vals
        self.vals = self._seq([v[r] for r in rows])

    def _clone_payloads(self, into: Any) -> None:
        into.vals = self.vals[:]  # array, bytearray or list of immutable payloads


class ArrayColumn(_SequenceColumn):
    """Payloads in a typed array (Int, Choice; Float below)."""

    __slots__ = ()
    typecode = "q"

    def _seq(self, items: list[Any]) -> Any:
        return array(self.typecode, items)


class FloatColumn(ArrayColumn):
    __slots__ = ()
    typecode = "d"


class BoolColumn(_SequenceColumn):
    """Payloads as 0/1 in a ``bytearray``."""

    __slots__ = ()

    def _seq(self, items: list[Any]) -> Any:
        return bytearray(items)

    def value(self, row: int) -> Value:
        return make_unchecked(Bool, self.vals[row] == 1)

    def payload(self, row: int) -> Any:
        return self.vals[row] == 1


class ObjectColumn(_SequenceColumn):
    """Payloads as Python objects in a list (Blob, EntityList, Timestamp)."""

    __slots__ = ()

    def _seq(self, items: list[Any]) -> Any:
        return items


class StringColumn(Column):
    """String payloads as UTF-8 in one ``bytearray`` per column, with each
    row's offset and length: a string costs its bytes plus twelve, not a
    Python object, and the store's long-lived text does not pin the small-
    object allocator's arenas. Offset 0 means "the column's default" (the
    buffer starts with one unused byte, so no text is stored there). A
    write appends; what it replaced becomes garbage, dropped by
    :meth:`settle` (between commands: undo records hold offsets) once it
    outweighs the text in use.
    """

    __slots__ = ("buf", "off", "ln", "used", "dlen")
    buf: bytearray
    off: array[int]
    ln: array[int]

    _GARBAGE_MIN = 1 << 16

    def init(self, rows: int) -> None:
        self.dlen = len(self.default.v.encode())
        self.buf = bytearray(1)
        self.off = array("Q", [0]) * rows
        self.ln = array("I", [self.dlen]) * rows
        self.used = 0  # bytes of the buffer rows refer to

    def rows(self) -> int:
        return len(self.off)

    def value(self, row: int) -> Value:
        o = self.off[row]
        if o == 0:
            return self.default
        v = _new(String)
        _set(v, "v", self.buf[o : o + self.ln[row]].decode())
        return v

    def payload(self, row: int) -> Any:
        o = self.off[row]
        return self.default.v if o == 0 else self.buf[o : o + self.ln[row]].decode()

    def text(self, row: int) -> bytes | memoryview:
        """The row's UTF-8 bytes (a view into the buffer for stored text)."""
        o = self.off[row]
        return self.default.v.encode() if o == 0 else memoryview(self.buf)[o : o + self.ln[row]]

    def put(self, row: int, v: Value) -> None:
        self.set_payload(row, v.v)

    def set_payload(self, row: int, p: Any) -> None:
        off, ln = self.off, self.ln
        if off[row]:
            self.used -= ln[row]
        if p == self.default.v:  # canonical: a value equal to the default is no text of its own
            off[row] = 0
            ln[row] = self.dlen
            return
        try:
            b = p.encode()
        except UnicodeEncodeError as e:  # lone surrogates: only embedded code can build such a str
            if off[row]:
                self.used += ln[row]
            raise Fail(f"{self.name}: a String must be valid Unicode text ({e.reason} at {e.start})") from None
        buf = self.buf
        off[row] = len(buf)
        ln[row] = n = len(b)
        buf += b
        self.used += n

    def set_default(self, d: Value) -> None:
        """Rows at the old default keep it, as text of their own."""
        texts = [self.payload(r) for r in range(len(self.off))]
        self.default = d
        self.init(0)
        for t in texts:
            self.off.append(0)
            self.ln.append(self.dlen)
            self.set_payload(len(self.off) - 1, t)

    def raw(self, row: int) -> Any:
        return self.off[row], self.ln[row]

    def set_raw(self, row: int, raw: Any) -> None:
        if self.off[row]:
            self.used -= self.ln[row]
        o, n = raw
        if o:
            self.used += n
        self.off[row] = o
        self.ln[row] = n

    def settle(self) -> None:
        garbage = len(self.buf) - 1 - self.used
        if garbage > self._GARBAGE_MIN and garbage > self.used:
            self._repack()

    def _repack(self) -> None:
        """A fresh buffer with only the text rows refer to (in row order);
        O(text in use + rows holding text)."""
        buf, off, ln = memoryview(self.buf), self.off, self.ln
        new = bytearray(1)
        noff = array("Q", off)
        for r in compress(range(len(off)), off):
            o = off[r]
            noff[r] = len(new)
            new += buf[o : o + ln[r]]
        buf.release()
        self.buf, self.off = new, noff
        self.used = len(new) - 1

    def _keep_payloads(self, rows: list[int]) -> None:
        """Keep ``rows`` (table compaction), their text repacked."""
        self.off = array("Q", [self.off[r] for r in rows])
        self.ln = array("I", [self.ln[r] for r in rows])
        self._repack()

    def grow(self) -> None:
        self.off.append(0)
        self.ln.append(self.dlen)

    def _clone_payloads(self, into: Any) -> None:
        into.buf, into.off, into.ln = bytearray(self.buf), self.off[:], self.ln[:]
        into.used, into.dlen = self.used, self.dlen



class ReferenceColumn(Column):
    """EntityReference payloads as a type code (0: null) and an entity number."""

    __slots__ = ("typs", "nums")
    typs: array[int]
    nums: array[int]

    def init(self, rows: int) -> None:
        d = self.default.v
        code, num = (0, 0) if d is None else (self.names.code(d.typ), d.id)
        self.typs = array("i", [code]) * rows
        self.nums = array("Q", [num]) * rows

    def rows(self) -> int:
        return len(self.typs)

    def value(self, row: int) -> Value:
        c = self.typs[row]
        return make_unchecked(EntityReference, None if c == 0 else EntityId(self.names.names[c], self.nums[row]))

    def put(self, row: int, v: Value) -> None:
        e = v.v
        if e is None:
            self.typs[row] = 0
            self.nums[row] = 0
        else:
            self.typs[row] = self.names.code(e.typ)
            self.nums[row] = e.id

    def ref(self, row: int) -> tuple[int, int]:
        """(type code, number) of the entity referred to; code 0 for null."""
        return self.typs[row], self.nums[row]

    def payload(self, row: int) -> Any:
        return self.typs[row], self.nums[row]

    def set_payload(self, row: int, p: Any) -> None:
        self.typs[row], self.nums[row] = p

    def payload_of(self, v: Value) -> Any:
        e = v.v
        return (0, 0) if e is None else (self.names.code(e.typ), e.id)

    def grow(self) -> None:
        c, n = self.payload_of(self.default)
        self.typs.append(c)
        self.nums.append(n)

    def _keep_payloads(self, rows: list[int]) -> None:
        t, n = self.typs, self.nums
        self.typs = array("i", [t[r] for r in rows])
        self.nums = array("Q", [n[r] for r in rows])

    def _clone_payloads(self, into: Any) -> None:
        into.typs, into.nums = self.typs[:], self.nums[:]



class ChildrenColumn(Column):
    """The ``Children`` field: its values live in the store's tree
    (:mod:`qcore.store.tree`); the column keeps only times (and writers,
    which the store never sets: Children is not writable)."""

    __slots__ = ("n",)
    n: int

    def init(self, rows: int) -> None:
        self.n = rows

    def rows(self) -> int:
        return self.n

    def value(self, row: int) -> Value:  # pragma: no cover - the store reads the tree instead
        raise TypeError("Children values are read from the tree")

    def put(self, row: int, v: Value) -> None:  # pragma: no cover
        raise TypeError("Children values are kept by the tree")

    def payload(self, row: int) -> Any:
        return None

    def set_payload(self, row: int, p: Any) -> None:
        pass

    def grow(self) -> None:
        self.n += 1

    def _keep_payloads(self, rows: list[int]) -> None:
        self.n = len(rows)

    def _clone_payloads(self, into: Any) -> None:
        into.n = self.n



_KINDS: dict[type[Value], Callable[[str, Value, Names], Column]] = {
    Int: ArrayColumn,
    Choice: ArrayColumn,
    Float: FloatColumn,
    Bool: BoolColumn,
    String: StringColumn,
    Blob: ObjectColumn,
    EntityList: ObjectColumn,
    TimestampValue: ObjectColumn,
    EntityReference: ReferenceColumn,
}


def new_column(name: str, default: Value, names: Names, rows: int) -> Column:
    """A column of ``rows`` cells, each at ``default``; ``Children`` gets a
    :class:`ChildrenColumn`."""
    kind = ChildrenColumn if name == CHILDREN else _KINDS[default.__class__]
    col = kind(name, default, names)
    col.init(rows)
    return col
