"""Snapshot encoding of a Store: deterministic, compact, fast (orjson, zlib).

Version 2 is ``MAGIC`` followed by one JSON document compressed with zlib
(level 1: a few hundred MB/s, so a node holding its latest snapshot in
memory holds a fraction of it), column by column as the store keeps it::

    {"v": 2, "next_id": N, "clock": C,
     "schemas": [...as in version 1 (snapshot_v1.py)...],
     "tables": [[type, ids, created, created_big, links, [[field, values, times, writers], ...]], ...],
     "names": [type name, ...]}

Tables are sorted by type, rows by id, fields by name, so the same state
always gives the same bytes. ``ids``, ``created`` (nanoseconds) and
``links`` (link keys, tree.py) are delta-encoded. ``values`` is null (every
row at the field's default), a list (one payload per row) or
``{"r": row deltas, "v": payloads}`` for the rows off the default. ``times``
is null (every cell written when its entity was created), ``{"d": offsets}``
or ``{"r": row deltas, "t": offsets}``, offsets from the row's creation in
nanoseconds, plus ``"b": [[row, secs, nanos], ...]`` for times beyond 64-bit
nanoseconds. ``writers`` is null or ``{"r", "c", "n"}`` (rows, type codes,
numbers). Type codes index ``names`` from 1 (0: none).

Payloads: Int/Choice/Float -> the number; Bool -> 0/1; String -> the text;
Blob -> base64 text; Timestamp -> [secs, nanos]; EntityReference -> two
lists, codes and numbers; EntityList -> [code, number, code, number, ...].
``Children`` have no values: a parent's children are the entities whose
Parent is it, in link-key order.

Version 1 snapshots (snapshot_v1.py, a bare JSON document) are still
restored, and so is an uncompressed version-2 document.
"""

from __future__ import annotations

import base64
import gc
import zlib
from array import array
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import orjson

from . import slices
from .column_kinds import ChildrenColumn, ReferenceColumn, StringColumn
from .columns import BIG, SAME, Column, Names
from .errors import StoreError
from .snapshot_load import load_v2
from .snapshot_v1 import dump_schemas, load_v1
from .table import Table
from .types import Blob, EntityId, EntityList, Float, Timestamp, TimestampValue

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store

VERSION = 2
MAGIC = b"QCSTORE2z"  # then the zlib stream of the JSON document


def dump(store: Store, consume: bool = False) -> bytes:
    """The snapshot bytes of ``store``; ``consume``: release its state part
    by part as it is encoded, so the document being built can reuse the
    memory (for a clone that exists only to be written out: it is left
    unusable)."""
    was_enabled = gc.isenabled()
    gc.disable()  # building the document makes no cycles; don't scan the heap meanwhile
    try:
        out = _Out()
        _dump(store, consume, out)
        return out.done()
    finally:
        if was_enabled:
            gc.enable()


def load(data: bytes) -> Store:
    was_enabled = gc.isenabled()
    gc.disable()  # a bulk build makes no garbage cycles; scanning it would triple the time
    try:
        if data[: len(MAGIC)] == MAGIC:
            data = zlib.decompress(memoryview(data)[len(MAGIC):])
        doc = orjson.loads(data)
        v = doc.get("v") if type(doc) is dict else None
        if v == VERSION:
            return load_v2(doc)
        if v == 1:
            return load_v1(doc)
        raise StoreError(f"unsupported snapshot version {v!r} (this qcore reads versions 1 and {VERSION})")
    except StoreError:
        raise
    except Exception as e:  # any malformation of the document
        raise StoreError(f"corrupt snapshot: {type(e).__name__}: {e}") from None
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------ dump


class _Codes(dict[int, int]):
    """Store type codes -> snapshot codes, numbered by first use in dump
    order (so they depend on the state only, not on its history)."""

    def __init__(self, names: Names) -> None:
        super().__init__({0: 0})
        self.store_names = names.names
        self.by_name: dict[str, int] = {}
        self.out: list[str] = []

    def __missing__(self, code: int) -> int:
        c = self[code] = self.name(self.store_names[code])
        return c

    def name(self, name: str) -> int:
        c = self.by_name.get(name)
        if c is None:
            self.out.append(name)
            c = self.by_name[name] = len(self.out)
        return c


_TEXT_SLICE = 1 << 20


def _long(value: Any) -> bool:
    """Whether encoding ``value`` in one call would hold the GIL long."""
    t = type(value)
    if t is list:
        return len(value) > slices.SLICE or (len(value) <= 8 and any(map(_long, value)))
    if t is str:
        return len(value) > _TEXT_SLICE
    return t is dict and any(map(_long, value.values()))


