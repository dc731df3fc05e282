"""The read-only commands: schemas, FindEntities / GetEntityTypes paging, existence.

Cursors are positions, not offsets: the last entity id (as decimal text) or
the last type name returned. Because ids only grow and type names sort, a
cursor stays valid while entities or types come and go: nothing is returned
twice and nothing that exists throughout the paging is skipped.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from itertools import islice
from typing import TYPE_CHECKING

from .commands import (
    EntityExists,
    EntityExistsResponse,
    FieldExists,
    FieldExistsResponse,
    FindEntities,
    FindEntitiesResponse,
    GetCompleteSchema,
    GetCompleteSchemaResponse,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
    PageOpts,
    PageResult,
)
from .errors import Fail
from .schema import EntitySchema

if TYPE_CHECKING:  # pragma: no cover
    from .state import Store


def _cursor_after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if type(cursor) is not str or not cursor.isdigit() or not cursor.isascii() or len(cursor) > 20:
        raise Fail(f"invalid cursor {cursor!r}: pass back a next_cursor from a previous page")
    return int(cursor)


def _check_limit(po: PageOpts | None) -> int | None:
    if po is None:
        return None
    lim = po.limit
    if type(lim) is not int or lim < 1:
        raise Fail(f"page_opts.limit must be an integer >= 1, got {lim!r}")
    return lim


def get_schema(store: Store, cmd: GetSchema) -> GetSchemaResponse:
    s = store._schemas.get(cmd.entity_type)
    if s is None:
        return GetSchemaResponse(None, f"unknown entity type {cmd.entity_type!r}")
    return GetSchemaResponse(s)

def get_complete_schema(store: Store, cmd: GetCompleteSchema) -> GetCompleteSchemaResponse:
    s = store._schemas.get(cmd.entity_type)
    if s is None:
        return GetCompleteSchemaResponse(None, f"unknown entity type {cmd.entity_type!r}")
    return GetCompleteSchemaResponse(EntitySchema(s.entity_type, s.inherit, dict(store._complete[s.entity_type])))

def find(store: Store, cmd: FindEntities) -> FindEntitiesResponse:
    types = store._desc.get(cmd.entity_type)
    if types is None:
        return FindEntitiesResponse(None, f"unknown entity type {cmd.entity_type!r}")
    try:
        limit = _check_limit(cmd.page_opts)
        after = _cursor_after(cmd.page_opts.cursor if cmd.page_opts is not None else None)
    except Fail as f:
        return FindEntitiesResponse(None, f.msg)
    lists = [lst for lst in (store._by_type[t] for t in types) if lst]
    total = sum(len(lst) for lst in lists)
    starts = [bisect_right(lst, after) for lst in lists]
    remaining = sum(len(lst) - s for lst, s in zip(lists, starts))
    if len(lists) == 1:
        lst, s = lists[0], starts[0]
        ids = lst[s:] if limit is None else lst[s : s + limit]
    else:
        merged = heapq.merge(*(islice(lst, s, None) for lst, s in zip(lists, starts)))
        ids = list(merged if limit is None else islice(merged, limit))
    ents = store._ents
    items = [ents[n].eid for n in ids]
    nxt = str(ids[-1]) if ids and remaining > len(ids) else None
    return FindEntitiesResponse(PageResult(items, total, nxt))

def get_types(store: Store, cmd: GetEntityTypes) -> GetEntityTypesResponse:
    try:
        limit = _check_limit(cmd.page_opts)
    except Fail as f:
        return GetEntityTypesResponse(None, f.msg)
    cursor = cmd.page_opts.cursor if cmd.page_opts is not None else None
    if cursor is not None and type(cursor) is not str:
        return GetEntityTypesResponse(None, f"invalid cursor {cursor!r}")
    types = store._types
    s = 0 if cursor is None else bisect_right(types, cursor)
    items = types[s:] if limit is None else types[s : s + limit]
    nxt = items[-1] if items and s + len(items) < len(types) else None
    return GetEntityTypesResponse(PageResult(list(items), len(types), nxt))

def entity_exists(store: Store, cmd: EntityExists) -> EntityExistsResponse:
    e = store._ents.get(cmd.entity_id.id)
    return EntityExistsResponse(e is not None and e.eid.typ == cmd.entity_id.typ)

def field_exists(store: Store, cmd: FieldExists) -> FieldExistsResponse:
    cs = store._complete.get(cmd.entity_type)
    return FieldExistsResponse(cs is not None and cmd.field_type in cs)
