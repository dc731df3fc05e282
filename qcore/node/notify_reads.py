"""What the notification hub reads from the store (SPEC 6; docs/notifications.md).

The hub (qcore.node.notify) decides who gets which change and when; this
module holds the few places where it looks into the store to do so: the
entity and field a registration really watches once its ``->`` path is
followed, the type lineage a change's entity type matches, the context
paths sent with a change, and the encoded notification body. They are kept
apart so the hub's queueing and delivery logic reads on its own.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from qcore.protocol.values import encode_notification
from qcore.store import (
    Change,
    EntityList,
    EntityReference,
    FieldExists,
    GetSchema,
    Notification,
    NotifyConfigEntityId,
    Store,
    StoreError,
)
from qcore.store.access import type_lineage
from qcore.store.schema import PATH_SEP

__all__ = ["encode_change", "context_of", "type_lineage", "check_type", "resolve_entity"]


def encode_change(index: int, ch: Change, context: dict[str, Any]) -> bytes:
    """The JSON body of one notification (the part every matching registration shares)."""
    return orjson.dumps(encode_notification(Notification(
        ch.entity_id, ch.field_type, ch.new_value, ch.old_value, ch.write_time, ch.writer_id, context, index
    )))


def context_of(store: Store, ch: Change, paths: Iterable[str]) -> dict[str, Any]:
    """Context paths read from the changed entity; a broken path reads as null."""
    out: dict[str, Any] = {}
    for p in paths:
        try:
            out[p] = store.read_path(ch.entity_id, p)[0]
        except StoreError:
            out[p] = None
    return out


def check_type(store: Store, entity_type: str, fld: str) -> str:
    """The entity type of an EntityType registration, if it can be watched at all."""
    if store.query(GetSchema(entity_type)).response is None:  # type: ignore[union-attr]
        raise ValueError(f"unknown entity type {entity_type!r}")
    if PATH_SEP in fld:
        raise ValueError(
            f"field_type {fld!r}: an EntityType registration watches one field, not a '->' path; "
            "register on an EntityId for a path, or put the path in context"
        )
    if not store.query(FieldExists(entity_type, fld)).response:  # type: ignore[union-attr]
        raise ValueError(f"entity type {entity_type!r} has no field {fld!r}")
    return entity_type


def resolve_entity(store: Store, cfg: NotifyConfigEntityId) -> tuple[Any, str]:
    """The (entity, plain field) an EntityId registration watches: a ``->``
    path is followed once, now, to the field it reaches (docs/notifications.md)."""
    eid, path = cfg.entity_id, cfg.field_type
    try:
        store.read_path(eid, path)  # validates the whole path, with the store's "broke at" message
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    segs = path.split(PATH_SEP)
    i, last = 0, len(segs) - 1
    while i < last:
        v = store.read_path(eid, segs[i])[0]
        if v.__class__ is EntityReference:
            eid = v.v
            i += 1
        elif v.__class__ is EntityList:
            eid = v.v[int(segs[i + 1])]
            i += 2
        else:  # pragma: no cover - read_path accepted the path above
            raise ValueError(f"path {path!r} cannot be followed at {segs[i]!r}")
    return eid, segs[last]