class _Out:
    """The document, compressed as it is written piece by piece: at most one
    column's values are ever held as Python objects and JSON at once, not the
    whole document (at 1M entities that was ~400 MB on top of the store)."""

    _BATCH = 1 << 16  # small pieces are gathered before they reach zlib

    def __init__(self) -> None:
        self._z = zlib.compressobj(1)
        self._parts = [MAGIC]
        self._small = bytearray()

    def raw(self, piece: bytes) -> None:
        if len(piece) < self._BATCH:
            self._small += piece
            if len(self._small) < self._BATCH:
                return
            piece, self._small = bytes(self._small), bytearray()
        elif self._small:
            self._parts.append(self._z.compress(self._small))
            self._small = bytearray()
        self._parts.append(self._z.compress(piece))

    def json(self, value: Any) -> None:
        """``orjson.dumps(value)``, a slice at a time where ``value`` holds
        long lists or text (see slices.py: the GIL is let go between them)."""
        t = type(value)
        if t is list and len(value) > slices.SLICE:
            step = slices.SLICE
            self.raw(b"[")
            for i in range(0, len(value), step):
                self.raw((b"," if i else b"") + orjson.dumps(value[i:i + step])[1:-1])
            self.raw(b"]")
        elif t is str and len(value) > _TEXT_SLICE:
            self.raw(b'"')
            for i in range(0, len(value), _TEXT_SLICE):
                self.raw(orjson.dumps(value[i:i + _TEXT_SLICE])[1:-1])  # JSON escapes one character at a time
            self.raw(b'"')
        elif t is dict and any(map(_long, value.values())):
            for k, (key, v) in enumerate(value.items()):
                self.raw((b"," if k else b"{") + orjson.dumps(key) + b":")
                self.json(v)
            self.raw(b"}")
        elif t is list and len(value) <= 8 and any(map(_long, value)):
            for k, v in enumerate(value):
                self.raw(b"," if k else b"[")
                self.json(v)
            self.raw(b"]")
        else:
            self.raw(orjson.dumps(value))

    def done(self) -> bytes:
        self._parts.append(self._z.compress(self._small))
        self._parts.append(self._z.flush())
        return b"".join(self._parts)


def _dump(store: Store, consume: bool, out: _Out) -> None:
    """``{"v", "next_id", "clock", "schemas", "tables", "names"}``, written
    as orjson would write the whole document at once."""
    codes = _Codes(store.entities.names)
    ents = store.entities
    if consume:  # what snapshots do not hold (the tree is in the links), and other references to the tables
        store.tree.lists.clear()
        ents.pages.clear()
        ents.by_code.clear()
    head = orjson.dumps({
        "v": VERSION,
        "next_id": store.next_id,
        "clock": store.tree.clock,
        "schemas": dump_schemas(store.catalog),
    })
    out.raw(head[:-1] + b',"tables":[')
    first = True
    for typ in sorted(ents.tables):
        t = ents.tables.pop(typ) if consume else ents.tables[typ]
        if t.live:
            if not first:
                out.raw(b",")
            first = False
            _dump_table(t, codes, consume, out)
    out.raw(b'],"names":')
    out.json(codes.out)
    out.raw(b"}")


def _pick(seq: Any, rows: list[int] | None) -> Any:
    return seq if rows is None else [seq[r] for r in rows]


def _dump_table(t: Table, codes: _Codes, consume: bool, out: _Out) -> None:
    """``[type, ids, created, created_big, links, [[field, values, times, writers], ...]]``"""
    rows = None if t.live == len(t.ids) else list(t.live_rows())
    where = None if rows is None else {r: i for i, r in enumerate(rows)}
    created = _pick(t.created, rows)
    out.raw(b"[")
    out.json(t.typ)
    out.raw(b",")
    out.json(slices.delta(_pick(t.ids, rows)))
    out.raw(b",")
    out.json(slices.delta(created))
    out.raw(b",")
    out.json(_bigs(t.big_created, where))
    link = None
    if t.link is not None and t.parent is not None:
        keys = _pick(t.link, rows)
        if any(keys):
            link = slices.delta(keys)
    out.raw(b",")
    out.json(link)
    del link
    if consume:  # then each column goes once encoded
        t.children = t.parent = t.link = None
    out.raw(b",[")
    for i, name in enumerate(sorted(t.cols)):
        col = t.cols.pop(name) if consume else t.cols[name]
        out.raw(b",[" if i else b"[")
        out.json(name)
        out.raw(b",")
        out.json(None if col.__class__ is ChildrenColumn else _dump_values(col, rows, codes))
        out.raw(b",")
        out.json(_dump_times(col, rows, where, created))
        out.raw(b",")
        out.json(_dump_writers(col, rows, codes))
        out.raw(b"]")
        del col
    out.raw(b"]]")


def _bigs(big: dict[int, Timestamp], where: dict[int, int] | None) -> list[list[int]]:
    if not big:
        return []
    items = big.items() if where is None else ((where[r], ts) for r, ts in big.items() if r in where)
    return [[r, ts.secs, ts.nanos] for r, ts in sorted(items, key=lambda x: x[0])]


