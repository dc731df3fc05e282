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
from itertools import accumulate
from operator import sub
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import orjson

from .columns import BIG, SAME, ChildrenColumn, Column, Names, ReferenceColumn
from .errors import StoreError
from .schema import FieldSchema
from .snapshot_v1 import Decoder, dump_schemas, load_schemas, load_v1
from .table import Entities, Table
from .tree import ChildList, Tree
from .types import I64_MAX, Blob, Choice, EntityId, EntityList, Float, String, Timestamp, TimestampValue

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store

VERSION = 2
MAGIC = b"QCSTORE2z"  # then the zlib stream of the JSON document


def dump(store: Store) -> bytes:
    was_enabled = gc.isenabled()
    gc.disable()  # building the document makes no cycles; don't scan the heap meanwhile
    try:
        return MAGIC + zlib.compress(_dump(store), 1)
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
            return _load(doc)
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


def _delta(seq: Sequence[int]) -> list[int]:
    if not seq:
        return []
    out = [seq[0]]
    out.extend(map(sub, seq[1:], seq[:-1]))
    return out


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


def _dump(store: Store) -> bytes:
    codes = _Codes(store.entities.names)
    tables = []
    ents = store.entities
    for typ in sorted(ents.tables):
        t = ents.tables[typ]
        if t.live:
            tables.append(_dump_table(t, codes))
    return orjson.dumps({
        "v": VERSION,
        "next_id": store.next_id,
        "clock": store.tree.clock,
        "schemas": dump_schemas(store.catalog),
        "tables": tables,
        "names": codes.out,
    })


def _pick(seq: Any, rows: list[int] | None) -> Any:
    return seq if rows is None else [seq[r] for r in rows]


def _dump_table(t: Table, codes: _Codes) -> list[Any]:
    rows = None if t.live == len(t.ids) else list(t.live_rows())
    where = None if rows is None else {r: i for i, r in enumerate(rows)}
    created = _pick(t.created, rows)
    big_created = _bigs(t.big_created, where)
    link = None
    if t.link is not None and t.parent is not None:
        keys = _pick(t.link, rows)
        if any(keys):
            link = _delta(keys)
    cols = [[name, None if col.__class__ is ChildrenColumn else _dump_values(col, rows, codes),
             _dump_times(col, rows, where, created), _dump_writers(col, rows, codes)]
            for name, col in sorted(t.cols.items())]
    return [t.typ, _delta(_pick(t.ids, rows)), _delta(created), big_created, link, cols]


def _bigs(big: dict[int, Timestamp], where: dict[int, int] | None) -> list[list[int]]:
    if not big:
        return []
    items = big.items() if where is None else ((where[r], ts) for r, ts in big.items() if r in where)
    return [[r, ts.secs, ts.nanos] for r, ts in sorted(items, key=lambda x: x[0])]


def _dump_values(col: Column, rows: list[int] | None, codes: _Codes) -> Any:
    if col.__class__ is ReferenceColumn:
        typs = _pick(col.typs, rows)
        nums = _pick(col.nums, rows)
        dc, dn = col.payload_of(col.default)
        if dc == 0:
            off = len(typs) - typs.count(0)
            diff = [i for i, c in enumerate(typs) if c] if off * 2 < len(typs) else None
        else:
            diff = [i for i, (c, n) in enumerate(zip(typs, nums)) if c != dc or n != dn]
            off = len(diff)
            if off * 2 >= len(typs):
                diff = None
        if off == 0:
            return None
        if diff is None:
            return [[codes[c] for c in typs], list(nums)]
        return {"r": _delta(diff), "v": [[codes[typs[i]] for i in diff], [nums[i] for i in diff]]}
    vals = _pick(col.vals, rows)  # type: ignore[attr-defined]
    cls = col.cls
    d = col.default.v
    if cls is Float:  # compare bit patterns: -0.0 is not the default 0.0
        bits = array("q")
        bits.frombytes(array("d", vals).tobytes())
        dbits = array("q")
        dbits.frombytes(array("d", [d]).tobytes())
        off = len(bits) - bits.count(dbits[0])
        diff = [i for i, b in enumerate(bits) if b != dbits[0]] if 0 < off and off * 2 < len(bits) else None
    else:
        off = len(vals) - vals.count(d)
        diff = [i for i, p in enumerate(vals) if p != d] if 0 < off and off * 2 < len(vals) else None
    if off == 0:
        return None
    enc = _ENCODERS.get(cls)
    chosen: Iterable[Any] = vals if diff is None else [vals[i] for i in diff]
    out = list(chosen) if enc is None else enc(chosen, codes)
    return out if diff is None else {"r": _delta(diff), "v": out}


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
    same = times.count(SAME)
    if same == n:
        return None
    big = _bigs(col.big, where)
    if same == 0 and not big:
        out: dict[str, Any] = {"d": list(map(sub, times, created))}
    else:
        diff = [i for i, c in enumerate(times) if c != SAME]
        out = {"r": _delta(diff), "t": [0 if times[i] == BIG else times[i] - created[i] for i in diff]}
    if big:
        out["b"] = big
    return out


