"""JSON form of peer messages: the `request` body of RaftVote / RaftAppend /
RaftSnapshot / RaftForward frames and the body of their responses.

Entry payloads are JSON text in practice (qcore's own log format), so they
travel as JSON strings — no base64 inflation on the hot path; any payload
that is not valid UTF-8 falls back to `{"b64": "..."}`. Zero-valued fields
are omitted to keep heartbeats small.

Snapshots never travel inside a message body: the transport sends the
snapshot's bytes as separate RaftSnapshot chunks (see qcore.node.transport),
and `encode_message` carries only the snapshot's metadata.

Decoding refuses anything the Raft core could not take as it is (wrong
types, unknown or local message types, entries that are not a contiguous
run after the append's previous entry, terms out of order, a configuration
change that does not decode): bad input from the network is a
`RaftCodecError` here, never an exception inside the core, which the node
treats as a broken invariant (it stops).

Besides Raft's own messages there are two of the node's (docs/protocol.md
§6): a follower hands a batch of its clients' writes to the leader as a
`ForwardBatch` (frame `RaftForward`), and the leader answers
`BatchRefused` (frame `RaftForwardResponse`, `"taken": false`) when it did
not take it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, TypeAlias

from qcore.raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "BatchRefused",
    "ForwardBatch",
    "PeerMessage",
    "RaftCodecError",
    "decode_batch_refused",
    "decode_forward_batch",
    "decode_message",
    "decode_snapshot_meta",
    "encode_batch_refused",
    "encode_forward_batch",
    "encode_message",
    "encode_snapshot_meta",
    "frame_tag",
]


class RaftCodecError(ValueError):
    """A peer sent a message body that does not decode."""


@dataclass(slots=True, frozen=True)
class ForwardBatch:
    """A follower's group-committed writes (one entry's payload, `data`),
    handed to the node it believes leads `term`. `batch` is the follower's
    own number for it. The leader appends it only as leader of exactly
    `term`, so the batch can only ever be in the log at that term."""

    to: int
    frm: int
    term: int
    batch: int
    data: bytes


@dataclass(slots=True, frozen=True)
class BatchRefused:
    """The leader's answer when it did not append batch `batch` (it is not
    leader in `term`): the follower fails those writes as not applied. An
    appended batch gets no answer; the follower learns its outcome by
    applying it."""

    to: int
    frm: int
    term: int
    batch: int


#: Everything one node sends another.
PeerMessage: TypeAlias = "Message | ForwardBatch | BatchRefused"

_REQUEST_TAG = {
    MessageType.VOTE: "RaftVote",
    MessageType.PRE_VOTE: "RaftVote",
    MessageType.VOTE_RESP: "RaftVoteResponse",
    MessageType.PRE_VOTE_RESP: "RaftVoteResponse",
    MessageType.APP: "RaftAppend",
    MessageType.HEARTBEAT: "RaftAppend",
    MessageType.TIMEOUT_NOW: "RaftAppend",
    MessageType.READ_INDEX: "RaftAppend",
    MessageType.TRANSFER_LEADER: "RaftAppend",
    MessageType.APP_RESP: "RaftAppendResponse",
    MessageType.HEARTBEAT_RESP: "RaftAppendResponse",
    MessageType.READ_INDEX_RESP: "RaftAppendResponse",
    MessageType.SNAP: "RaftSnapshot",
}

_TYPES_BY_NAME = {t.name: t for t in MessageType}


def frame_tag(msg: PeerMessage) -> str:
    """The frame name that carries this message."""
    if type(msg) is Message:
        try:
            return _REQUEST_TAG[msg.type]
        except KeyError:
            raise RaftCodecError(f"message type {msg.type.name} is local and never sent") from None
    return "RaftForward" if type(msg) is ForwardBatch else "RaftForwardResponse"


def _encode_data(data: bytes) -> Any:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def _decode_data(obj: Any) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, dict) and isinstance(obj.get("b64"), str):
        try:
            return base64.b64decode(obj["b64"], validate=True)
        except ValueError:
            raise RaftCodecError("entry data: invalid base64") from None
    raise RaftCodecError(f"entry data: expected string or {{b64}}, got {type(obj).__name__}")


def _int(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise RaftCodecError(f"{name}: expected a non-negative integer, got {value!r}")
    return value


def _ids(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or any(type(v) is not int or v <= 0 for v in value):
        raise RaftCodecError(f"{name}: expected a list of node ids")
    return tuple(value)


def _conf_state(obj: Any) -> ConfState:
    if not isinstance(obj, dict):
        raise RaftCodecError("conf_state: expected object")
    addresses = obj.get("addresses", {})
    if not isinstance(addresses, dict) or not all(k.isascii() and k.isdigit() and isinstance(v, str) for k, v in addresses.items()):
        raise RaftCodecError("conf_state.addresses: expected {node id: address}")
    auto_leave = obj.get("auto_leave", False)
    if not isinstance(auto_leave, bool):
        raise RaftCodecError("conf_state.auto_leave: expected boolean")
    return ConfState(
        voters=_ids(obj.get("voters", []), "conf_state.voters"),
        voters_outgoing=_ids(obj.get("voters_outgoing", []), "conf_state.voters_outgoing"),
        learners=_ids(obj.get("learners", []), "conf_state.learners"),
        learners_next=_ids(obj.get("learners_next", []), "conf_state.learners_next"),
        auto_leave=auto_leave,
        addresses={int(k): v for k, v in addresses.items()},
    )


def encode_snapshot_meta(meta: SnapshotMeta) -> dict[str, Any]:
    return meta.to_json()


def decode_snapshot_meta(obj: Any) -> SnapshotMeta:
    if not isinstance(obj, dict):
        raise RaftCodecError("snapshot meta: expected object")
    if "conf_state" not in obj:
        raise RaftCodecError("snapshot meta: missing conf_state")
    return SnapshotMeta(
        index=_int(obj.get("index"), "snapshot.index"),
        term=_int(obj.get("term"), "snapshot.term"),
        conf_state=_conf_state(obj["conf_state"]),
        conf_index=_int(obj.get("conf_index", 0), "snapshot.conf_index"),
        conf_term=_int(obj.get("conf_term", 0), "snapshot.conf_term"),
    )


def encode_message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"type": msg.type.name, "to": msg.to, "from": msg.frm, "term": msg.term}
    if msg.log_term:
        out["log_term"] = msg.log_term
    if msg.index:
        out["index"] = msg.index
    if msg.commit:
        out["commit"] = msg.commit
    if msg.entries:
        out["entries"] = [[e.term, e.index, int(e.type), _encode_data(e.data)] for e in msg.entries]
    if msg.reject:
        out["reject"] = True
    if msg.reject_hint:
        out["reject_hint"] = msg.reject_hint
    if msg.context:
        out["context"] = _encode_data(msg.context)
    if msg.snapshot is not None:
        out["snapshot"] = encode_snapshot_meta(msg.snapshot.meta)
    return out


def _entry(item: Any) -> Entry:
    if not isinstance(item, list) or len(item) != 4:
        raise RaftCodecError("raft message: entry must be [term, index, type, data]")
    term, index, etype, data = item
    code = _int(etype, "entry.type")
    if code not in _ENTRY_TYPES:
        raise RaftCodecError(f"entry.type: unknown entry type {code}")
    entry = Entry(_int(term, "entry.term"), _int(index, "entry.index"), _ENTRY_TYPES[code], _decode_data(data))
    if entry.type is EntryType.CONF_CHANGE:
        try:
            ConfChange.decode(entry.data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RaftCodecError(f"entry {entry.index}: configuration change does not decode: {exc}") from None
    return entry


_ENTRY_TYPES = {int(t): t for t in EntryType}


def _check_append(msg: Message) -> None:
    """An append's entries are the run right after its previous entry
    (`index`, `log_term`), with terms that never go down and never pass
    the leader's."""
    prev_index, prev_term = msg.index, msg.log_term
    for e in msg.entries:
        if e.index != prev_index + 1:
            raise RaftCodecError(f"raft message: entry {e.index} does not follow index {prev_index}")
        if e.term < prev_term or e.term > msg.term:
            raise RaftCodecError(f"raft message: entry {e.index} has term {e.term} out of order")
        prev_index, prev_term = e.index, e.term


