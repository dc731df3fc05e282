"""Loading a version-2 snapshot document (the layout is in snapshot.py).

Everything is checked on the way in: a damaged document raises StoreError
rather than yield a store that breaks later (tests feed it damaged ones).
Columns are rebuilt in bulk (arrays from lists, one buffer per String
column) and every parent's children from the Parent columns and link keys.
"""

from __future__ import annotations

import base64
from array import array
from itertools import accumulate, compress, groupby
from operator import lt
from typing import TYPE_CHECKING, Any, Mapping

from .column_kinds import ReferenceColumn, StringColumn
from .columns import BIG, SAME, Column, Names
from .errors import StoreError
from .schema import FieldSchema
from .snapshot_v1 import Decoder, load_schemas
from .table import Entities, Table
from .tree import ChildList, Tree
from .types import I64_MAX, Blob, Choice, EntityId, EntityList, Timestamp, TimestampValue

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store




def load_v2(doc: dict[str, Any]) -> Store:
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
    try:
        ents.place_table(t)
    except ValueError as e:
        raise StoreError(f"corrupt snapshot: {e}") from None
    return ids[-1]


def _check_code(c: int, names: Names) -> None:
    if type(c) is not int or not 0 < c < len(names.names):
        raise StoreError(f"corrupt snapshot: type code {c!r}")


def _load_strings(col: StringColumn, vals: dict[str, Any], n: int) -> None:
    text, lens = vals["s"], vals["l"]
    if type(text) is not str or sum(lens) != len(text) or min(lens, default=0) < 0:
        raise StoreError(f"corrupt snapshot: the text of {col.name} does not add up")
    data = text.encode()
    if len(data) != len(text):  # not ASCII: byte lengths string by string
        pos, blens = 0, []
        for k in lens:
            blens.append(len(text[pos : pos + k].encode()))
            pos += k
        lens = blens
    base = len(col.buf)
    col.buf += data
    dflt, dlen = col.default.v, col.dlen
    if "r" not in vals:  # dense: every row's text, in row order
        if len(lens) != n:
            raise StoreError(f"corrupt snapshot: {col.name} has {len(lens)} strings for {n} rows")
        starts = array("Q", accumulate(lens, initial=base))
        starts.pop()
        col.off, col.ln, col.used = starts, array("I", lens), len(data)
        if lens.count(dlen):  # rows holding the default: the shared copy (equal states, equal snapshots)
            for r in [r for r, k in enumerate(lens) if k == dlen]:
                if bytes(col.text(r)).decode() == dflt:
                    col.set_raw(r, (0, dlen))
        return
    rows = list(accumulate(vals["r"]))
    if len(rows) != len(lens) or (rows and (rows[0] < 0 or rows[-1] >= n)):
        raise StoreError(f"corrupt snapshot: {col.name} has the wrong number of strings")
    for r, o, k in zip(rows, accumulate(lens, initial=base), lens):
        col.set_raw(r, (o, k))
        if k == dlen and bytes(col.text(r)).decode() == dflt:
            col.set_raw(r, (0, dlen))


def _load_values(col: Column, vals: Any, n: int, names: Names) -> None:
    if col.__class__ is StringColumn:
        if type(vals) is not dict:
            raise StoreError(f"corrupt snapshot: {col.name} is not a string column")
        _load_strings(col, vals, n)
        return
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


_PAYLOAD_TYPES: dict[type, set[type]] = {EntityList: {tuple}, Blob: {bytes}, TimestampValue: {Timestamp}}


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
    """Rebuild every parent's children from the Parent columns and link keys:
    the children grouped by parent, each group in link-key order."""
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
        rows = list(compress(range(len(pc)), pc))
        links.extend(map(t.link.__getitem__, rows))
        nums.extend(map(t.ids.__getitem__, rows))
        typs.extend([t.code] * len(rows))
        parents.extend(map(p.nums.__getitem__, rows))
        pcodes.extend(map(pc.__getitem__, rows))
    by_key = sorted(range(len(links)), key=links.__getitem__)
    keys = [links[i] for i in by_key]
    if keys and (keys[0] <= 0 or keys[-1] > tree.clock or not all(map(lt, keys[:-1], keys[1:]))):
        raise StoreError("corrupt snapshot: link keys are not unique and below the clock")
    lists = tree.lists
    # stable: within a parent, still in link-key order
    for pnum, group in groupby(sorted(by_key, key=parents.__getitem__), key=parents.__getitem__):
        idx = list(group)
        found = ents.locate(pnum)
        if found is None or found[0].children is None or not all(map(found[0].code.__eq__, map(pcodes.__getitem__, idx))):
            raise StoreError(f"corrupt snapshot: entity {nums[idx[0]]} has a Parent that cannot hold it")
        cl = lists[pnum] = ChildList()
        cl.keys = array("q", map(links.__getitem__, idx))
        cl.nums = array("Q", map(nums.__getitem__, idx))
        cl.typs = array("i", map(typs.__getitem__, idx))
        cl.live = len(idx)
