"""A full audit of a Store's invariants, for tests and simulators.

Checks: every table has exactly its type's complete schema's columns, each
of its default's variant, as many cells as rows, ids ascending; the entity
map points at each live row and nothing else; Choices are in range and
write times well-formed (a time equal to the row's creation time is SAME);
Parent and Children agree both ways (each child listed once, under its own
link key, below the tree's clock); the id counter is above every id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .column_kinds import ChildrenColumn, StringColumn
from .columns import BIG, SAME
from .table import Table
from .tree import LIVE
from .types import Choice, EntityId

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def check_invariants(store: Store) -> list[str]:
    """The problems found, [] if the state is sound."""
    bad: list[str] = []
    ents, tree, cat = store.entities, store.tree, store.catalog
    live = 0
    for typ, t in ents.tables.items():
        cs = cat.fields(typ)
        if cs is None:
            bad.append(f"table {typ}: type has no schema")
            continue
        if list(t.cols) != list(cs):
            bad.append(f"table {typ}: columns {list(t.cols)} != schema {list(cs)}")
        n = len(t.ids)
        if any(t.ids[i] >= t.ids[i + 1] for i in range(n - 1)):
            bad.append(f"table {typ}: ids not ascending")
        if len(t.alive) != n or len(t.created) != n or sum(t.alive) != t.live:
            bad.append(f"table {typ}: row bookkeeping is off")
        for name, col in t.cols.items():
            fs = cs.get(name)
            if fs is not None and col.cls is not fs.default_value.__class__:
                bad.append(f"{typ}.{name}: column is {col.cls.tag}, schema says {fs.default_value.tag}")
            if col.rows() != n:
                bad.append(f"{typ}.{name}: {col.rows()} cells for {n} rows")
            if isinstance(col, StringColumn):
                _check_text(col, f"{typ}.{name}", bad)
        for row in t.live_rows():
            live += 1
            num = t.ids[row]
            eid = EntityId(typ, num)
            if ents.locate(num) != (t, row):
                bad.append(f"{eid}: the entity map does not point at its row")
            if num >= store.next_id:
                bad.append(f"{eid}: id not below next_id {store.next_id}")
            for name, col in t.cols.items():
                fs = cs.get(name)
                if fs is not None and col.cls is Choice and not 0 <= col.payload(row) < len(fs.choices or ()):
                    bad.append(f"{eid}.{name}: choice {col.payload(row)} out of range")
                code = col.time_code(row)
                if code == BIG and row not in col.big or code < 0 and code not in (SAME, BIG):
                    bad.append(f"{eid}.{name}: write time code {code}")
                if code >= 0 and code == t.created[row]:
                    bad.append(f"{eid}.{name}: write time equal to creation time not stored as SAME")
            _check_parent(store, t, row, eid, bad)
    if live != ents.count:
        bad.append(f"entity count {ents.count} but {live} live rows")
    mapped = sum(1 for pg in ents.pages.values() for v in pg if v >= 0)
    if mapped != live:
        bad.append(f"the entity map holds {mapped} entries for {live} entities")
    for pnum, cl in tree.lists.items():
        found = ents.locate(pnum)
        if found is None or not isinstance(found[0].children, ChildrenColumn):
            bad.append(f"entity {pnum} has children but does not exist or has no Children field")
            continue
        pt, prow = found
        keys = cl.keys
        if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)) or (keys and keys[-1] > tree.clock):
            bad.append(f"{EntityId(pt.typ, pnum)}: link keys not ascending below the clock")
        count = 0
        for i in range(len(keys)):
            if cl.gone is not None and cl.gone[i] != LIVE:
                continue
            count += 1
            kid = ents.locate(cl.nums[i])
            if kid is None or kid[0].code != cl.typs[i]:
                bad.append(f"{EntityId(pt.typ, pnum)}: child {cl.nums[i]} does not exist")
            elif kid[0].parent_of(kid[1]) != (pt.code, pnum) or kid[0].link_of(kid[1]) != keys[i]:
                bad.append(f"{EntityId(pt.typ, pnum)}: child {cl.nums[i]} has another Parent or link")
        if count != cl.live:
            bad.append(f"{EntityId(pt.typ, pnum)}: {cl.live} children counted, {count} listed")
    return bad


def _check_text(col: StringColumn, where: str, bad: list[str]) -> None:
    used = 0
    for o, n in zip(col.off, col.ln):
        if o == 0:
            if n != col.dlen:
                bad.append(f"{where}: a row at the default has length {n}")
            continue
        used += n
        if o + n > len(col.buf):
            bad.append(f"{where}: text at {o}+{n} beyond the buffer")
        elif bytes(col.buf[o : o + n]).decode() == col.default.v:
            bad.append(f"{where}: the default stored as text of its own")
    if used != col.used:
        bad.append(f"{where}: {used} bytes in use, {col.used} counted")


def _check_parent(store: Store, t: Table, row: int, eid: EntityId, bad: list[str]) -> None:
    code, pnum = t.parent_of(row)
    if code == 0:
        return
    ents, tree = store.entities, store.tree
    found = ents.locate(pnum)
    if found is None or found[0].code != code:
        bad.append(f"{eid}: Parent {pnum} does not exist")
        return
    cl = tree.lists.get(pnum)
    key = t.link_of(row)
    try:
        slot = cl.slot(key) if cl is not None else -1
    except KeyError:
        slot = -1
    if slot < 0 or cl is None or cl.nums[slot] != eid.id or (cl.gone is not None and cl.gone[slot] != LIVE):
        bad.append(f"{eid}: Parent {found[0].typ}${pnum} does not list it in Children")