def decode_message(obj: Any, snapshot_data: bytes | None = None) -> Message:
    """Decode a message body; `snapshot_data` is the reassembled snapshot for SNAP."""
    if not isinstance(obj, dict):
        raise RaftCodecError(f"raft message: expected object, got {type(obj).__name__}")
    try:
        mtype = _TYPES_BY_NAME[obj["type"]]
    except (KeyError, TypeError):
        raise RaftCodecError(f"raft message: unknown type {obj.get('type')!r}") from None
    if mtype not in _REQUEST_TAG:
        raise RaftCodecError(f"raft message: local type {mtype.name} cannot come from a peer")
    get = obj.get
    entries: list[Entry] = []
    raw_entries = get("entries")
    if raw_entries is not None:
        if not isinstance(raw_entries, list):
            raise RaftCodecError("raft message: entries must be a list")
        if raw_entries and mtype is not MessageType.APP:
            raise RaftCodecError(f"raft message: {mtype.name} carries no entries")
        entries = [_entry(item) for item in raw_entries]
    snapshot = None
    if "snapshot" in obj:
        snapshot = Snapshot(meta=decode_snapshot_meta(obj["snapshot"]), data=snapshot_data or b"")
    elif mtype is MessageType.SNAP:
        raise RaftCodecError("raft message: SNAP without a snapshot")
    context = get("context")
    reject = get("reject", False)
    if not isinstance(reject, bool):
        raise RaftCodecError("reject: expected boolean")
    msg = Message(
        type=mtype,
        to=_int(get("to", 0), "to"),
        frm=_int(get("from", 0), "from"),
        term=_int(get("term", 0), "term"),
        log_term=_int(get("log_term", 0), "log_term"),
        index=_int(get("index", 0), "index"),
        entries=entries,
        commit=_int(get("commit", 0), "commit"),
        snapshot=snapshot,
        reject=reject,
        reject_hint=_int(get("reject_hint", 0), "reject_hint"),
        context=_decode_data(context) if context is not None else b"",
    )
    if msg.frm == 0:
        raise RaftCodecError("from: a peer message names its sender")
    if entries:
        _check_append(msg)
    return msg


