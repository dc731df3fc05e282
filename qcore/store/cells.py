"""Finding a field and reading its cell: an entity's table row and column,
through ``->`` paths (SPEC 3 indirection), with errors that say where a
path broke."""

from __future__ import annotations

from .column_kinds import ReferenceColumn
from .columns import NS, SAME, Column
from .errors import Fail
from .schema import PATH_SEP
from .table import Entities, Table
from .tree import Tree
from .types import EntityId, EntityList, Timestamp, Value

_new = object.__new__
_set = object.__setattr__

Cell = tuple[Value, Timestamp, "EntityId | None"]
Located = tuple[Table, int, str, Column]


def locate(ents: Entities, tree: Tree, eid: EntityId, path: str) -> Located:
    """The table, row, plain field name and column that ``path`` on ``eid`` reaches."""
    found = ents.find(eid)
    if found is None:
        raise Fail(f"entity {eid} does not exist")
    t, row = found
    col = t.cols.get(path)
    if col is not None:
        return t, row, path, col
    if PATH_SEP in path:
        return _walk(ents, tree, t, row, path)
    raise Fail(f"{eid} has no field {path!r}")


def _walk(ents: Entities, tree: Tree, t: Table, row: int, path: str) -> Located:
    segs = path.split(PATH_SEP)
    last = len(segs) - 1
    i = 0
    while i < last:
        seg = segs[i]
        col = t.cols.get(seg)
        here = EntityId(t.typ, t.ids[row])
        if col is None:
            raise Fail(f"path {path!r} broke at {PATH_SEP.join(segs[: i + 1])!r}: {here} has no field {seg!r}")
        target: EntityId | None
        if col.__class__ is ReferenceColumn:
            code, num = col.ref(row)
            i += 1
            where = PATH_SEP.join(segs[:i])
            if code == 0:
                raise Fail(f"path {path!r} broke at {where!r}: {here}.{seg} is a null reference")
            target = EntityId(ents.names.names[code], num)
        elif col.cls is EntityList:
            idx_s = segs[i + 1]
            i += 2
            where = PATH_SEP.join(segs[:i])
            if i > last:
                raise Fail(f"path {path!r} ends with an index into {seg!r}; it must end with a field name")
            if not idx_s.isdigit() or not idx_s.isascii():
                raise Fail(
                    f"path {path!r} broke at {where!r}: {seg!r} is an EntityList, "
                    f"expected an index after it, got {idx_s!r}"
                )
            idx = int(idx_s)
            if col is t.children:
                n = tree.count(here.id)
                target = tree.at(here.id, idx)
            else:
                lst = col.payload(row)
                n = len(lst)
                target = lst[idx] if idx < n else None
            if target is None:
                raise Fail(f"path {path!r} broke at {where!r}: index {idx} out of range ({here}.{seg} has {n} entries)")
        else:
            raise Fail(
                f"path {path!r} broke at {PATH_SEP.join(segs[: i + 1])!r}: {here}.{seg} is {col.cls.tag}, "
                "not an EntityReference or EntityList"
            )
        found = ents.find(target)
        if found is None:
            raise Fail(f"path {path!r} broke at {where!r}: entity {target} does not exist")
        t, row = found
    name = segs[last]
    col = t.cols.get(name)
    if col is None:
        raise Fail(f"path {path!r} broke at {path!r}: {EntityId(t.typ, t.ids[row])} has no field {name!r}")
    return t, row, name, col


def value(tree: Tree, t: Table, row: int, col: Column) -> Value:
    """The value of one cell (Children: the current list)."""
    if col is t.children:
        return tree.value(t.ids[row])
    return col.value(row)


def cell(tree: Tree, t: Table, row: int, col: Column) -> Cell:
    """(value, write_time, writer_id) of one cell."""
    v = tree.value(t.ids[row]) if col is t.children else col.value(row)
    times = col.times
    c = SAME if times is None else times[row]
    if c == SAME:
        c = t.created[row]
    if c >= 0:
        secs, nanos = divmod(c, NS)
        ts = _new(Timestamp)
        _set(ts, "secs", secs)
        _set(ts, "nanos", nanos)
    else:
        ts = t.time(col, row)
    return v, ts, None if col.wtyp is None else col.writer(row)
