"""The read-only commands: schemas, FindEntities / GetEntityTypes /
GetChildren paging, existence.

Cursors are positions, not offsets: the last entity id (as decimal text),
the last type name, or the last child's link key (tree.py) returned.
Because ids and link keys only grow and type names sort, a cursor stays
valid while entities, types or children come and go: nothing is returned
twice and nothing that exists throughout the paging is skipped.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from itertools import islice
from typing import TYPE_CHECKING, Iterator

from .commands import (
    EntityExists,
    EntityExistsResponse,
    FieldExists,
    FieldExistsResponse,
    FindEntities,
    FindEntitiesResponse,
    GetCompleteSchema,
    GetCompleteSchemaResponse,
    GetChildren,
    GetChildrenResponse,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
    PageOpts,
    PageResult,
)
from .errors import Fail
from .schema import EntitySchema
from .table import Table
from .types import EntityId

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def _cursor_after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if type(cursor) is not str or not cursor.isdigit() or not cursor.isascii() or len(cursor) > 20:
        raise Fail(f"invalid cursor {cursor!r}: pass back a next_cursor from a previous page")
    return int(cursor)


def _paging(po: PageOpts | None) -> tuple[int | None, int]:
    """(limit, position after which to start) of id- or key-cursored paging; raises Fail."""
    return _check_limit(po), _cursor_after(po.cursor if po is not None else None)


def _check_limit(po: PageOpts | None) -> int | None:
    if po is None:
        return None
    lim = po.limit
    if type(lim) is not int or lim < 1:
        raise Fail(f"page_opts.limit must be an integer >= 1, got {lim!r}")
    return lim


def get_schema(store: Store, cmd: GetSchema) -> GetSchemaResponse:
    s = store.catalog.own(cmd.entity_type)
    if s is None:
        return GetSchemaResponse(None, f"unknown entity type {cmd.entity_type!r}")
    return GetSchemaResponse(s)


def get_complete_schema(store: Store, cmd: GetCompleteSchema) -> GetCompleteSchemaResponse:
    cat = store.catalog
    s = cat.own(cmd.entity_type)
    if s is None:
        return GetCompleteSchemaResponse(None, f"unknown entity type {cmd.entity_type!r}")
    return GetCompleteSchemaResponse(EntitySchema(s.entity_type, s.inherit, dict(cat.complete[s.entity_type])))


def find(store: Store, cmd: FindEntities) -> FindEntitiesResponse:
    types = store.catalog.descendants(cmd.entity_type)
    if types is None:
        return FindEntitiesResponse(None, f"unknown entity type {cmd.entity_type!r}")
    try:
        limit, after = _paging(cmd.page_opts)
    except Fail as f:
        return FindEntitiesResponse(None, f.msg)
    tables = store.entities.tables
    found = [tb for tb in (tables.get(t) for t in types) if tb is not None and tb.live]
    total = sum(tb.live for tb in found)
    remaining = sum(tb.count_after(after) for tb in found)
    if len(found) == 1:
        tb = found[0]
        nums = tb.live_ids_after(after)
        typ = tb.typ
        items = [EntityId(typ, n) for n in (nums if limit is None else islice(nums, limit))]
    else:
        merged = heapq.merge(*(_tagged(tb, after) for tb in found))
        items = [EntityId(typ, n) for n, typ in (merged if limit is None else islice(merged, limit))]
    nxt = str(items[-1].id) if items and remaining > len(items) else None
    return FindEntitiesResponse(PageResult(items, total, nxt))


def _tagged(tb: Table, after: int) -> Iterator[tuple[int, str]]:
    typ = tb.typ
    for n in tb.live_ids_after(after):
        yield n, typ


def get_types(store: Store, cmd: GetEntityTypes) -> GetEntityTypesResponse:
    try:
        limit = _check_limit(cmd.page_opts)
    except Fail as f:
        return GetEntityTypesResponse(None, f.msg)
    cursor = cmd.page_opts.cursor if cmd.page_opts is not None else None
    if cursor is not None and type(cursor) is not str:
        return GetEntityTypesResponse(None, f"invalid cursor {cursor!r}")
    types = store.catalog.types
    s = 0 if cursor is None else bisect_right(types, cursor)
    items = types[s:] if limit is None else types[s : s + limit]
    nxt = items[-1] if items and s + len(items) < len(types) else None
    return GetEntityTypesResponse(PageResult(list(items), len(types), nxt))


def get_children(store: Store, cmd: GetChildren) -> GetChildrenResponse:
    eid = cmd.entity_id
    found = store.entities.find(eid) if eid.__class__ is EntityId else None
    if found is None:
        return GetChildrenResponse(None, f"entity {eid} does not exist")
    if found[0].children is None:
        return GetChildrenResponse(None, f"{eid} has no Children field")
    try:
        limit, after = _paging(cmd.page_opts)
    except Fail as f:
        return GetChildrenResponse(None, f.msg)
    tree = store.tree
    items, nxt = tree.page(eid.id, after, limit)
    return GetChildrenResponse(PageResult(items, tree.count(eid.id), None if nxt is None else str(nxt)))


def entity_exists(store: Store, cmd: EntityExists) -> EntityExistsResponse:
    return EntityExistsResponse(store.entities.find(cmd.entity_id) is not None)


def field_exists(store: Store, cmd: FieldExists) -> FieldExistsResponse:
    cs = store.catalog.fields(cmd.entity_type)
    return FieldExistsResponse(cs is not None and cmd.field_type in cs)
