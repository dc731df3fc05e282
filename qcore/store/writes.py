"""The commands that change entities: UpdateEntity (reads and writes, moves
through ``Parent``), CreateEntity and DeleteEntity.

An UpdateEntity batch keeps an undo log of ``(function, a, b)`` records;
when a request fails, they are called in reverse and the state is exactly
as before (the tree's clock included). Child lists are rebuilt (``settle``)
only between commands, because undo records hold their slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .arith import add, subtract
from .cells import cell, locate
from .column_kinds import StringColumn
from .columns import Column
from .commands import (
    AdjustBehavior,
    Change,
    CreateEntity,
    CreateEntityResponse,
    DeleteEntity,
    DeleteEntityResponse,
    PushCondition,
    Read,
    Request,
    UpdateEntity,
    UpdateEntityResponse,
    Write,
)
from .errors import Fail
from .schema import CHILDREN, NAME, PARENT
from .table import Table
from .types import U64_MAX, Choice, EntityId, EntityReference, Timestamp, Value

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store

Undo = list[tuple[Callable[[Any, Any], None], Any, Any]]

_SET = AdjustBehavior.Set
_ADD = AdjustBehavior.Add
_SUB = AdjustBehavior.Subtract
_CHANGES = PushCondition.Changes


def update(store: Store, cmd: UpdateEntity, now: Timestamp,
           stop: Callable[[Any], bool] | None = None,
           check: Callable[[Request], str | None] | None = None) -> tuple[UpdateEntityResponse, list[Change]]:
    """Apply a batch, all or nothing. Each answered Read and each Write (echoed as
    written) is shown to ``stop``; once it says True, later Reads are checked but
    not answered (Store.apply). Each request is shown to ``check`` before it runs,
    on the state the requests before it left; a text fails the batch there."""
    ents, tree = store.entities, store.tree
    changes: list[Change] = []
    undo: Undo = []
    out: list[Request] = []
    clock = tree.clock
    texts: set[Column] = set()  # string columns written: their garbage is tidied after the batch
    reqs = cmd.request
    last = len(reqs) - 1
    i = 0
    answering = True
    try:
        for r in reqs:
            c = r.__class__
            if check is not None:
                why = check(r)
                if why is not None:
                    raise Fail(why)
            if c is Read:
                t, row, _, col = locate(ents, tree, r.entity_id, r.field_type)
                if answering:
                    v, wt, w = cell(tree, t, row, col)
                    read = Read(r.entity_id, r.field_type, v, wt, w)
                    out.append(read)
                    if stop is not None and stop(read):
                        answering = False
            elif c is Write:
                # Nothing after the last request can fail, so it needs no undo records.
                col = _write(store, r, now, undo if i < last else None, changes,  # type: ignore[arg-type]
                             cmd.moves_by_writer)
                if col.__class__ is StringColumn:
                    texts.add(col)
                out.append(r)
                if answering and stop is not None and stop(r):
                    answering = False
            else:
                raise Fail(f"expected a Read or Write, got {c.__name__}")
            i += 1
    except Fail as f:
        _undo(undo)
        tree.clock = clock
        _settle(texts)
        return UpdateEntityResponse([], f"request[{i}]: {f.msg}"), []
    except BaseException:  # a caller passing non-store objects, or a bug: still all-or-nothing
        _undo(undo)
        tree.clock = clock
        raise
    tree.settle()
    _settle(texts)
    return UpdateEntityResponse(out), changes


def _settle(cols: set[Column]) -> None:
    for col in cols:
        col.settle()


def _undo(undo: Undo) -> None:
    for fn, a, b in reversed(undo):
        fn(a, b)


def _write(store: Store, r: Write, now: Timestamp, undo: Undo | None, changes: list[Change],
           moves_by_writer: bool = False) -> Column:
    """Apply one Write; returns the column it wrote (or would have, for an
    unchanged ``Changes`` write)."""
    t, row, name, col = locate(store.entities, store.tree, r.entity_id, r.field_type)
    v = r.value
    cls = col.cls
    eid = r.entity_id if name is r.field_type else EntityId(t.typ, t.ids[row])
    if v.__class__ is not cls:
        if v is None:
            raise Fail(f"write to {eid}.{name} has no value (null)")
        if not isinstance(v, Value):
            raise Fail(f"write to {eid}.{name}: value must be a Value, got {type(v).__name__}")
        raise Fail(f"type mismatch: {eid}.{name} is {cls.tag}, cannot write {v.tag}")
    ab = r.adjust_behavior
    if col is t.children:
        if ab is not _SET and ab is not _ADD and ab is not _SUB:
            raise Fail(f"unknown adjust_behavior {ab!r}")
        raise Fail(
            f"{eid}.Children is maintained by the store; create or delete entities, "
            "or write a child's Parent to move it"
        )
    old = col.value(row)
    if ab is _SET:
        new = v
    elif ab is _ADD:
        new = add(cls, old, v, eid, name)
    elif ab is _SUB:
        new = subtract(cls, old, v, eid, name)
    else:
        raise Fail(f"unknown adjust_behavior {ab!r}")
    if cls is Choice:
        choices = store.catalog.complete[t.typ][name].choices or ()
        if not 0 <= new.v < len(choices):
            raise Fail(
                f"Choice {new.v} out of range for {eid}.{name} "
                f"(valid: 0..{len(choices) - 1}: {', '.join(choices)})"
            )
    if r.push_condition is _CHANGES and new == old:
        return col
    w = r.writer_id
    if w is not None and (w.__class__ is not EntityId or not 0 <= w.id <= U64_MAX):
        raise Fail(f"write to {eid}.{name}: writer_id must be an EntityId with an unsigned 64-bit id, got {w!r}")
    if cls is EntityReference and new.v is not None and not 0 <= new.v.id <= U64_MAX:
        raise Fail(f"write to {eid}.{name}: entity ids are unsigned 64-bit, got {new.v.id}")
    if col is t.parent:
        _move(store, t, row, eid, new.v, now, undo, changes, w if moves_by_writer else None)
    wt = r.write_time or now
    if undo is not None:
        undo.append((col.load, row, col.save(row)))
    col.put(row, new)
    t.stamp(col, row, wt, w)
    changes.append(Change(eid, name, old, new, wt, w))
    return col


def _touch_children(t: Table, row: int, now: Timestamp, undo: Undo | None, writer: EntityId | None) -> None:
    """Stamp a parent's Children cell: written now, by ``writer``."""
    col: Column = t.children  # type: ignore[assignment]
    if undo is not None:
        undo.append((col.load, row, col.save(row)))
    t.stamp(col, row, now, writer)