def _dump_writers(col: Column, rows: list[int] | None, codes: _Codes) -> Any:
    if col.wtyp is None:
        return None
    typs = _pick(col.wtyp, rows)
    if typs.count(0) == len(typs):
        return None
    nums = _pick(col.wid, rows)
    diff = [i for i, c in enumerate(typs) if c]
    return {"r": _delta(diff), "c": [codes[typs[i]] for i in diff], "n": [nums[i] for i in diff]}


# ------------------------------------------------------------------ load


def _load(doc: dict[str, Any]) -> Store:
    from .state import Store

    catalog = load_schemas(doc["schemas"], Decoder())
    names = Names()
    for nm in doc["names"]:
        if type(nm) is not str:
            raise StoreError("corrupt snapshot: type names must be strings")
        names.code(nm)
    if len(names.names) != len(doc["names"]) + 1:
        raise StoreError("corrupt snapshot: a type name is listed twice")
    ents = Entities(names)
    tree = Tree(names)
    for typ_name in catalog.types:
        ents.table(typ_name).set_fields(catalog.complete[typ_name], None)
    top = 0
    last_typ = None
    for typ, ids_d, created_d, big_created, link_d, cols in doc["tables"]:
        if last_typ is not None and typ <= last_typ:
            raise StoreError("corrupt snapshot: tables are not sorted by type")
        last_typ = typ
        t = ents.tables[typ]
        top = max(top, _load_table(ents, t, catalog.complete[typ], ids_d, created_d, big_created, link_d, cols))
    clock = doc["clock"]
    if type(clock) is not int or clock < 0:
        raise StoreError(f"corrupt snapshot: clock {clock!r}")
    tree.clock = clock
    _load_tree(ents, tree)
    next_id = doc["next_id"]
    if type(next_id) is not int or next_id <= top:
        raise StoreError(f"corrupt snapshot: next_id {next_id!r} is not above every entity id")
    return Store.assemble(catalog, ents, tree, next_id)


def _load_table(ents: Entities, t: Table, complete: Mapping[str, FieldSchema], ids_d: list[int],
                created_d: list[int], big_created: list[list[int]], link_d: list[int] | None, cols: list[Any]) -> int:
    ids = array("Q", accumulate(ids_d))
    n = len(ids)
    if n == 0 or ids[0] == 0 or any(map(int.__ge__, ids[:-1], ids[1:])):
        raise StoreError(f"corrupt snapshot: ids of {t.typ} are not ascending")
    created = array("q", accumulate(created_d))
    if len(created) != n:
        raise StoreError(f"corrupt snapshot: {t.typ} has {len(created)} creation times for {n} ids")
    if min(created) < 0 and (min(created) != BIG or sum(1 for c in created if c == BIG) != len(big_created)):
        raise StoreError(f"corrupt snapshot: {t.typ} has a creation time out of range")
    t.ids, t.created, t.alive, t.live = ids, created, bytearray([1]) * n, n
    t.big_created = {r: Timestamp(s, ns) for r, s, ns in big_created}
    if link_d is not None:
        t.link = array("q", accumulate(link_d))
        if len(t.link) != n:
            raise StoreError(f"corrupt snapshot: {t.typ} has {len(t.link)} link keys for {n} ids")
    given = [c[0] for c in cols]
    if given != sorted(t.cols):
        raise StoreError(f"corrupt snapshot: fields of {t.typ} are {given}, its schema has {sorted(t.cols)}")
    for name, vals, times, writers in cols:
        col = t.cols[name]
        col.init(n)
        if vals is not None:
            _load_values(col, vals, n, ents.names)
        if times is not None:
            _load_times(col, times, created, n)
        if col.cls is Choice:
            vals, k = col.vals, len(complete[name].choices or ())  # type: ignore[attr-defined]
            if min(vals) < 0 or max(vals) >= k:
                raise StoreError(f"corrupt snapshot: {t.typ}.{name} holds a Choice out of range")
        if writers is not None:
            col.wtyp = array("i", [0]) * n
            col.wid = array("Q", [0]) * n
            for r, c, num in zip(accumulate(writers["r"]), writers["c"], writers["n"]):
                _check_code(c, ents.names)
                col.wtyp[r] = c
                col.wid[r] = num
    for row, num in enumerate(ids):
        if ents.locate(num) is not None:
            raise StoreError(f"corrupt snapshot: entity number {num} is in two tables")
        ents.place(num, t.code, row)
    ents.count += n
    return ids[-1]


def _check_code(c: int, names: Names) -> None:
    if type(c) is not int or not 0 < c < len(names.names):
        raise StoreError(f"corrupt snapshot: type code {c!r}")


