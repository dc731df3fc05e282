"""Operations messages (SPEC 9): the cluster's members at a glance, and backups.

Registered with :mod:`qcore.protocol.messages` (same codec, same rules);
kept here so that the seed's messages stay in one readable module.

* ``GetClusterMetrics {id}`` -> ``GetClusterMetricsResponse {id, response:
  {"Ok": {"members": [{"id", "addr", "kind": "voter"|"learner", "metrics": {...} | null,
  "error": null | "unreachable: ..."}], "leader": id | null}}}``: the receiving
  node asks every member for its ``GetMetrics`` (a short timeout each).
* ``SnapshotSave {id}`` -> ``SnapshotSaveResponse {id, response: {"Ok": {"handle",
  "index", "term", "size", "sha256"}}}``: a snapshot of the state machine at an
  index at least as new as every write completed before the request (a
  ReadIndex barrier first), held on this connection under ``handle``.
* ``SnapshotRead {id, handle, offset, length}`` -> ``SnapshotReadResponse {id,
  response: {"Ok": {"offset", "data": base64, "done"}}}``: one chunk of it.
  The client pulls chunks (several in flight), so a large snapshot never
  becomes one giant frame and the node never buffers more than was asked.
* ``SnapshotRelease {id, handle}`` -> ``SnapshotReleaseResponse``: forget it
  (closing the connection does too).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from qcore.protocol.messages import _REQUIRED, _UNION_FIELDS, _Field, _id, _str, _u64, register

__all__ = [
    "GetClusterMetrics",
    "GetClusterMetricsResponse",
    "SnapshotSave",
    "SnapshotSaveResponse",
    "SnapshotRead",
    "SnapshotReadResponse",
    "SnapshotRelease",
    "SnapshotReleaseResponse",
    "MAX_SNAPSHOT_CHUNK",
]

#: The largest chunk a SnapshotRead may ask for (base64 makes the frame 4/3 of it).
MAX_SNAPSHOT_CHUNK = 4 << 20


@dataclasses.dataclass(slots=True)
class GetClusterMetrics:
    TAG: ClassVar[str] = "GetClusterMetrics"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED),)
    id: str | int


@dataclasses.dataclass(slots=True)
class GetClusterMetricsResponse:
    TAG: ClassVar[str] = "GetClusterMetricsResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class SnapshotSave:
    TAG: ClassVar[str] = "SnapshotSave"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED),)
    id: str | int


@dataclasses.dataclass(slots=True)
class SnapshotSaveResponse:
    TAG: ClassVar[str] = "SnapshotSaveResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class SnapshotRead:
    TAG: ClassVar[str] = "SnapshotRead"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        ("id", _id, _REQUIRED),
        ("handle", _str, _REQUIRED),
        ("offset", _u64, _REQUIRED),
        ("length", _u64, _REQUIRED),
    )
    id: str | int
    handle: str
    offset: int
    length: int


@dataclasses.dataclass(slots=True)
class SnapshotReadResponse:
    TAG: ClassVar[str] = "SnapshotReadResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


@dataclasses.dataclass(slots=True)
class SnapshotRelease:
    TAG: ClassVar[str] = "SnapshotRelease"
    FIELDS: ClassVar[tuple[_Field, ...]] = (("id", _id, _REQUIRED), ("handle", _str, _REQUIRED))
    id: str | int
    handle: str


@dataclasses.dataclass(slots=True)
class SnapshotReleaseResponse:
    TAG: ClassVar[str] = "SnapshotReleaseResponse"
    FIELDS: ClassVar[tuple[_Field, ...]] = _UNION_FIELDS
    OMIT: ClassVar[tuple[tuple[str, Any], ...]] = (("kind", None),)
    id: str | int
    response: Any
    kind: str | None = None  # on {"Err": ...}: why, as qcore.protocol.errors.Kind


register(GetClusterMetrics, GetClusterMetricsResponse)
register(SnapshotSave, SnapshotSaveResponse)
register(SnapshotRead, SnapshotReadResponse)
register(SnapshotRelease, SnapshotReleaseResponse)
