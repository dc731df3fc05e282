"""Commands the store applies, their responses, and the records it emits.

These mirror the wire's ``CommandRequest`` / ``CommandResponse`` enums
(SPEC 2.2/2.3): one dataclass per variant, with the same field names as the
JSON, so ``qcore.protocol.values`` is a direct mapping. Errors travel as
values: every response has an ``error`` (None on success) except the two
``*Exists`` answers, which are plain booleans.

Dataclasses here are plain (not frozen) for speed; treat them as immutable
once handed to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Union

from .schema import EntitySchema
from .tree import ChildrenView
from .types import EntityId, Timestamp, Value


class PushCondition(Enum):
    """``Always`` writes; ``Changes`` writes only if the new value differs."""

    Always = "Always"
    Changes = "Changes"


class AdjustBehavior(Enum):
    """How a write combines with the current value (SPEC 3 Add/Subtract matrix)."""

    Set = "Set"
    Add = "Add"
    Subtract = "Subtract"


@dataclass(slots=True)
class Read:
    """Read one field; ``field_type`` may be an indirection path (``Parent->Name``).
    The reply echoes the request with ``value``, ``write_time``, ``writer_id`` filled."""

    entity_id: EntityId
    field_type: str
    value: Value | None = None
    write_time: Timestamp | None = None
    writer_id: EntityId | None = None


@dataclass(slots=True)
class Write:
    """Write one field. ``write_time`` None means "the time the command was
    proposed" (the ``now`` given to ``Store.apply``); ``writer_id`` None means no writer."""

    entity_id: EntityId
    field_type: str
    value: Value | None
    push_condition: PushCondition = PushCondition.Always
    adjust_behavior: AdjustBehavior = AdjustBehavior.Set
    write_time: Timestamp | None = None
    writer_id: EntityId | None = None


Request = Union[Read, Write]


@dataclass(slots=True)
class PageOpts:
    """``limit`` items per page (>= 1) after the opaque ``cursor`` (None: from the start)."""

    limit: int
    cursor: str | None = None


@dataclass(slots=True)
class PageResult:
    """One page: ``items`` (EntityIds or type names), ``total`` matching items
    overall, and ``next_cursor`` (None on the last page)."""

    items: list[Any]
    total: int
    next_cursor: str | None = None


# --------------------------------------------------------------------------
# Command requests


@dataclass(slots=True)
class UpdateEntity:
    """An all-or-nothing batch of reads and writes, applied in order.

    ``moves_by_writer``: a Write of ``Parent`` (a move) records its ``writer_id`` on
    the Children of both parents too (else no writer). Not on the wire: the node
    sets it for log entries of level 2 on (qcore.node.entries)."""

    request: list[Request]
    moves_by_writer: bool = False


@dataclass(slots=True)
class CreateEntity:
    """``writer_id``: the writer every field of the new entity and the parent's
    ``Children`` record (None: no writer). Not on the wire: the node sets it
    from the user who made the command (SPEC 8.3)."""

    entity_type: str
    parent_id: EntityId | None = None
    name: str = ""
    writer_id: EntityId | None = None


@dataclass(slots=True)
class DeleteEntity:
    """``writer_id``: the writer the parent's ``Children`` records, as CreateEntity's."""

    entity_id: EntityId
    writer_id: EntityId | None = None


@dataclass(slots=True)
class SetSchema:
    entity_schema: EntitySchema


@dataclass(slots=True)
class GetSchema:
    entity_type: str


@dataclass(slots=True)
class GetCompleteSchema:
    entity_type: str


@dataclass(slots=True)
class FindEntities:
    """Entities of ``entity_type`` and of every type derived from it, by id."""

    entity_type: str
    page_opts: PageOpts | None = None


@dataclass(slots=True)
class GetEntityTypes:
    page_opts: PageOpts | None = None


@dataclass(slots=True)
class GetChildren:
    """A page of ``entity_id``'s children, in ``Children`` order. The cursor
    is the position of the last child returned (its link key), so paging
    stays right while children come and go, as with FindEntities."""

    entity_id: EntityId
    page_opts: PageOpts | None = None


@dataclass(slots=True)
class EntityExists:
    entity_id: EntityId


@dataclass(slots=True)
class FieldExists:
    entity_type: str
    field_type: str


@dataclass(slots=True)
class TreeNode:
    """One entity of a config tree: created with ``name`` under its parent,
    then ``attributes`` written, then its ``children`` created in order."""

    entity_type: str
    name: str = ""
    attributes: Mapping[str, Value] = field(default_factory=dict)
    children: list[TreeNode] = field(default_factory=list)


@dataclass(slots=True)
class LoadConfig:
    """Internal command: the config file (SPEC 4), applied atomically once at
    cluster initialisation: every schema in order, then the tree depth-first."""

    schemas: list[EntitySchema] = field(default_factory=list)
    tree: list[TreeNode] = field(default_factory=list)


CommandRequest = Union[
    UpdateEntity,
    CreateEntity,
    DeleteEntity,
    SetSchema,
    GetSchema,
    GetCompleteSchema,
    FindEntities,
    GetEntityTypes,
    GetChildren,
    EntityExists,
    FieldExists,
    LoadConfig,
]

# --------------------------------------------------------------------------
# Command responses