def _dump_strings(col: StringColumn, rows: list[int] | None) -> Any:
    """A String column as ``{"s": all its text, "l": lengths}`` (plus ``"r"``
    when sparse): one string for the whole column, so that neither dumping
    nor loading makes a Python object per row."""
    off, ln = col.off, col.ln
    sel: Sequence[int] = range(len(off)) if rows is None else rows
    n = len(sel)
    off_default = slices.count(off, 0) if rows is None else sum(1 for r in rows if off[r] == 0)
    if off_default == n:
        return None
    sparse = (n - off_default) * 2 < n
    chosen: Sequence[int] = [r for r in sel if off[r]] if sparse else sel
    text = col.text
    if rows is None and (not off_default or col.dlen == 0) and slices.back_to_back(off, ln):
        lo, hi = slices.text_span(off, ln)
        out = col.buf[lo:hi]  # the text in row order, as stored
    else:
        out = bytearray()
        for r in chosen:
            out += text(r)
    if out.isascii():
        lens = slices.as_list(ln) if rows is None and not sparse else [ln[r] for r in chosen]
    else:
        lens = [len(bytes(text(r)).decode()) for r in chosen]
    enc: dict[str, Any] = {"s": out.decode(), "l": lens}
    if sparse:
        enc["r"] = slices.delta([i for i, r in enumerate(sel) if off[r]])
    return enc


def _dump_values(col: Column, rows: list[int] | None, codes: _Codes) -> Any:
    if col.__class__ is StringColumn:
        return _dump_strings(col, rows)
    if col.__class__ is ReferenceColumn:
        typs = _pick(col.typs, rows)
        nums = _pick(col.nums, rows)
        dc, dn = col.payload_of(col.default)
        if dc == 0:
            off = len(typs) - slices.count(typs, 0)
            diff = slices.where_not(typs, 0) if off * 2 < len(typs) else None
        else:
            diff = [i for i, (c, n) in enumerate(zip(typs, nums)) if c != dc or n != dn]
            off = len(diff)
            if off * 2 >= len(typs):
                diff = None
        if off == 0:
            return None
        if diff is None:
            return [[codes[c] for c in typs], slices.as_list(nums)]
        return {"r": slices.delta(diff), "v": [[codes[typs[i]] for i in diff], [nums[i] for i in diff]]}
    vals = _pick(col.vals, rows)  # type: ignore[attr-defined]
    cls = col.cls
    d = col.default.v
    if cls is Float:  # compare bit patterns: -0.0 is not the default 0.0
        bits = array("q")
        bits.frombytes(array("d", vals).tobytes())
        dbits = array("q")
        dbits.frombytes(array("d", [d]).tobytes())
        off = len(bits) - slices.count(bits, dbits[0])
        diff = slices.where_not(bits, dbits[0]) if 0 < off and off * 2 < len(bits) else None
    else:
        off = len(vals) - slices.count(vals, d)
        diff = slices.where_not(vals, d) if 0 < off and off * 2 < len(vals) else None
    if off == 0:
        return None
    enc = _ENCODERS.get(cls)
    chosen: list[Any] = slices.as_list(vals) if diff is None else [vals[i] for i in diff]
    out = chosen if enc is None else enc(chosen, codes)
    return out if diff is None else {"r": slices.delta(diff), "v": out}


def _enc_list(vals: Iterable[tuple[EntityId, ...]], codes: _Codes) -> list[list[int]]:
    out = []
    for v in vals:
        flat: list[int] = []
        for e in v:
            flat.append(codes.name(e.typ))
            flat.append(e.id)
        out.append(flat)
    return out


_ENCODERS: dict[type, Any] = {
    Blob: lambda vals, codes: [base64.b64encode(v).decode() for v in vals],
    TimestampValue: lambda vals, codes: [[v.secs, v.nanos] for v in vals],
    EntityList: _enc_list,
}


def _dump_times(col: Column, rows: list[int] | None, where: dict[int, int] | None,
                created: Sequence[int]) -> Any:
    if col.times is None:
        return None
    times = _pick(col.times, rows)
    n = len(times)
    same = slices.count(times, SAME)
    if same == n:
        return None
    big = _bigs(col.big, where)
    if same * 2 < n:  # dense: an offset of 0 stands for SAME (a written time is never its row's creation time)
        offs = slices.differences(times, created)
        for i in slices.where_is(times, SAME) if same else ():
            offs[i] = 0
        for r, _, _ in big:
            offs[r] = 0
        out: dict[str, Any] = {"d": offs}
    else:
        diff = slices.where_not(times, SAME)
        out = {"r": slices.delta(diff), "t": [0 if times[i] == BIG else times[i] - created[i] for i in diff]}
    if big:
        out["b"] = big
    return out


def _dump_writers(col: Column, rows: list[int] | None, codes: _Codes) -> Any:
    if col.wtyp is None:
        return None
    typs = _pick(col.wtyp, rows)
    if slices.count(typs, 0) == len(typs):
        return None
    nums = _pick(col.wid, rows)
    diff = slices.where_not(typs, 0)
    return {"r": slices.delta(diff), "c": [codes[typs[i]] for i in diff], "n": [nums[i] for i in diff]}