def _detach(store: Store, t: Table, row: int, now: Timestamp, undo: Undo | None, changes: list[Change],
            writer: EntityId | None = None) -> None:
    """Take the entity at ``t[row]`` out of its parent's Children (if it has a parent), by ``writer``."""
    code, pnum = t.parent_of(row)
    if code == 0:
        return
    found = store.entities.locate(pnum)
    if found is None or found[0].children is None:  # pragma: no cover - the tree is kept whole
        return
    pt, prow = found
    tree = store.tree
    before = tree.view(pnum)
    slot = tree.detach(pnum, t.link_of(row))
    if undo is not None:
        undo.append((tree.undo_detach, pnum, slot))
    _touch_children(pt, prow, now, undo, writer)
    changes.append(Change(EntityId(pt.typ, pnum), CHILDREN, before, tree.view(pnum), now, writer))


def _attach(store: Store, t: Table, row: int, pt: Table, prow: int, now: Timestamp, undo: Undo | None,
            changes: list[Change], writer: EntityId | None = None) -> None:
    """Append the entity at ``t[row]`` to the Children of the one at ``pt[prow]``, by ``writer``."""
    tree = store.tree
    pnum = pt.ids[prow]
    before = tree.view(pnum)
    key = tree.attach(pnum, t.ids[row], t.code)
    if undo is not None:
        undo.append((tree.undo_attach, pnum, None))
        undo.append((t.set_link, row, t.link_of(row)))
    t.set_link(row, key)
    _touch_children(pt, prow, now, undo, writer)
    changes.append(Change(EntityId(pt.typ, pnum), CHILDREN, before, tree.view(pnum), now, writer))


