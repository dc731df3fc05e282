"""Data types shared by the Raft core, durable storage, the simulator and the node.

These are plain value objects: they carry no behaviour beyond trivial
encoding helpers, so that `qcore.storage` and `qcore.protocol` can depend on
them without depending on the Raft state machine itself.

Indexes and terms are ints starting at 1; 0 means "none". Node ids are
positive ints (the seed's u64 `--id`); 0 means "no node".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

NONE = 0  # "no node" / "no index" / "no term"


class EntryType(IntEnum):
    NORMAL = 0  # application data (possibly empty: a new leader's no-op)
    CONF_CHANGE = 1  # data is ConfChange.encode()


@dataclass(slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(slots=True)
class HardState:
    """What must be on disk before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(slots=True)
class ConfState:
    """A cluster configuration.

    `voters_outgoing` is non-empty only in a joint configuration (C_old,new):
    then a decision needs a majority of `voters` AND a majority of
    `voters_outgoing`. `learners_next` are voters of the outgoing config that
    become learners when the joint config is left. `addresses` maps every
    member (voter or learner, incoming or outgoing) to its "host:port"; the
    core treats them as opaque strings that travel with the configuration so
    that a node restored from a snapshot knows how to reach its peers.
    """

    voters: tuple[int, ...] = ()
    voters_outgoing: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    learners_next: tuple[int, ...] = ()
    auto_leave: bool = False
    addresses: dict[int, str] = field(default_factory=dict)

    def members(self) -> tuple[int, ...]:
        """Every node in the configuration: voters and learners, incoming and outgoing
        (a tuple, cheap to build on a request's path; a node may appear twice)."""
        return (*self.voters, *self.voters_outgoing, *self.learners, *self.learners_next)

    def to_json(self) -> dict[str, Any]:
        return {
            "voters": list(self.voters),
            "voters_outgoing": list(self.voters_outgoing),
            "learners": list(self.learners),
            "learners_next": list(self.learners_next),
            "auto_leave": self.auto_leave,
            "addresses": {str(k): v for k, v in sorted(self.addresses.items())},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "ConfState":
        return cls(
            voters=tuple(obj.get("voters", ())),
            voters_outgoing=tuple(obj.get("voters_outgoing", ())),
            learners=tuple(obj.get("learners", ())),
            learners_next=tuple(obj.get("learners_next", ())),
            auto_leave=bool(obj.get("auto_leave", False)),
            addresses={int(k): v for k, v in obj.get("addresses", {}).items()},
        )


@dataclass(slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    # The log id of the entry that set conf_state (0: not known, as in a snapshot
    # of an older build: the snapshot's own index and term stand for it).
    conf_index: int = 0
    conf_term: int = 0

    def conf_log_id(self) -> tuple[int, int]:
        """(index, term) of the entry that set conf_state, or the snapshot's own."""
        return (self.conf_index, self.conf_term) if self.conf_index else (self.index, self.term)

    def to_json(self) -> dict[str, Any]:
        """As RaftSnapshot messages and snapshot files carry it; conf_index/conf_term only
        when known (an older version's reader ignores them, its writer leaves them out)."""
        out: dict[str, Any] = {"index": self.index, "term": self.term, "conf_state": self.conf_state.to_json()}
        if self.conf_index:
            out["conf_index"], out["conf_term"] = self.conf_index, self.conf_term
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "SnapshotMeta":
        return cls(
            index=int(obj["index"]),
            term=int(obj["term"]),
            conf_state=ConfState.from_json(obj["conf_state"]),
            conf_index=int(obj.get("conf_index", 0)),
            conf_term=int(obj.get("conf_term", 0)),
        )


@dataclass(slots=True)
class Snapshot:
    """Application state at `meta.index` plus the configuration at that index."""

    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add as voter (or promote a learner)
    ADD_LEARNER = 1  # add as learner (or demote a voter)
    REMOVE_NODE = 2


class ConfChangeTransition(IntEnum):
    AUTO = 0  # simple change if possible, else joint with automatic leave
    JOINT_IMPLICIT = 1  # always joint, left automatically
    JOINT_EXPLICIT = 2  # always joint, left by proposing an empty ConfChange


@dataclass(slots=True)
class ConfChangeSingle:
    type: ConfChangeType
    node_id: int


@dataclass(slots=True)
class ConfChange:
    """A membership change, as carried by a CONF_CHANGE entry.

    An empty `changes` means "leave the joint configuration".
    `addresses` gives the address of every node the change adds.
    """

    changes: tuple[ConfChangeSingle, ...] = ()
    transition: ConfChangeTransition = ConfChangeTransition.AUTO
    addresses: dict[int, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "changes": [[int(c.type), c.node_id] for c in self.changes],
                "transition": int(self.transition),
                "addresses": {str(k): v for k, v in sorted(self.addresses.items())},
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> "ConfChange":
        obj = json.loads(data)
        return cls(
            changes=tuple(ConfChangeSingle(ConfChangeType(t), n) for t, n in obj["changes"]),
            transition=ConfChangeTransition(obj["transition"]),
            addresses={int(k): v for k, v in obj["addresses"].items()},
        )


class MessageType(IntEnum):
    # Local messages: never sent over the network.
    HUP = 0  # election timeout elapsed: campaign
    BEAT = 1  # heartbeat timeout elapsed: leader sends heartbeats
    PROP = 2  # proposal
    CHECK_QUORUM = 3
    UNREACHABLE = 4
    SNAP_STATUS = 5
    LINK_DOWN = 6  # the transport lost its connection to peer `frm`
    # Peer messages.
    APP = 10
    APP_RESP = 11
    VOTE = 12
    VOTE_RESP = 13
    PRE_VOTE = 14
    PRE_VOTE_RESP = 15
    SNAP = 16
    HEARTBEAT = 17
    HEARTBEAT_RESP = 18
    TRANSFER_LEADER = 19
    TIMEOUT_NOW = 20
    READ_INDEX = 21
    READ_INDEX_RESP = 22


@dataclass(slots=True)
class Message:
    """One Raft message, as in etcd-raft's raftpb.Message.

    `context` is opaque bytes: the ReadIndex request context, or a campaign
    marker for leadership transfer.
    """

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: list[Entry] = field(default_factory=list)
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(slots=True)
class ReadState:
    """A ReadIndex answer: once the local applied index reaches `index`, the
    read identified by `request_ctx` may be served from local state."""

    index: int
    request_ctx: bytes
