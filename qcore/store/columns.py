"""Column storage of one field of one entity type: a payload, a write time
and a writer per row, kept in flat arrays instead of a Python object per cell.

Payloads by variant (``Column.for_default`` picks the class):

==================  ==========================================================
Int, Choice         ``array('q')``
Float               ``array('d')`` (bit-exact, so ``-0.0`` stays ``-0.0``)
Bool                ``bytearray``
EntityReference     ``array('i')`` type code (0: null) + ``array('Q')`` number
String, Blob,       a ``list`` of payload objects (one shared object for the
EntityList,         default, so an unwritten cell costs one pointer)
Timestamp
==================  ==========================================================

Write times are nanoseconds since the epoch in ``array('q')``, allocated the
first time a cell of the column is written: until then every cell carries its
row's creation time (``SAME``). A time too large for 64-bit nanoseconds is
``BIG`` and kept in ``big``. Writers are a type code and a number, allocated
the first time a write names one. Type names are interned in :class:`Names`.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable, Iterable

from .types import (
    I64_MAX,
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
    timestamp_unchecked,
)

SAME = -1  # the cell was last written at its row's creation time
BIG = -2  # the time does not fit 64-bit nanoseconds: it is in the column's (or table's) `big`
NS = 1_000_000_000
_new = object.__new__
_set = object.__setattr__

Saved = tuple[Any, int, int, int, "Timestamp | None"]  # payload, time code, writer code, writer number, big time


def time_code(t: Timestamp) -> int:
    """``t`` as stored: nanoseconds since the epoch, or BIG."""
    ns = t.secs * NS + t.nanos
    return ns if ns <= I64_MAX else BIG


def time_of(code: int) -> Timestamp:
    """The Timestamp of a stored nanosecond count (not SAME or BIG)."""
    secs, nanos = divmod(code, NS)
    return timestamp_unchecked(secs, nanos)


class Names:
    """Entity type names as small integers, for arrays of references.

    Code 0 means "no entity" (a null reference, no writer); a name keeps its
    code for the life of the store. Codes depend on the order names were first
    seen, so they never leave the process: snapshots write names.
    """

    __slots__ = ("names", "codes")

    def __init__(self) -> None:
        self.names: list[str] = [""]
        self.codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c

    def eid(self, code: int, num: int) -> EntityId | None:
        return None if code == 0 else EntityId(self.names[code], num)


class Column:
    """One field of one type; ``rows`` cells, all of the variant ``cls``."""

    __slots__ = ("name", "cls", "default", "names", "times", "big", "wtyp", "wid")

    def __init__(self, name: str, default: Value, names: Names) -> None:
        self.name = name
        self.cls: type[Value] = default.__class__
        self.default = default
        self.names = names
        self.times: array[int] | None = None
        self.big: dict[int, Timestamp] = {}
        self.wtyp: array[int] | None = None
        self.wid: array[int] | None = None

    @staticmethod
    def for_default(name: str, default: Value, names: Names, rows: int) -> Column:
        """A column of ``rows`` cells, each at ``default``."""
        col = _KINDS[default.__class__](name, default, names)
        col.init(rows)
        return col

    # ---------------------------------------------------------- payloads
    def init(self, rows: int) -> None:  # pragma: no cover - every kind overrides
        raise NotImplementedError

    def value(self, row: int) -> Value:  # pragma: no cover
        raise NotImplementedError

    def put(self, row: int, v: Value) -> None:  # pragma: no cover
        raise NotImplementedError

    def payload(self, row: int) -> Any:  # pragma: no cover
        """The raw stored payload (cheap; for snapshots and comparisons)."""
        raise NotImplementedError

    def set_payload(self, row: int, p: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def grow(self) -> None:  # pragma: no cover
        """Append one row at the default."""
        raise NotImplementedError

    def _keep_payloads(self, rows: list[int]) -> None:  # pragma: no cover
        raise NotImplementedError

    def payloads(self) -> Iterable[Any]:  # pragma: no cover
        """Every row's raw payload, in row order."""
        raise NotImplementedError

    def default_payload(self) -> Any:
        return self.payload_of(self.default)

    def payload_of(self, v: Value) -> Any:
        return v.v

    # ----------------------------------------------------- times and writers
    def time_code(self, row: int) -> int:
        t = self.times
        return SAME if t is None else t[row]

    def writer(self, row: int) -> EntityId | None:
        wt = self.wtyp
        if wt is None:
            return None
        c = wt[row]
        return None if c == 0 else EntityId(self.names.names[c], self.wid[row])  # type: ignore[index]

    def writer_code(self, row: int) -> tuple[int, int]:
        wt = self.wtyp
        if wt is None:
            return 0, 0
        return wt[row], self.wid[row]  # type: ignore[index]

    def stamp(self, row: int, code: int, big: Timestamp | None, w: EntityId | None) -> None:
        """Record a write at time ``code`` (SAME, BIG with ``big``, or
        nanoseconds; see Table.stamp) by ``w`` (None: no writer)."""
        times = self.times
        if times is None:
            if code == SAME:
                if w is None and self.wtyp is None:
                    return
            else:
                times = self.times = array("q", [SAME]) * self.rows()
        if times is not None:
            times[row] = code
        if code == BIG:
            self.big[row] = big  # type: ignore[assignment]
        elif self.big:
            self.big.pop(row, None)
        if w is not None:
            wt = self.wtyp
            if wt is None:
                n = self.rows()
                wt = self.wtyp = array("i", [0]) * n
                self.wid = array("Q", [0]) * n
            wt[row] = self.names.code(w.typ)
            self.wid[row] = w.id  # type: ignore[index]
        elif self.wtyp is not None:
            self.wtyp[row] = 0
            self.wid[row] = 0  # type: ignore[index]

    def stamp_code(self, row: int, code: int, big: Timestamp | None, wcode: int, wnum: int) -> None:
        """Restore a time and writer as :meth:`save` returned them."""
        if code != SAME or self.times is not None:
            if self.times is None:
                self.times = array("q", [SAME]) * self.rows()
            self.times[row] = code
        if big is not None:
            self.big[row] = big
        elif self.big:
            self.big.pop(row, None)
        if wcode or self.wtyp is not None:
            if self.wtyp is None:
                n = self.rows()
                self.wtyp = array("i", [0]) * n
                self.wid = array("Q", [0]) * n
            self.wtyp[row] = wcode
            self.wid[row] = wnum  # type: ignore[index]

    def save(self, row: int) -> Saved:
        """Everything about one cell, for an undo log."""
        code = self.time_code(row)
        wcode, wnum = self.writer_code(row)
        return self.payload(row), code, wcode, wnum, self.big.get(row) if code == BIG else None

    def load(self, row: int, saved: Saved) -> None:
        p, code, wcode, wnum, big = saved
        self.set_payload(row, p)
        self.stamp_code(row, code, big, wcode, wnum)

    # ---------------------------------------------------------------- rows
    def rows(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def append_row(self) -> None:
        self.grow()
        if self.times is not None:
            self.times.append(SAME)
        if self.wtyp is not None:
            self.wtyp.append(0)
            self.wid.append(0)  # type: ignore[union-attr]

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (ascending), renumbered from 0 (table compaction)."""
        self._keep_payloads(rows)
        if self.times is not None:
            t = self.times
            self.times = array("q", [t[r] for r in rows])
        if self.big:
            where = {r: i for i, r in enumerate(rows)}
            self.big = {where[r]: v for r, v in self.big.items() if r in where}
        if self.wtyp is not None:
            wt, wi = self.wtyp, self.wid
            self.wtyp = array("i", [wt[r] for r in rows])
            self.wid = array("Q", [wi[r] for r in rows])  # type: ignore[index]

    def clear_row(self, row: int) -> None:
        """Drop what a deleted row holds on to (large payloads, big times)."""
        self.set_payload(row, self.default_payload())
        self.big.pop(row, None)


class _ArrayColumn(Column):
    """Payloads in a typed array (Int, Choice, Float)."""

    __slots__ = ("vals",)
    typecode = "q"
    vals: array[Any]

    def init(self, rows: int) -> None:
        self.vals = array(self.typecode, [self.default.v]) * rows

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
        self.vals = array(self.typecode, [v[r] for r in rows])

    def payloads(self) -> Iterable[Any]:
        return self.vals


class _FloatColumn(_ArrayColumn):
    __slots__ = ()
    typecode = "d"


class _BoolColumn(Column):
    __slots__ = ("vals",)
    vals: bytearray

    def init(self, rows: int) -> None:
        self.vals = bytearray([self.default.v]) * rows

    def rows(self) -> int:
        return len(self.vals)

    def value(self, row: int) -> Value:
        return make_unchecked(Bool, self.vals[row] == 1)

    def put(self, row: int, v: Value) -> None:
        self.vals[row] = v.v

    def payload(self, row: int) -> Any:
        return self.vals[row] == 1

    def set_payload(self, row: int, p: Any) -> None:
        self.vals[row] = p

    def grow(self) -> None:
        self.vals.append(self.default.v)

    def _keep_payloads(self, rows: list[int]) -> None:
        v = self.vals
        self.vals = bytearray([v[r] for r in rows])

    def payloads(self) -> Iterable[Any]:
        return [b == 1 for b in self.vals]


class _ObjectColumn(Column):
    """Payloads as Python objects in a list (String, Blob, EntityList, Timestamp)."""

    __slots__ = ("vals",)
    vals: list[Any]

    def init(self, rows: int) -> None:
        self.vals = [self.default.v] * rows

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
        self.vals = [v[r] for r in rows]

    def payloads(self) -> Iterable[Any]:
        return self.vals


class _ReferenceColumn(Column):
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

    def payloads(self) -> Iterable[Any]:
        return zip(self.typs, self.nums)


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

    def payloads(self) -> Iterable[Any]:  # pragma: no cover
        return [None] * self.n


_KINDS: dict[type[Value], Callable[[str, Value, Names], Column]] = {
    Int: _ArrayColumn,
    Choice: _ArrayColumn,
    Float: _FloatColumn,
    Bool: _BoolColumn,
    String: _ObjectColumn,
    Blob: _ObjectColumn,
    EntityList: _ObjectColumn,
    TimestampValue: _ObjectColumn,
    EntityReference: _ReferenceColumn,
}


def children_column(name: str, default: Value, names: Names, rows: int) -> Column:
    col = ChildrenColumn(name, default, names)
    col.init(rows)
    return col


ReferenceColumn = _ReferenceColumn