def _move(store: Store, t: Table, row: int, eid: EntityId, new_parent: EntityId | None, now: Timestamp,
          undo: Undo | None, changes: list[Change], writer: EntityId | None = None) -> None:
    """Re-parent ``eid`` (a write to its Parent): keep both Children lists right, written by ``writer``."""
    ents = store.entities
    code, pnum = t.parent_of(row)
    old_parent = None if code == 0 else EntityId(ents.names.names[code], pnum)
    if new_parent == old_parent:
        return
    target = None
    if new_parent is not None:
        target = ents.find(new_parent)
        if target is None:
            raise Fail(f"cannot move {eid} under {new_parent}: it does not exist")
        if target[0].children is None:
            raise Fail(f"cannot move {eid} under {new_parent}: it has no Children field")
        a: tuple[Table, int] | None = target
        while a is not None:
            at, arow = a
            if at.ids[arow] == eid.id:
                raise Fail(f"cannot move {eid} under {new_parent}: that is {eid} itself or its descendant")
            acode, anum = at.parent_of(arow)
            a = ents.locate(anum) if acode else None
    _detach(store, t, row, now, undo, changes, writer)
    if target is not None:
        _attach(store, t, row, target[0], target[1], now, undo, changes, writer)


# ------------------------------------------------------------ create / delete


def create(store: Store, cmd: CreateEntity, now: Timestamp) -> tuple[CreateEntityResponse, list[Change]]:
    changes: list[Change] = []
    try:
        eid = create_entity(store, cmd.entity_type, cmd.parent_id, cmd.name, now, changes, cmd.writer_id)
    except Fail as f:
        return CreateEntityResponse(None, f.msg), []
    return CreateEntityResponse(eid), changes


def _check_writer(w: EntityId | None, what: str) -> None:
    if w is not None and (w.__class__ is not EntityId or not 0 <= w.id <= U64_MAX):
        raise Fail(f"{what}: writer_id must be an EntityId with an unsigned 64-bit id, got {w!r}")


def create_entity(store: Store, typ: str, parent_id: EntityId | None, name: str, now: Timestamp,
                  changes: list[Change], writer: EntityId | None = None) -> EntityId:
    """Create one entity (CreateEntity, or a node of a config tree); raises Fail, changing nothing.
    Every field of the new entity, and the parent's Children, are written now by ``writer``."""
    _check_writer(writer, f"create {typ}")
    cs = store.catalog.complete.get(typ)
    if cs is None:
        raise Fail(f"unknown entity type {typ!r}")
    if type(name) is not str:
        raise Fail(f"name must be a string, got {type(name).__name__}")
    if not name.isascii():
        try:
            name.encode()
        except UnicodeEncodeError as e:
            raise Fail(f"name must be valid Unicode text ({e.reason} at {e.start})") from None
    ents = store.entities
    parent = None
    if parent_id is not None:
        parent = ents.find(parent_id)
        if parent is None:
            raise Fail(f"parent {parent_id} does not exist")
        if PARENT not in cs:
            raise Fail(f"type {typ!r} has no Parent field, so it cannot have a parent")
        if parent[0].children is None:
            raise Fail(f"parent {parent_id} has no Children field")
    if name and NAME not in cs:
        raise Fail(f"type {typ!r} has no Name field, so the name must be empty")
    num = store.take_id()
    t = ents.table(typ)
    row = ents.add(t, num, now)
    name_col = t.cols.get(NAME)
    if name_col is not None:
        name_col.set_payload(row, name)
    if writer is not None:
        for col in t.cols.values():
            t.stamp(col, row, now, writer)
    if parent is not None:
        pt, prow = parent
        t.parent.set_payload(row, (pt.code, pt.ids[prow]))  # type: ignore[union-attr]
        _attach(store, t, row, pt, prow, now, None, changes, writer)
    return EntityId(typ, num)


def delete(store: Store, cmd: DeleteEntity, now: Timestamp) -> tuple[DeleteEntityResponse, list[Change]]:
    ents, tree = store.entities, store.tree
    found = ents.find(cmd.entity_id)
    if found is None:
        return DeleteEntityResponse(f"entity {cmd.entity_id} does not exist"), []
    try:
        _check_writer(cmd.writer_id, f"delete {cmd.entity_id}")
    except Fail as f:
        return DeleteEntityResponse(f.msg), []
    changes: list[Change] = []
    _detach(store, found[0], found[1], now, None, changes, cmd.writer_id)
    tables: set[Table] = set()
    stack = [cmd.entity_id.id]
    while stack:
        num = stack.pop()
        stack.extend(tree.child_numbers(num))
        tree.drop(num)
        tables.add(ents.locate(num)[0])  # type: ignore[index]
        ents.remove(num)
    for t in tables:
        if t.needs_compaction():
            ents.compact(t)
        _settle(set(t.cols.values()))
    tree.settle()
    return DeleteEntityResponse(), changes
