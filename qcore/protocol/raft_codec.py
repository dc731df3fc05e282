"""JSON form of Raft peer messages (the `request` body of RaftVote /
RaftAppend / RaftSnapshot frames and the `Ok` body of their responses).

Entry payloads are JSON text in practice (qcore's own log format), so they
travel as JSON strings — no base64 inflation on the hot path; any payload
that is not valid UTF-8 falls back to `{"b64": "..."}`. Zero-valued fields
are omitted to keep heartbeats small.

Snapshots never travel inside a message body: the transport sends the
snapshot's bytes as separate RaftSnapshot chunks (see qcore.node.transport),
and `encode_message` carries only the snapshot's metadata.
"""

from __future__ import annotations

import base64
from typing import Any

from qcore.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

__all__ = [
    "RaftCodecError",
    "encode_message",
    "decode_message",
    "frame_tag",
    "encode_snapshot_meta",
    "decode_snapshot_meta",
]


class RaftCodecError(ValueError):
    """A peer sent a Raft message body that does not decode."""


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
    # A write a follower hands to the leader (or the leader's "not taken"
    # notice, with reject set). The core never sees these: the node runtime
    # proposes them itself (qcore.node.driver).
    MessageType.PROP: "RaftAppend",
    MessageType.APP_RESP: "RaftAppendResponse",
    MessageType.HEARTBEAT_RESP: "RaftAppendResponse",
    MessageType.READ_INDEX_RESP: "RaftAppendResponse",
    MessageType.SNAP: "RaftSnapshot",
}

_TYPES_BY_NAME = {t.name: t for t in MessageType}


def frame_tag(msg: Message) -> str:
    """The seed's frame name that carries this message type."""
    try:
        return _REQUEST_TAG[msg.type]
    except KeyError:
        raise RaftCodecError(f"message type {msg.type.name} is local and never sent") from None


def _encode_data(data: bytes) -> Any:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def _decode_data(obj: Any) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, dict) and isinstance(obj.get("b64"), str):
        return base64.b64decode(obj["b64"], validate=True)
    raise RaftCodecError(f"entry data: expected string or {{b64}}, got {type(obj).__name__}")


def encode_snapshot_meta(meta: SnapshotMeta) -> dict[str, Any]:
    return {"index": meta.index, "term": meta.term, "conf_state": meta.conf_state.to_json()}


def decode_snapshot_meta(obj: Any) -> SnapshotMeta:
    if not isinstance(obj, dict):
        raise RaftCodecError("snapshot meta: expected object")
    try:
        return SnapshotMeta(
            index=_int(obj["index"], "snapshot.index"),
            term=_int(obj["term"], "snapshot.term"),
            conf_state=ConfState.from_json(obj["conf_state"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RaftCodecError(f"snapshot meta: {exc}") from None


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


def _int(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise RaftCodecError(f"{name}: expected a non-negative integer, got {value!r}")
    return value


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
        for item in raw_entries:
            if not isinstance(item, list) or len(item) != 4:
                raise RaftCodecError("raft message: entry must be [term, index, type, data]")
            term, index, etype, data = item
            entries.append(
                Entry(
                    _int(term, "entry.term"),
                    _int(index, "entry.index"),
                    EntryType(_int(etype, "entry.type")),
                    _decode_data(data),
                )
            )
    snapshot = None
    if "snapshot" in obj:
        snapshot = Snapshot(meta=decode_snapshot_meta(obj["snapshot"]), data=snapshot_data or b"")
    context = get("context")
    return Message(
        type=mtype,
        to=_int(get("to", 0), "to"),
        frm=_int(get("from", 0), "from"),
        term=_int(get("term", 0), "term"),
        log_term=_int(get("log_term", 0), "log_term"),
        index=_int(get("index", 0), "index"),
        entries=entries,
        commit=_int(get("commit", 0), "commit"),
        snapshot=snapshot,
        reject=bool(get("reject", False)),
        reject_hint=_int(get("reject_hint", 0), "reject_hint"),
        context=_decode_data(context) if context is not None else b"",
    )