def _load_values(col: Column, vals: Any, n: int, names: Names) -> None:
    rows: list[int] | None = None
    if type(vals) is dict:
        rows = list(accumulate(vals["r"]))
        vals = vals["v"]
    if col.__class__ is ReferenceColumn:
        typs, nums = vals
        if typs and (min(typs) < 0 or max(typs) >= len(names.names)):
            raise StoreError(f"corrupt snapshot: {col.name} holds an unknown type code")
        if rows is None:
            col.typs, col.nums = array("i", typs), array("Q", nums)
        else:
            for r, c, num in zip(rows, typs, nums):
                col.set_payload(r, (c, num))
        if len(col.typs) != n or len(col.nums) != n:
            raise StoreError(f"corrupt snapshot: {col.name} has the wrong number of rows")
        return
    dec = _DECODERS.get(col.cls)
    payloads = vals if dec is None else dec(vals, names)
    want = _PAYLOAD_TYPES.get(col.cls)
    if want is not None and not set(map(type, payloads)) <= want:
        raise StoreError(f"corrupt snapshot: {col.name} holds values of the wrong type")
    if rows is None:
        if len(payloads) != n:
            raise StoreError(f"corrupt snapshot: {col.name} has {len(payloads)} values for {n} rows")
        old = col.vals  # type: ignore[attr-defined]
        col.vals = old.__class__(payloads) if isinstance(old, list) else _typed(old, payloads)  # type: ignore[attr-defined]
    else:
        for r, p in zip(rows, payloads):
            col.set_payload(r, p)


def _typed(old: Any, payloads: list[Any]) -> Any:
    if isinstance(old, bytearray):
        if payloads and (min(payloads) < 0 or max(payloads) > 1):
            raise StoreError("corrupt snapshot: a Bool is not 0 or 1")
        return bytearray(payloads)
    return array(old.typecode, payloads)


_PAYLOAD_TYPES: dict[type, set[type]] = {String: {str}, EntityList: {tuple}, Blob: {bytes}, TimestampValue: {Timestamp}}


def _dec_list(vals: list[list[int]], names: Names) -> list[tuple[EntityId, ...]]:
    nm = names.names
    out = []
    for flat in vals:
        for c in flat[::2]:
            _check_code(c, names)
        out.append(tuple([EntityId(nm[flat[i]], flat[i + 1]) for i in range(0, len(flat), 2)]))
    return out


_DECODERS: dict[type, Any] = {
    Blob: lambda vals, names: [base64.b64decode(v, validate=True) for v in vals],
    TimestampValue: lambda vals, names: [Timestamp(s, ns) for s, ns in vals],
    EntityList: _dec_list,
}


def _load_times(col: Column, times: dict[str, Any], created: array[int], n: int) -> None:
    out = array("q", [SAME]) * n
    if "d" in times:
        offs = times["d"]
        if len(offs) != n:
            raise StoreError(f"corrupt snapshot: {col.name} has {len(offs)} times for {n} rows")
        out = array("q", map(int.__add__, created, offs))
        if 0 in offs:  # an offset of 0 is the creation time itself: SAME (never written so, but read so)
            for r in [r for r, off in enumerate(offs) if off == 0]:
                out[r] = SAME
    else:
        for r, off in zip(accumulate(times["r"]), times["t"]):
            out[r] = created[r] + off if off else SAME
    for r, secs, nanos in times.get("b", ()):
        out[r] = BIG
        col.big[r] = Timestamp(secs, nanos)
    if any(c < 0 and c != SAME and c != BIG or c > I64_MAX for c in (min(out), max(out))):
        raise StoreError(f"corrupt snapshot: {col.name} has a write time out of range")
    col.times = out


def _load_tree(ents: Entities, tree: Tree) -> None:
    """Rebuild every parent's children from the Parent columns and link keys."""
    links: list[int] = []
    nums: list[int] = []
    typs: list[int] = []
    parents: list[int] = []
    pcodes: list[int] = []
    for t in ents.tables.values():
        p = t.parent
        if p is None or not t.live:
            continue
        pc = p.typs
        if pc.count(0) == len(pc):
            continue
        if t.link is None:
            raise StoreError(f"corrupt snapshot: {t.typ} has parents but no link keys")
        for row, c in enumerate(pc):
            if c:
                links.append(t.link[row])
                nums.append(t.ids[row])
                typs.append(t.code)
                parents.append(p.nums[row])
                pcodes.append(c)
    order = sorted(range(len(links)), key=links.__getitem__)
    last = 0
    lists = tree.lists
    for i in order:
        key = links[i]
        if key <= last or key > tree.clock:
            raise StoreError("corrupt snapshot: link keys are not unique and below the clock")
        last = key
        pnum = parents[i]
        found = ents.locate(pnum)
        if found is None or found[0].code != pcodes[i] or found[0].children is None:
            raise StoreError(f"corrupt snapshot: entity {nums[i]} has a Parent that cannot hold it")
        cl = lists.get(pnum)
        if cl is None:
            cl = lists[pnum] = ChildList()
        cl.append(key, nums[i], typs[i])
