"""The commands that change schemas: SetSchema and LoadConfig (the config
file's schemas and tree, applied atomically at cluster initialisation).

A schema change reaches existing entities of the type and of every type
derived from it: new fields are added at their default (written at the
command's time), removed ones dropped, a field whose variant changed or a
Choice now out of range is reset (docs/data-model.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .commands import Change, LoadConfig, LoadConfigResponse, SetSchema, SetSchemaResponse, TreeNode
from .errors import Fail
from .schema import CHILDREN, NAME, PARENT, EntitySchema, SchemaError, validate_own
from .types import Choice, EntityId, Timestamp, Value
from .writes import create_entity

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def set_schema(store: Store, cmd: SetSchema, now: Timestamp) -> tuple[SetSchemaResponse, list[Change]]:
    try:
        install_schemas(store, [cmd.entity_schema], now, lambda i: "entity_schema")
    except Fail as f:
        return SetSchemaResponse(f.msg), []
    return SetSchemaResponse(), []


def install_schemas(store: Store, new: list[EntitySchema], now: Timestamp, where: Callable[[int], str]) -> None:
    """Validate ``new`` schemas together over the current ones and install
    them, reconciling existing entities. Raises Fail (nothing changed)."""
    index: dict[str, int] = {}
    given: dict[str, EntitySchema] = {}
    for i, s in enumerate(new):
        if s.__class__ is not EntitySchema:
            raise Fail(f"{where(i)}: expected an EntitySchema")
        err = validate_own(s) or _stray_choices(s)
        if err is not None:
            raise Fail(f"{where(i)}: {err}")
        if s.entity_type in index:
            raise Fail(f"{where(i)}: entity type {s.entity_type!r} given twice (also {where(index[s.entity_type])})")
        index[s.entity_type] = i
        given[s.entity_type] = s
    old = store.catalog
    try:
        cat = old.with_schemas(given)
    except SchemaError as e:
        at = index.get(e.entity_type)
        raise Fail(f"{where(at)}: {e}" if at is not None else str(e)) from None
    affected = [t for t in cat.types if old.complete.get(t) != cat.complete[t]]
    ents, tree = store.entities, store.tree
    for t in affected:
        table = ents.tables.get(t)
        if table is None or not table.live:
            continue
        dropped = (old.complete.get(t) or {}).keys() - cat.complete[t].keys()
        if PARENT not in dropped and CHILDREN not in dropped:
            continue
        for row in table.live_rows():
            num = table.ids[row]
            lost = None
            if CHILDREN in dropped and tree.count(num):
                lost = CHILDREN
            elif PARENT in dropped and table.parent_of(row)[0] != 0:
                lost = PARENT
            if lost is not None:
                raise Fail(
                    f"schema change would drop {lost} from {EntityId(t, num)}, which is in the tree; "
                    "delete or move such entities first"
                )
    store.set_catalog(cat)
    for t in cat.types:
        ents.table(t)
    for t in affected:
        ents.table(t).set_fields(cat.complete[t], now)


def _stray_choices(schema: EntitySchema) -> str | None:
    """Choices on a field that is not a Choice would mean nothing: refused in a new schema.
    (Not in validate_own, which snapshots are loaded with: a store that took one before keeps loading.)"""
    for name, fs in schema.fields.items():
        if fs.choices is not None and fs.default_value.__class__ is not Choice:
            return (f"field {name!r} of {schema.entity_type!r}: only a Choice field has choices; "
                    f"this one is {_article(fs.default_value.tag)} {fs.default_value.tag} field")
    return None


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def load_config(store: Store, cmd: LoadConfig, now: Timestamp) -> tuple[LoadConfigResponse, list[Change]]:
    """Apply the schemas then the tree on a copy, and keep the copy only if all of it succeeded."""
    scratch = store.copy()
    changes: list[Change] = []
    first = scratch.next_id
    try:
        install_schemas(scratch, list(cmd.schemas), now, lambda i: f"schemas[{i}]")
        for i, node in enumerate(cmd.tree):
            _load_tree(scratch, node, now, f"tree[{i}]", changes)
    except Fail as f:
        return LoadConfigResponse(f.msg), []
    store.become(scratch)
    return LoadConfigResponse(None, store.next_id - first), changes


def _load_tree(store: Store, root: TreeNode, now: Timestamp, where: str, changes: list[Change]) -> None:
    """Create a config tree depth-first in file order (iteratively: any depth)."""
    stack: list[tuple[TreeNode, EntityId | None, str]] = [(root, None, where)]
    ents = store.entities
    while stack:
        node, parent, at_node = stack.pop()
        try:
            eid = create_entity(store, node.entity_type, parent, node.name, now, changes)
        except Fail as f:
            raise Fail(f"{at_node}: {f.msg}") from None
        t, row = ents.find(eid)  # type: ignore[misc]
        cs = store.catalog.complete[eid.typ]
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
            t.cols[name].put(row, v)
        kids = node.children
        for j in range(len(kids) - 1, -1, -1):
            stack.append((kids[j], eid, f"{at_node}.children[{j}]"))

