"""The entity store: the deterministic state machine every node applies the log to.

Pure Python, no I/O, no clock, no randomness. Everything that could differ
between nodes is an *input*: the command and the ``now`` it was proposed at.
New entity ids come from a counter that is part of the state (and of the
snapshot), starting at 1 and incremented in log order, so every node computes
the same ids; deleted ids are never handed out again.

Layout, chosen for the hot path (one dict lookup per entity, one per field):

* ``_ents``: entity number -> :class:`Entity` (numbers are unique across types,
  so a lookup checks the type only afterwards).
* ``Entity.fields``: field name -> ``(value, write_time, writer_id)`` tuple.
  Cells are immutable tuples, so an atomic batch undoes itself by putting the
  old tuples back, and change records can hold old values without copying.
* ``_by_type``: type -> sorted list of entity numbers (ids only grow, so a
  create is an append) for FindEntities paging by bisection.
* ``_complete``: type -> complete field map, recomputed only by schema changes.

Errors inside a command are raised as the private ``Fail`` and turned into
an error response at the command boundary after the undo log has restored
the state; nothing else is caught, so a bug is never mistaken for a bad request.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from typing import Any, Callable, Mapping

from . import queries
from .arith import add, subtract
from .commands import (
    AdjustBehavior,
    Change,
    CommandRequest,
    CommandResponse,
    CreateEntity,
    CreateEntityResponse,
    DeleteEntity,
    DeleteEntityResponse,
    EntityExists,
    FieldExists,
    FindEntities,
    GetCompleteSchema,
    GetEntityTypes,
    GetSchema,
    LoadConfig,
    LoadConfigResponse,
    PushCondition,
    Read,
    SetSchema,
    SetSchemaResponse,
    TreeNode,
    UpdateEntity,
    UpdateEntityResponse,
    Write,
)
from .errors import Fail, StoreError
from .schema import (
    CHILDREN,
    NAME,
    PARENT,
    PATH_SEP,
    EntitySchema,
    FieldSchema,
    SchemaError,
    descendants,
    resolve_complete,
    validate_own,
)
from .types import (
    Choice,
    EntityId,
    EntityList,
    EntityReference,
    String,
    Timestamp,
    Value,
    make_unchecked,
)

logger = logging.getLogger(__name__)

Cell = tuple  # (Value, Timestamp, EntityId | None)

_SET = AdjustBehavior.Set
_ADD = AdjustBehavior.Add
_SUB = AdjustBehavior.Subtract
_CHANGES = PushCondition.Changes


class Entity:
    """One entity: its id, the time it was created and its field cells."""

    __slots__ = ("eid", "created", "fields")

    def __init__(self, eid: EntityId, created: Timestamp, fields: dict[str, Cell]) -> None:
        self.eid = eid
        self.created = created
        self.fields = fields


class Store:
    """An in-memory, deterministic entity/field database.

    ``apply`` runs any command (as the replicated log does) and returns the
    response plus the field changes it made; ``query`` runs read-only commands
    without touching state. Neither raises for a bad request: the error is in
    the response and the state is unchanged.
    """

    __slots__ = ("_schemas", "_complete", "_desc", "_types", "_ents", "_by_type", "_next_id", "_templates")

    def __init__(self) -> None:
        self._schemas: dict[str, EntitySchema] = {}
        self._complete: dict[str, Mapping[str, FieldSchema]] = {}
        self._desc: dict[str, tuple[str, ...]] = {}
        self._types: list[str] = []
        self._ents: dict[int, Entity] = {}
        self._by_type: dict[str, list[int]] = {}
        self._next_id = 1
        self._templates: dict[str, tuple[tuple[str, Value], ...]] = {}

    # ------------------------------------------------------------------ API

    def apply(self, cmd: CommandRequest, now: Timestamp) -> tuple[CommandResponse, list[Change]]:
        """Apply one command at proposal time ``now``; deterministic."""
        h = _APPLY.get(cmd.__class__)
        if h is None:
            q = _QUERY.get(cmd.__class__)
            if q is None:
                raise StoreError(f"not a store command: {cmd!r}")
            return q(self, cmd), []
        return h(self, cmd, now)

    def query(self, cmd: CommandRequest) -> CommandResponse:
        """Answer a read-only command (see :meth:`is_read_only`) without mutating."""
        c = cmd.__class__
        if c is UpdateEntity:
            return self._read_batch(cmd)  # type: ignore[arg-type]
        q = _QUERY.get(c)
        if q is None:
            raise StoreError(f"{c.__name__} is not a read-only command; use apply()")
        return q(self, cmd)

    @staticmethod
    def is_read_only(cmd: CommandRequest) -> bool:
        """True for UpdateEntity batches of only Reads, Get*, Find*, *Exists."""
        c = cmd.__class__
        if c is UpdateEntity:
            for r in cmd.request:  # type: ignore[union-attr]
                if r.__class__ is not Read:
                    return False
            return True
        return c in _QUERY

    def read_path(self, entity_id: EntityId, path: str) -> tuple[Value, Timestamp | None, EntityId | None]:
        """Read a field or ``->`` path; raises StoreError saying where a path broke."""
        try:
            _, _, cell = self._locate(entity_id, path)
        except Fail as f:
            raise StoreError(f.msg) from None
        return cell

    def snapshot(self) -> bytes:
        """The whole state as deterministic, compact bytes (see snapshot.py)."""
        from .snapshot import dump

        return dump(self)

    @classmethod
    def restore(cls, data: bytes) -> Store:
        """Rebuild a store from :meth:`snapshot` bytes; raises StoreError if corrupt."""
        from .snapshot import load

        return load(cls, data)

    @property
    def next_id(self) -> int:
        """The number the next created entity will get."""
        return self._next_id

    def entity_count(self) -> int:
        return len(self._ents)

    def entity_fields(self, entity_id: EntityId) -> dict[str, Cell] | None:
        """A copy of an entity's cells ``{field: (value, write_time, writer_id)}``, or None."""
        e = self._ents.get(entity_id.id)
        if e is None or e.eid.typ != entity_id.typ:
            return None
        return dict(e.fields)

    def check_invariants(self) -> list[str]:
        """Audit the whole state (O(size)); the problems found, [] if sound.
        For tests and simulators, not the hot path (see audit.py)."""
        from .audit import check_invariants

        return check_invariants(self)

    # ------------------------------------------------------- locating fields

    def _entity(self, eid: EntityId) -> Entity:
        e = self._ents.get(eid.id)
        if e is None or e.eid.typ != eid.typ:
            raise Fail(f"entity {eid} does not exist")
        return e

    def _locate(self, eid: EntityId, path: str) -> tuple[Entity, str, Cell]:
        e = self._ents.get(eid.id)
        if e is None or e.eid.typ != eid.typ:
            raise Fail(f"entity {eid} does not exist")
        cell = e.fields.get(path)
        if cell is not None:
            return e, path, cell
        if PATH_SEP in path:
            return self._walk(e, path)
        raise Fail(f"{e.eid} has no field {path!r}")

    def _walk(self, e: Entity, path: str) -> tuple[Entity, str, Cell]:
        segs = path.split(PATH_SEP)
        last = len(segs) - 1
        i = 0
        while i < last:
            seg = segs[i]
            cell = e.fields.get(seg)
            if cell is None:
                raise Fail(f"path {path!r} broke at {PATH_SEP.join(segs[: i + 1])!r}: {e.eid} has no field {seg!r}")
            v = cell[0]
            if v.__class__ is EntityReference:
                target = v.v
                i += 1
                where = PATH_SEP.join(segs[:i])
                if target is None:
                    raise Fail(f"path {path!r} broke at {where!r}: {e.eid}.{seg} is a null reference")
            elif v.__class__ is EntityList:
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
                if idx >= len(v.v):
                    raise Fail(
                        f"path {path!r} broke at {where!r}: index {idx} out of range "
                        f"({e.eid}.{seg} has {len(v.v)} entries)"
                    )
                target = v.v[idx]
            else:
                raise Fail(
                    f"path {path!r} broke at {PATH_SEP.join(segs[: i + 1])!r}: {e.eid}.{seg} is {v.tag}, "
                    "not an EntityReference or EntityList"
                )
            nxt = self._ents.get(target.id)
            if nxt is None or nxt.eid.typ != target.typ:
                raise Fail(f"path {path!r} broke at {where!r}: entity {target} does not exist")
            e = nxt
        name = segs[last]
        cell = e.fields.get(name)
        if cell is None:
            raise Fail(f"path {path!r} broke at {path!r}: {e.eid} has no field {name!r}")
        return e, name, cell

    # --------------------------------------------------------- UpdateEntity

    def _read_batch(self, cmd: UpdateEntity) -> UpdateEntityResponse:
        out: list = []
        i = 0
        try:
            for r in cmd.request:
                if r.__class__ is not Read:
                    raise StoreError(f"request[{i}] is a {r.__class__.__name__}: query() serves only Reads; use apply()")
                _, _, cell = self._locate(r.entity_id, r.field_type)
                out.append(Read(r.entity_id, r.field_type, cell[0], cell[1], cell[2]))
                i += 1
        except Fail as f:
            return UpdateEntityResponse([], f"request[{i}]: {f.msg}")
        return UpdateEntityResponse(out)

    def _update(self, cmd: UpdateEntity, now: Timestamp) -> tuple[UpdateEntityResponse, list[Change]]:
        changes: list[Change] = []
        undo: list[tuple[dict, str, Cell]] = []
        out: list = []
        i = 0
        try:
            for r in cmd.request:
                c = r.__class__
                if c is Read:
                    _, _, cell = self._locate(r.entity_id, r.field_type)
                    out.append(Read(r.entity_id, r.field_type, cell[0], cell[1], cell[2]))
                elif c is Write:
                    self._write(r, now, undo, changes)
                    out.append(r)
                else:
                    raise Fail(f"expected a Read or Write, got {c.__name__}")
                i += 1
        except Fail as f:
            for fields, name, old in reversed(undo):
                fields[name] = old
            return UpdateEntityResponse([], f"request[{i}]: {f.msg}"), []
        except BaseException:  # a caller passing non-store objects, or a bug: still all-or-nothing
            for fields, name, old in reversed(undo):
                fields[name] = old
            raise
        return UpdateEntityResponse(out), changes

    def _write(self, r: Write, now: Timestamp, undo: list, changes: list) -> None:
        e, name, cell = self._locate(r.entity_id, r.field_type)
        v = r.value
        old = cell[0]
        cls = old.__class__
        if v.__class__ is not cls:
            if v is None:
                raise Fail(f"write to {e.eid}.{name} has no value (null)")
            if not isinstance(v, Value):
                raise Fail(f"write to {e.eid}.{name}: value must be a Value, got {type(v).__name__}")
            raise Fail(f"type mismatch: {e.eid}.{name} is {cls.tag}, cannot write {v.tag}")
        ab = r.adjust_behavior
        if ab is _SET:
            new = v
        elif ab is _ADD:
            new = add(cls, old, v, e, name)
        elif ab is _SUB:
            new = subtract(cls, old, v, e, name)
        else:
            raise Fail(f"unknown adjust_behavior {ab!r}")
        if cls is Choice:
            choices = self._complete[e.eid.typ][name].choices or ()
            if not 0 <= new.v < len(choices):
                raise Fail(
                    f"Choice {new.v} out of range for {e.eid}.{name} "
                    f"(valid: 0..{len(choices) - 1}: {', '.join(choices)})"
                )
        if name == CHILDREN:
            raise Fail(
                f"{e.eid}.Children is maintained by the store; create or delete entities, "
                "or write a child's Parent to move it"
            )
        if r.push_condition is _CHANGES and new == old:
            return
        if name == PARENT:
            self._move(e, new.v, now, undo, changes)
        t = r.write_time or now
        w = r.writer_id
        f = e.fields
        f[name] = (new, t, w)
        undo.append((f, name, cell))
        changes.append(Change(e.eid, name, old, new, t, w))

    def _set_cell(self, e: Entity, name: str, new: Value, t: Timestamp, undo: list | None, changes: list) -> None:
        f = e.fields
        cell = f[name]
        f[name] = (new, t, None)
        if undo is not None:
            undo.append((f, name, cell))
        changes.append(Change(e.eid, name, cell[0], new, t, None))

    def _move(self, e: Entity, new_parent: EntityId | None, now: Timestamp, undo: list, changes: list) -> None:
        """Re-parent ``e`` (a write to its Parent): keep both Children lists right."""
        old_parent = e.fields[PARENT][0].v
        if new_parent == old_parent:
            return
        p = None
        if new_parent is not None:
            p = self._ents.get(new_parent.id)
            if p is None or p.eid.typ != new_parent.typ:
                raise Fail(f"cannot move {e.eid} under {new_parent}: it does not exist")
            if CHILDREN not in p.fields:
                raise Fail(f"cannot move {e.eid} under {new_parent}: it has no Children field")
            a: Entity | None = p
            while a is not None:
                if a is e:
                    raise Fail(f"cannot move {e.eid} under {new_parent}: that is {e.eid} itself or its descendant")
                pc = a.fields.get(PARENT)
                a = self._ents.get(pc[0].v.id) if pc is not None and pc[0].v is not None else None
        if old_parent is not None:
            op = self._ents.get(old_parent.id)
            if op is not None and CHILDREN in op.fields:
                kids = op.fields[CHILDREN][0].v
                me = e.eid
                self._set_cell(op, CHILDREN, make_unchecked(EntityList, tuple(k for k in kids if k != me)), now,
                               undo, changes)
        if p is not None:
            self._set_cell(p, CHILDREN, make_unchecked(EntityList, p.fields[CHILDREN][0].v + (e.eid,)), now,
                           undo, changes)

    # ------------------------------------------------------- create / delete

    def _create(self, cmd: CreateEntity, now: Timestamp) -> tuple[CreateEntityResponse, list[Change]]:
        changes: list[Change] = []
        try:
            eid = self._create_entity(cmd.entity_type, cmd.parent_id, cmd.name, now, changes)
        except Fail as f:
            return CreateEntityResponse(None, f.msg), []
        return CreateEntityResponse(eid), changes

    def _create_entity(
        self, typ: str, parent_id: EntityId | None, name: str, now: Timestamp, changes: list
    ) -> EntityId:
        tpl = self._templates.get(typ)
        if tpl is None:
            raise Fail(f"unknown entity type {typ!r}")
        if type(name) is not str:
            raise Fail(f"name must be a string, got {type(name).__name__}")
        cs = self._complete[typ]
        p = None
        if parent_id is not None:
            p = self._ents.get(parent_id.id)
            if p is None or p.eid.typ != parent_id.typ:
                raise Fail(f"parent {parent_id} does not exist")
            if PARENT not in cs:
                raise Fail(f"type {typ!r} has no Parent field, so it cannot have a parent")
            if CHILDREN not in p.fields:
                raise Fail(f"parent {parent_id} has no Children field")
        if name and NAME not in cs:
            raise Fail(f"type {typ!r} has no Name field, so the name must be empty")
        eid = EntityId(typ, self._next_id)
        self._next_id += 1
        fields = {n: (d, now, None) for n, d in tpl}
        if NAME in fields:
            fields[NAME] = (make_unchecked(String, name), now, None)
        if p is not None:
            fields[PARENT] = (make_unchecked(EntityReference, p.eid), now, None)
            self._set_cell(p, CHILDREN, make_unchecked(EntityList, p.fields[CHILDREN][0].v + (eid,)), now,
                           None, changes)
        self._ents[eid.id] = Entity(eid, now, fields)
        self._by_type[typ].append(eid.id)
        return eid

    def _delete(self, cmd: DeleteEntity, now: Timestamp) -> tuple[DeleteEntityResponse, list[Change]]:
        e = self._ents.get(cmd.entity_id.id)
        if e is None or e.eid.typ != cmd.entity_id.typ:
            return DeleteEntityResponse(f"entity {cmd.entity_id} does not exist"), []
        changes: list[Change] = []
        pc = e.fields.get(PARENT)
        if pc is not None and pc[0].v is not None:
            p = self._ents.get(pc[0].v.id)
            if p is not None and CHILDREN in p.fields:
                me = e.eid
                kids = tuple(k for k in p.fields[CHILDREN][0].v if k != me)
                self._set_cell(p, CHILDREN, make_unchecked(EntityList, kids), now, None, changes)
        removed: dict[str, list[int]] = {}
        stack = [e]
        ents = self._ents
        while stack:
            x = stack.pop()
            del ents[x.eid.id]
            removed.setdefault(x.eid.typ, []).append(x.eid.id)
            cc = x.fields.get(CHILDREN)
            if cc is not None:
                for k in cc[0].v:
                    ke = ents.get(k.id)
                    if ke is not None and ke.eid.typ == k.typ:
                        stack.append(ke)
        for typ, ids in removed.items():
            lst = self._by_type[typ]
            if len(ids) > 16:
                gone = set(ids)
                lst[:] = [x for x in lst if x not in gone]
            else:
                for x in ids:
                    del lst[bisect_left(lst, x)]
        return DeleteEntityResponse(), changes

    # --------------------------------------------------------------- schemas

    def _install_schemas(self, new: list[EntitySchema], now: Timestamp, where: Callable[[int], str]) -> None:
        """Validate ``new`` schemas together over the current ones and install
        them, reconciling existing entities. Raises Fail (nothing changed)."""
        schemas = dict(self._schemas)
        index: dict[str, int] = {}
        for i, s in enumerate(new):
            if s.__class__ is not EntitySchema:
                raise Fail(f"{where(i)}: expected an EntitySchema")
            err = validate_own(s)
            if err is not None:
                raise Fail(f"{where(i)}: {err}")
            if s.entity_type in index:
                raise Fail(f"{where(i)}: entity type {s.entity_type!r} given twice (also {where(index[s.entity_type])})")
            index[s.entity_type] = i
            schemas[s.entity_type] = s
        try:
            complete = resolve_complete(schemas)
        except SchemaError as e:
            i = index.get(e.entity_type)
            raise Fail(f"{where(i)}: {e}" if i is not None else str(e)) from None
        affected = [t for t in sorted(complete) if self._complete.get(t) != complete[t]]
        for t in affected:
            dropped = self._complete.get(t, {}).keys() - complete[t].keys()
            if PARENT in dropped or CHILDREN in dropped:
                for eid_n in self._by_type.get(t, ()):
                    f = self._ents[eid_n].fields
                    lost = None
                    if CHILDREN in dropped and f[CHILDREN][0].v:
                        lost = CHILDREN
                    elif PARENT in dropped and f[PARENT][0].v is not None:
                        lost = PARENT
                    if lost is not None:
                        raise Fail(
                            f"schema change would drop {lost} from {self._ents[eid_n].eid}, which is in the tree; "
                            "delete or move such entities first"
                        )
        self._schemas = schemas
        self._complete = complete
        self._desc = descendants(schemas)
        self._types = sorted(schemas)
        self._templates = {t: tuple((n, fs.default_value) for n, fs in cs.items()) for t, cs in complete.items()}
        for t in schemas:
            self._by_type.setdefault(t, [])
        for t in affected:
            self._reconcile(t, complete[t], now)

    def _reconcile(self, typ: str, cs: Mapping[str, FieldSchema], now: Timestamp) -> None:
        """Make every entity of ``typ`` have exactly the fields of ``cs``, each
        of its variant (a field whose variant changed, or a Choice now out of
        range, is reset to the default)."""
        for n in self._by_type.get(typ, ()):
            f = self._ents[n].fields
            for name in [k for k in f if k not in cs]:
                del f[name]
            for name, fs in cs.items():
                d = fs.default_value
                cell = f.get(name)
                if cell is None or cell[0].__class__ is not d.__class__ or (
                    d.__class__ is Choice and not 0 <= cell[0].v < len(fs.choices or ())
                ):
                    f[name] = (d, now, None)

    def _set_schema(self, cmd: SetSchema, now: Timestamp) -> tuple[SetSchemaResponse, list[Change]]:
        try:
            self._install_schemas([cmd.entity_schema], now, lambda i: "entity_schema")
        except Fail as f:
            return SetSchemaResponse(f.msg), []
        return SetSchemaResponse(), []

    def _load_config(self, cmd: LoadConfig, now: Timestamp) -> tuple[LoadConfigResponse, list[Change]]:
        scratch = Store.restore(self.snapshot()) if (self._ents or self._schemas) else Store()
        changes: list[Change] = []
        first = scratch._next_id
        try:
            scratch._install_schemas(list(cmd.schemas), now, lambda i: f"schemas[{i}]")
            for i, node in enumerate(cmd.tree):
                scratch._load_tree(node, now, f"tree[{i}]", changes)
        except Fail as f:
            return LoadConfigResponse(f.msg), []
        for s in Store.__slots__:
            setattr(self, s, getattr(scratch, s))
        return LoadConfigResponse(None, self._next_id - first), changes

    def _load_tree(self, root: TreeNode, now: Timestamp, where: str, changes: list) -> None:
        """Create a config tree depth-first in file order (iteratively: any depth)."""
        stack: list[tuple[TreeNode, EntityId | None, str]] = [(root, None, where)]
        while stack:
            node, parent, at_node = stack.pop()
            try:
                eid = self._create_entity(node.entity_type, parent, node.name, now, changes)
            except Fail as f:
                raise Fail(f"{at_node}: {f.msg}") from None
            e = self._ents[eid.id]
            cs = self._complete[eid.typ]
            for name, v in node.attributes.items():
                at = f"{at_node}.attributes.{name}"
                if name in (NAME, PARENT, CHILDREN):
                    raise Fail(f"{at}: {name} is set by the tree itself (name / nesting), not by attributes")
                fs = cs.get(name)
                if fs is None:
                    raise Fail(f"{at}: type {eid.typ!r} has no field {name!r}")
                d = fs.default_value
                if v.__class__ is not d.__class__:
                    got = v.tag if isinstance(v, Value) else type(v).__name__
                    raise Fail(f"{at}: type mismatch: field is {d.tag}, got {got}")
                if d.__class__ is Choice and not 0 <= v.v < len(fs.choices or ()):
                    raise Fail(f"{at}: Choice {v.v} out of range (valid: 0..{len(fs.choices or ()) - 1})")
                e.fields[name] = (v, now, None)
            kids = node.children
            for j in range(len(kids) - 1, -1, -1):
                stack.append((kids[j], eid, f"{at_node}.children[{j}]"))


_APPLY: dict[type, Callable[[Store, Any, Timestamp], tuple[Any, list[Change]]]] = {
    UpdateEntity: Store._update,
    CreateEntity: Store._create,
    DeleteEntity: Store._delete,
    SetSchema: Store._set_schema,
    LoadConfig: Store._load_config,
}
_QUERY: dict[type, Callable[[Store, Any], Any]] = {
    GetSchema: queries.get_schema,
    GetCompleteSchema: queries.get_complete_schema,
    FindEntities: queries.find,
    GetEntityTypes: queries.get_types,
    EntityExists: queries.entity_exists,
    FieldExists: queries.field_exists,
}
