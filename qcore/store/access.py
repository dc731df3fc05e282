"""What a command needs, checked against one user's Grants (SPEC 8.3).

* a ``Read`` needs ``read`` on every (type, field) its path touches; a
  ``Write`` needs ``read`` on the hops and ``write`` on the field it writes;
* ``CreateEntity`` needs ``create`` on the type; ``DeleteEntity`` ``delete``
  on the type and on the types of every descendant the delete removes;
* ``FindEntities``, ``GetEntityTypes``, ``EntityExists``, ``FieldExists``,
  ``GetSchema``, ``GetCompleteSchema`` need ``read`` on something of the
  type (``GetEntityTypes`` lists only such types);
* ``SetSchema`` needs role admin.

The types along a path are the types of the entities it reaches, read
through the Store's public API as the path is followed; where a path breaks,
checking stops and the store's own error says where. The answer is the
refusal's text (``"permission denied: alice may not write Sensor.Value"``)
or None. Pure: the same store, grants and command give the same answer.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Callable

from .auth import AuthState, User
from .commands import (
    CreateEntity,
    DeleteEntity,
    EntityExists,
    FieldExists,
    FindEntities,
    GetChildren,
    GetCompleteSchema,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
    PageResult,
    SetSchema,
    UpdateEntity,
    Write,
)
from .errors import StoreError
from .permissions import FULL_ACCESS, Grants
from .schema import CHILDREN, PATH_SEP
from .state import Store
from .types import EntityId, EntityList, EntityReference

__all__ = ["GrantsCache", "type_lineage", "denied_change", "denied_query", "denied_path", "denied_request",
           "paths_after_a_write", "readable_types", "stamp_writer"]


def type_lineage(store: Store, typ: str) -> tuple[str, ...]:
    """``typ`` and every type it inherits from, nearest first (an unknown type: just itself)."""
    out = [typ]
    cur: str | None = typ
    while cur is not None:
        resp = store.query(GetSchema(cur))
        assert isinstance(resp, GetSchemaResponse)
        schema = resp.response
        cur = schema.inherit if schema is not None else None
        if cur is None or cur in out:
            break
        out.append(cur)
    return tuple(out)


class GrantsCache:
    """Each user's Grants, built once and kept until roles or schemas change
    (the owner calls :meth:`clear`): the check a request pays is then a few
    dict look-ups."""

    __slots__ = ("_store", "_by_user")

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._by_user: dict[str, Grants] = {}

    def clear(self) -> None:
        self._by_user.clear()

    def of(self, auth: AuthState, user: User) -> Grants:
        g = self._by_user.get(user.name)
        if g is None:
            store = self._store
            if user.admin:
                g = Grants((FULL_ACCESS,), lambda t: (t,), admin=True)
            else:
                g = Grants(auth.permissions_of(user), lambda t: type_lineage(store(), t))
            self._by_user[user.name] = g
        return g


def _no(who: str, access: str, typ: str, field: str | None = None) -> str:
    what = f"{typ}.{field}" if field is not None else typ
    return f"permission denied: {who} may not {access} {what}"


def denied_path(store: Store, grants: Grants, who: str, eid: EntityId, path: str, access: str) -> str | None:
    """`access` on the field `path` reaches from `eid`, and ``read`` on every hop before it."""
    if PATH_SEP not in path:
        return None if grants.allows(access, eid.typ, path) else _no(who, access, eid.typ, path)
    segs = path.split(PATH_SEP)
    last = len(segs) - 1
    cur = eid
    i = 0
    while i < last:
        seg = segs[i]
        if not grants.allows("read", cur.typ, seg):
            return _no(who, "read", cur.typ, seg)
        try:
            v = store.read_path(cur, seg)[0]
        except StoreError:
            return None  # broken: the store's error says where
        if v.__class__ is EntityReference:
            if v.v is None:
                return None
            cur = v.v
            i += 1
        elif v.__class__ is EntityList:
            idx = segs[i + 1]
            if not (idx.isascii() and idx.isdigit()) or int(idx) >= len(v.v):
                return None
            cur = v.v[int(idx)]
            i += 2
        else:
            return None
    if i > last:
        return None  # ends with an index: the store refuses the path
    return None if grants.allows(access, cur.typ, segs[last]) else _no(who, access, cur.typ, segs[last])


def denied_request(store: Store, grants: Grants, who: str, r: Any) -> str | None:
    """One Read or Write of a batch, on the store as it is now."""
    return denied_path(store, grants, who, r.entity_id, r.field_type, "write" if r.__class__ is Write else "read")


def paths_after_a_write(cmd: UpdateEntity) -> bool:
    """Does a path (``->``) request follow a Write in the batch? Where it leads may then
    depend on that Write (``[Write Ref = Vault$1, Read Ref->Secret]``), so it can only be
    checked as it is applied, on the state the requests before it left."""
    written = False
    for r in cmd.request:
        if written and PATH_SEP in r.field_type:
            return True
        written = written or r.__class__ is Write
    return False


def _delete(store: Store, grants: Grants, who: str, eid: EntityId) -> str | None:
    if not grants.on_type("delete", eid.typ):
        return _no(who, "delete", eid.typ)
    checked = {eid.typ}
    stack = [eid]
    while stack:
        try:
            kids = store.read_path(stack.pop(), CHILDREN)[0].v
        except StoreError:
            continue
        for k in kids:
            if k.typ not in checked:
                if not grants.on_type("delete", k.typ):
                    return _no(who, "delete", k.typ) + f" (a descendant of {eid})"
                checked.add(k.typ)
            stack.append(k)
    return None


def denied_change(store: Store, grants: Grants, who: str, cmd: Any, paths_in_order: bool = False) -> str | None:
    """Why `who` may not apply `cmd` (any command the log carries), or None. With
    `paths_in_order`, a batch's path requests after its first Write are not checked here:
    the caller checks each as it is applied (:func:`paths_after_a_write`, denied_request)."""
    if grants.admin:
        return None
    c = cmd.__class__
    if c is UpdateEntity:
        allows = grants.allows
        written = False
        for r in cmd.request:
            access = "write" if r.__class__ is Write else "read"
            path = r.field_type
            after_a_write = written
            written = written or access == "write"
            if PATH_SEP not in path:  # the common case, inline: one cached decision
                if not allows(access, r.entity_id.typ, path):
                    return _no(who, access, r.entity_id.typ, path)
                continue
            if paths_in_order and after_a_write:
                continue
            why = denied_path(store, grants, who, r.entity_id, path, access)
            if why is not None:
                return why
        return None
    if c is CreateEntity:
        return None if grants.on_type("create", cmd.entity_type) else _no(who, "create", cmd.entity_type)
    if c is DeleteEntity:
        return _delete(store, grants, who, cmd.entity_id)
    if c is SetSchema:
        return f"permission denied: {who} may not change schemas (admin only)"
    return denied_query(store, grants, who, cmd)


def denied_query(store: Store, grants: Grants, who: str, cmd: Any) -> str | None:
    """Why `who` may not have the answer to a read-only command, or None."""
    if grants.admin:
        return None
    c = cmd.__class__
    if c is UpdateEntity:
        for r in cmd.request:
            why = denied_path(store, grants, who, r.entity_id, r.field_type, "read")
            if why is not None:
                return why
        return None
    if c is GetEntityTypes:
        return None  # answered with the readable types only
    if c is GetChildren:  # a page of what a Read of Children returns
        return denied_path(store, grants, who, cmd.entity_id, CHILDREN, "read")
    if c is EntityExists:
        typ = cmd.entity_id.typ
    elif c in (GetSchema, GetCompleteSchema, FindEntities, FieldExists):
        typ = cmd.entity_type
    else:
        return f"permission denied: {who} may not send {c.__name__} (admin only)"
    return None if grants.on_type("read", typ) else _no(who, "read", typ)


def readable_types(store: Store, grants: Grants, cmd: GetEntityTypes) -> Any:
    """GetEntityTypes over the types `grants` reads something of, paged as the store pages all types."""
    checked = store.query(cmd)  # the store's own refusal of a bad page or cursor
    if grants.admin or checked.error is not None:  # type: ignore[union-attr]
        return checked
    every = store.query(GetEntityTypes(None)).response.items  # type: ignore[union-attr]
    types = [t for t in every if grants.on_type("read", t)]
    po = cmd.page_opts
    start = 0 if po is None or po.cursor is None else bisect_right(types, po.cursor)
    items = types[start:] if po is None else types[start:start + po.limit]
    nxt = items[-1] if items and start + len(items) < len(types) else None
    return GetEntityTypesResponse(PageResult(items, len(types), nxt))


def stamp_writer(cmd: Any, writer: EntityId | None, writes_only: bool = False) -> None:
    """Every Write of `cmd` records `writer` (the user's linked entity): with users on,
    a client cannot write in another's name. So do a CreateEntity's and a DeleteEntity's
    changes, unless `writes_only` (the rules of log entries before level 2:
    qcore.node.entries). `cmd` is this apply's own decoded copy."""
    c = cmd.__class__
    if c is UpdateEntity:
        for r in cmd.request:
            if r.__class__ is Write:
                r.writer_id = writer
    elif (c is CreateEntity or c is DeleteEntity) and not writes_only:
        cmd.writer_id = writer

