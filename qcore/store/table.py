"""Where entities live: one :class:`Table` per entity type, and
:class:`Entities`, which finds an entity's table and row by its number.

A table's rows are in id order: ids only grow, so a create appends a row,
and a delete only marks its row dead (``alive``). FindEntities pages by
bisecting ``ids``. Once dead rows outnumber live ones the table is compacted
(every column rebuilt without them), which keeps deletes O(1) amortised.

The entity number -> (table, row) map is a dict of pages of 4096 numbers,
one ``array('q')`` each: eight bytes per number instead of a dict entry and
two int objects, and a page goes when its last entity does.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from itertools import compress
from operator import ne
from typing import Iterator, Mapping

from .column_kinds import ReferenceColumn, new_column
from .columns import BIG, NS, SAME, Column, Names, time_code, time_of
from .schema import CHILDREN, PARENT, FieldSchema
from .types import I64_MAX, Choice, EntityId, Timestamp

_PAGE_BITS = 12
_PAGE = 1 << _PAGE_BITS
_PAGE_MASK = _PAGE - 1
_ROW_BITS = 40
_ROW_MASK = (1 << _ROW_BITS) - 1
_COMPACT_MIN = 64  # dead rows a table carries before compaction is worth it


class Table:
    """The entities of one type: per row its entity number, creation time,
    liveness and link key, and one :class:`Column` per field."""

    __slots__ = ("typ", "code", "names", "cols", "ids", "alive", "created", "big_created", "link", "live",
                 "children", "parent")

    def __init__(self, typ: str, code: int, names: Names) -> None:
        self.typ = typ
        self.code = code
        self.names = names
        self.cols: dict[str, Column] = {}
        self.ids: array[int] = array("Q")
        self.alive = bytearray()
        self.created: array[int] = array("q")
        self.big_created: dict[int, Timestamp] = {}
        # link[row]: the key under which the row's entity is listed in its
        # parent's children (tree.py); allocated when the first row gets a parent.
        self.link: array[int] | None = None
        self.live = 0
        self.children: Column | None = None
        self.parent: ReferenceColumn | None = None

    # ------------------------------------------------------------ schema
    def set_fields(self, complete: Mapping[str, FieldSchema], now: Timestamp | None) -> None:
        """Make the columns those of ``complete``: keep a column whose variant
        is unchanged (resetting Choices now out of range), add the others at
        their default written ``now``, drop the rest."""
        rows = len(self.ids)
        old = self.cols
        cols: dict[str, Column] = {}
        for name, fs in complete.items():
            d = fs.default_value
            col = old.get(name)
            if col is not None and col.cls is d.__class__:
                if d != col.default:
                    col.set_default(d)
                if d.__class__ is Choice:
                    self._clamp_choices(col, len(fs.choices or ()), now)
                cols[name] = col
                continue
            col = new_column(name, d, self.names, rows)
            if rows and now is not None:
                for row in range(rows):
                    if self.alive[row]:
                        self.stamp(col, row, now, None)
            cols[name] = col
        self.cols = cols
        self.children = cols.get(CHILDREN)
        p = cols.get(PARENT)
        self.parent = p if isinstance(p, ReferenceColumn) else None

    def _clamp_choices(self, col: Column, n: int, now: Timestamp | None) -> None:
        for row in range(len(self.ids)):
            if self.alive[row] and not 0 <= col.payload(row) < n:
                col.set_payload(row, col.default_payload())
                if now is not None:
                    self.stamp(col, row, now, None)

    # ------------------------------------------------------------ rows
    def add_row(self, num: int, now: Timestamp) -> int:
        row = len(self.ids)
        self.ids.append(num)
        self.alive.append(1)
        code = time_code(now)
        self.created.append(code)
        if code == BIG:
            self.big_created[row] = now
        if self.link is not None:
            self.link.append(0)
        for col in self.cols.values():
            col.append_row()
        self.live += 1
        return row

    def kill_row(self, row: int) -> None:
        self.alive[row] = 0
        self.live -= 1
        for col in self.cols.values():
            col.clear_row(row)

    def needs_compaction(self) -> bool:
        dead = len(self.ids) - self.live
        return dead >= _COMPACT_MIN and dead > self.live

    def compact(self) -> list[int]:
        """Drop dead rows; returns the kept rows' old numbers (new row = position)."""
        keep = [r for r, a in enumerate(self.alive) if a]
        ids, created = self.ids, self.created
        self.ids = array("Q", [ids[r] for r in keep])
        self.created = array("q", [created[r] for r in keep])
        self.alive = bytearray([1]) * len(keep)
        if self.big_created:
            where = {r: i for i, r in enumerate(keep)}
            self.big_created = {where[r]: t for r, t in self.big_created.items() if r in where}
        if self.link is not None:
            link = self.link
            self.link = array("q", [link[r] for r in keep])
        for col in self.cols.values():
            col.keep(keep)
        return keep

    def set_link(self, row: int, key: int) -> None:
        if self.link is None:
            self.link = array("q", [0]) * len(self.ids)
        self.link[row] = key

    def clone(self, names: Names) -> Table:
        """A copy that shares nothing mutable with this table."""
        t = Table(self.typ, self.code, names)
        t.cols = {name: col.clone(names) for name, col in self.cols.items()}
        t.ids, t.alive, t.created = self.ids[:], self.alive[:], self.created[:]
        t.big_created = self.big_created.copy()
        t.link = None if self.link is None else self.link[:]
        t.live = self.live
        t.children = t.cols.get(CHILDREN)
        p = t.cols.get(PARENT)
        t.parent = p if isinstance(p, ReferenceColumn) else None
        return t

    def link_of(self, row: int) -> int:
        return 0 if self.link is None else self.link[row]

    # ------------------------------------------------------------ cells
    def created_at(self, row: int) -> Timestamp:
        c = self.created[row]
        return self.big_created[row] if c == BIG else time_of(c)

    def time(self, col: Column, row: int) -> Timestamp:
        """The write time of one cell."""
        t = col.times
        c = SAME if t is None else t[row]
        if c >= 0:
            return time_of(c)
        if c == SAME:
            return self.created_at(row)
        return col.big[row]

    def stamp(self, col: Column, row: int, t: Timestamp, w: EntityId | None) -> None:
        """Record a write of ``col`` at ``row`` at time ``t`` by ``w``. A time
        equal to the row's creation time is stored as SAME, so that equal
        states have equal representations (and equal snapshots)."""
        code = t.secs * NS + t.nanos
        if code > I64_MAX:
            code = BIG
        if code == self.created[row] and (code != BIG or self.big_created[row] == t):
            code = SAME
        col.stamp(row, code, t if code == BIG else None, w)

    def parent_of(self, row: int) -> tuple[int, int]:
        """(type code, number) of the row's parent; code 0 if it has none."""
        p = self.parent
        return (0, 0) if p is None else p.ref(row)

    def live_ids_after(self, after: int) -> Iterator[int]:
        """Live entity numbers greater than ``after``, ascending."""
        ids, alive = self.ids, self.alive
        for r in range(bisect_right(ids, after), len(ids)):
            if alive[r]:
                yield ids[r]

    def count_after(self, after: int) -> int:
        ids = self.ids
        start = bisect_right(ids, after)
        if self.live == len(ids):
            return len(ids) - start
        return sum(self.alive[start:])

    def live_rows(self) -> Iterator[int]:
        alive = self.alive
        if self.live == len(alive):
            return iter(range(len(alive)))
        return (r for r, a in enumerate(alive) if a)