# -- forwarded writes -------------------------------------------------------


def encode_forward_batch(msg: ForwardBatch) -> dict[str, Any]:
    return {"to": msg.to, "from": msg.frm, "term": msg.term, "batch": msg.batch, "data": _encode_data(msg.data)}


def encode_batch_refused(msg: BatchRefused) -> dict[str, Any]:
    return {"to": msg.to, "from": msg.frm, "term": msg.term, "batch": msg.batch, "taken": False}


def _forward_fields(obj: Any, what: str) -> tuple[int, int, int, int]:
    if not isinstance(obj, dict):
        raise RaftCodecError(f"{what}: expected object, got {type(obj).__name__}")
    to, frm, term, batch = (_int(obj.get(k), f"{what}.{k}") for k in ("to", "from", "term", "batch"))
    if frm == 0 or batch == 0:
        raise RaftCodecError(f"{what}: from and batch must be positive")
    return to, frm, term, batch


def decode_forward_batch(obj: Any) -> ForwardBatch:
    to, frm, term, batch = _forward_fields(obj, "RaftForward")
    if "data" not in obj:
        raise RaftCodecError("RaftForward.data: missing")
    return ForwardBatch(to, frm, term, batch, _decode_data(obj["data"]))


def decode_batch_refused(obj: Any) -> BatchRefused:
    fields = _forward_fields(obj, "RaftForwardResponse")
    if obj.get("taken") is not False:
        raise RaftCodecError("RaftForwardResponse.taken: only refusals are sent (false)")
    return BatchRefused(*fields)