@dataclass(slots=True)
class UpdateEntityResponse:
    """On success the requests echoed with Reads filled in; on error an empty
    list and ``error`` = ``"request[i]: reason"``."""

    response: list[Request]
    error: str | None = None


@dataclass(slots=True)
class CreateEntityResponse:
    response: EntityId | None
    error: str | None = None


@dataclass(slots=True)
class DeleteEntityResponse:
    error: str | None = None


@dataclass(slots=True)
class SetSchemaResponse:
    error: str | None = None


@dataclass(slots=True)
class GetSchemaResponse:
    response: EntitySchema | None
    error: str | None = None


@dataclass(slots=True)
class GetCompleteSchemaResponse:
    response: EntitySchema | None
    error: str | None = None


@dataclass(slots=True)
class FindEntitiesResponse:
    response: PageResult | None
    error: str | None = None


@dataclass(slots=True)
class GetEntityTypesResponse:
    response: PageResult | None
    error: str | None = None


@dataclass(slots=True)
class GetChildrenResponse:
    response: PageResult | None
    error: str | None = None


@dataclass(slots=True)
class EntityExistsResponse:
    response: bool


@dataclass(slots=True)
class FieldExistsResponse:
    response: bool


@dataclass(slots=True)
class LoadConfigResponse:
    """``created`` counts the tree entities made (ids are consecutive, in
    depth-first order, starting at the store's next id)."""

    error: str | None = None
    created: int = 0


CommandResponse = Union[
    UpdateEntityResponse,
    CreateEntityResponse,
    DeleteEntityResponse,
    SetSchemaResponse,
    GetSchemaResponse,
    GetCompleteSchemaResponse,
    FindEntitiesResponse,
    GetEntityTypesResponse,
    GetChildrenResponse,
    EntityExistsResponse,
    FieldExistsResponse,
    LoadConfigResponse,
]


# --------------------------------------------------------------------------
# Change records and notifications


class Change:
    """One field write the store made while applying a command: what
    notifications are built from. ``field_type`` is the plain field name on
    ``entity_id`` (the end of an indirection path, never the path itself).

    A parent's ``Children`` values are held as views of the store's child
    list at that moment and built when read, so that a create under a
    parent of n children does not copy n ids twice (see tree.py)."""

    __slots__ = ("entity_id", "field_type", "_old", "_new", "write_time", "writer_id")

    def __init__(self, entity_id: EntityId, field_type: str, old_value: Value | ChildrenView,
                 new_value: Value | ChildrenView, write_time: Timestamp, writer_id: EntityId | None) -> None:
        self.entity_id = entity_id
        self.field_type = field_type
        self._old = old_value
        self._new = new_value
        self.write_time = write_time
        self.writer_id = writer_id

    @property
    def old_value(self) -> Value:
        v = self._old
        return v.value() if isinstance(v, ChildrenView) else v

    @property
    def new_value(self) -> Value:
        v = self._new
        return v.value() if isinstance(v, ChildrenView) else v

    def approx_bytes(self) -> int:
        """Rough memory this record keeps alive (for bounding retained history)."""
        return 200 + _value_bytes(self._old) + _value_bytes(self._new)

    def _key(self) -> tuple[Any, ...]:
        return (self.entity_id, self.field_type, self.old_value, self.new_value, self.write_time, self.writer_id)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Change:
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Change(entity_id={self.entity_id!r}, field_type={self.field_type!r}, "
                f"old_value={self.old_value!r}, new_value={self.new_value!r}, "
                f"write_time={self.write_time!r}, writer_id={self.writer_id!r})")


def _value_bytes(v: Value | ChildrenView) -> int:
    if v.__class__ is ChildrenView:
        return 48  # shares the parent's child list
    p = v.v  # type: ignore[union-attr]
    c = p.__class__
    if c is str or c is bytes:
        return 48 + len(p)
    if c is tuple:  # EntityList
        return 56 + 72 * len(p)
    return 32


class NotifyConfig:
    """Base of the two notification subscriptions (SPEC 6):
    ``NotifyConfig.EntityId`` (one entity) and ``NotifyConfig.EntityType``
    (every entity of a type). Both are frozen and hashable."""

    __slots__ = ()
    EntityId: type
    EntityType: type


def _ctx_tuple(obj: object) -> None:
    ctx = obj.context  # type: ignore[attr-defined]
    if type(ctx) is not tuple:
        object.__setattr__(obj, "context", tuple(ctx))


@dataclass(frozen=True, slots=True)
class NotifyConfigEntityId(NotifyConfig):
    entity_id: EntityId
    field_type: str
    trigger_on_change: bool = False
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _ctx_tuple(self)


@dataclass(frozen=True, slots=True)
class NotifyConfigEntityType(NotifyConfig):
    entity_type: str
    field_type: str
    trigger_on_change: bool = False
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _ctx_tuple(self)


NotifyConfig.EntityId = NotifyConfigEntityId
NotifyConfig.EntityType = NotifyConfigEntityType


@dataclass(slots=True)
class Notification:
    """One pushed change (SPEC 6). ``context`` maps each configured field path
    to its value on the changed entity after the change (None if the path broke)."""

    entity_id: EntityId
    field_type: str
    current_value: Value
    previous_value: Value
    write_time: Timestamp
    writer_id: EntityId | None
    context: dict[str, Value | None] = field(default_factory=dict)
    log_index: int = 0