class Entities:
    """Every entity: the tables by type, and entity number -> (table, row)."""

    __slots__ = ("names", "tables", "by_code", "pages", "page_live", "count")

    def __init__(self, names: Names) -> None:
        self.names = names
        self.tables: dict[str, Table] = {}
        self.by_code: list[Table | None] = []
        self.pages: dict[int, array[int]] = {}
        self.page_live: dict[int, int] = {}
        self.count = 0

    def clone(self) -> Entities:
        """A copy that shares nothing mutable with these entities (not even
        the type names: a reference column's default may add one)."""
        e = Entities(self.names.clone())
        e.tables = {typ: t.clone(e.names) for typ, t in self.tables.items()}
        e.by_code = [None if t is None else e.tables[t.typ] for t in self.by_code]
        e.pages = {key: pg[:] for key, pg in self.pages.items()}
        e.page_live = self.page_live.copy()
        e.count = self.count
        return e

    def table(self, typ: str) -> Table:
        """The table of ``typ``, created empty if the type has none yet."""
        t = self.tables.get(typ)
        if t is None:
            code = self.names.code(typ)
            t = self.tables[typ] = Table(typ, code, self.names)
            while len(self.by_code) <= code:
                self.by_code.append(None)
            self.by_code[code] = t
        return t

    def locate(self, num: int) -> tuple[Table, int] | None:
        """The table and row of entity number ``num`` (any type), or None."""
        pg = self.pages.get(num >> _PAGE_BITS)
        if pg is None:
            return None
        v = pg[num & _PAGE_MASK]
        if v < 0:
            return None
        return self.by_code[v >> _ROW_BITS], v & _ROW_MASK  # type: ignore[return-value]

    def find(self, eid: EntityId) -> tuple[Table, int] | None:
        """The table and row of ``eid`` if it exists with that type."""
        n = eid.id
        pg = self.pages.get(n >> _PAGE_BITS)
        if pg is None:
            return None
        v = pg[n & _PAGE_MASK]
        if v < 0:
            return None
        t = self.by_code[v >> _ROW_BITS]
        if t.typ != eid.typ:  # type: ignore[union-attr]
            return None
        return t, v & _ROW_MASK  # type: ignore[return-value]

    def add(self, table: Table, num: int, now: Timestamp) -> int:
        row = table.add_row(num, now)
        self.place(num, table.code, row)
        self.count += 1
        return row

    def place(self, num: int, code: int, row: int) -> None:
        key = num >> _PAGE_BITS
        pg = self.pages.get(key)
        if pg is None:
            pg = self.pages[key] = array("q", [-1]) * _PAGE
            self.page_live[key] = 0
        if pg[num & _PAGE_MASK] < 0:
            self.page_live[key] += 1
        pg[num & _PAGE_MASK] = (code << _ROW_BITS) | row

    def place_table(self, table: Table) -> None:
        """Map every row of a freshly loaded ``table`` (ids ascending, none
        mapped yet): runs of consecutive ids fill page slices at once.
        Raises ValueError if an id is mapped already."""
        ids, code = table.ids, table.code
        n = len(ids)
        if not n:
            return
        # row indexes where a run of consecutive ids starts
        starts = [0, *compress(range(1, n), map(ne, ids[1:], map((1).__add__, ids[:-1]))), n]
        base = code << _ROW_BITS
        for a, b in zip(starts, starts[1:]):
            row, num = a, ids[a]
            while row < b:  # split the run at page boundaries
                key, slot = num >> _PAGE_BITS, num & _PAGE_MASK
                k = min(b - row, _PAGE - slot)
                pg = self.pages.get(key)
                if pg is None:
                    pg = self.pages[key] = array("q", [-1]) * _PAGE
                    self.page_live[key] = 0
                if pg[slot : slot + k].count(-1) != k:
                    raise ValueError(f"entity number in {num}..{num + k - 1} is mapped twice")
                pg[slot : slot + k] = array("q", range(base | row, (base | row) + k))
                self.page_live[key] += k
                row += k
                num += k
        self.count += n

    def remove(self, num: int) -> None:
        """Forget entity ``num`` (its table row dies; compaction comes later)."""
        key = num >> _PAGE_BITS
        pg = self.pages[key]
        v = pg[num & _PAGE_MASK]
        t = self.by_code[v >> _ROW_BITS]
        t.kill_row(v & _ROW_MASK)  # type: ignore[union-attr]
        pg[num & _PAGE_MASK] = -1
        left = self.page_live[key] - 1
        if left:
            self.page_live[key] = left
        else:
            del self.pages[key], self.page_live[key]
        self.count -= 1

    def compact(self, table: Table) -> None:
        """Compact ``table`` and re-point its entities at their new rows."""
        table.compact()
        for row, num in enumerate(table.ids):
            self.place(num, table.code, row)
