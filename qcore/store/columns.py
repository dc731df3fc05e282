"""Column storage of one field of one entity type: a payload, a write time
and a writer per row, kept in flat arrays instead of a Python object per cell.

This module has what every column shares (:class:`Column`: write times and
writers, undo records, row bookkeeping) and the interned type names; the
payload storage of each variant is in :mod:`.column_kinds`.

Write times are nanoseconds since the epoch in ``array('q')``, allocated the
first time a cell of the column is written: until then every cell carries its
row's creation time (``SAME``). A time too large for 64-bit nanoseconds is
``BIG`` and kept in ``big``. Writers are a type code and a number, allocated
the first time a write names one. Type names are interned in :class:`Names`.
"""

from __future__ import annotations

from array import array
from typing import Any

from .types import I64_MAX, EntityId, Timestamp, Value, timestamp_unchecked

SAME = -1  # the cell was last written at its row's creation time
BIG = -2  # the time does not fit 64-bit nanoseconds: it is in the column's (or table's) `big`
NS = 1_000_000_000

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

    def clone(self) -> Names:
        n = Names.__new__(Names)
        n.names, n.codes = self.names.copy(), self.codes.copy()
        return n


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

    def _clone_payloads(self, into: Any) -> None:  # pragma: no cover
        """Set ``into``'s payload slots to copies of this column's."""
        raise NotImplementedError

    def clone(self, names: Names) -> Column:
        """A copy that shares nothing mutable with this column (its type
        names are ``names``); C-level copies of the arrays, no loop per row."""
        c: Column = object.__new__(self.__class__)
        c.name, c.cls, c.default, c.names = self.name, self.cls, self.default, names
        c.times = None if self.times is None else self.times[:]
        c.big = self.big.copy()
        c.wtyp = None if self.wtyp is None else self.wtyp[:]
        c.wid = None if self.wid is None else self.wid[:]
        self._clone_payloads(c)
        return c

    def default_payload(self) -> Any:
        return self.payload_of(self.default)

    def set_default(self, d: Value) -> None:
        """The schema's default changed (same variant): new rows get ``d``,
        existing rows keep what they hold."""
        self.default = d

    def raw(self, row: int) -> Any:
        """What :meth:`set_raw` puts back (undo logs): the payload unless a
        column stores it otherwise."""
        return self.payload(row)

    def set_raw(self, row: int, raw: Any) -> None:
        self.set_payload(row, raw)

    def settle(self) -> None:
        """Between commands: tidy storage that undo records might still point into."""

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
        times, wt = self.times, self.wtyp
        code = SAME if times is None else times[row]
        wcode, wnum = (0, 0) if wt is None else (wt[row], self.wid[row])  # type: ignore[index]
        return self.raw(row), code, wcode, wnum, self.big.get(row) if code == BIG else None

    def load(self, row: int, saved: Saved) -> None:
        p, code, wcode, wnum, big = saved
        self.set_raw(row, p)
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
