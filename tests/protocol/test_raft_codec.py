"""Peer message bodies (qcore.protocol.raft_codec): what encodes decodes back,
and anything the Raft core could not take is refused here, as a
RaftCodecError, never as another exception (the node stops on an exception
inside the core: bad input must not get that far)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.protocol.raft_codec import (
    BatchRefused,
    ForwardBatch,
    RaftCodecError,
    decode_batch_refused,
    decode_forward_batch,
    decode_message,
    encode_batch_refused,
    encode_forward_batch,
    encode_message,
    frame_tag,
)
from qcore.raft.types import ConfChange, ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMeta

APP = MessageType.APP


def app(**kw: Any) -> dict[str, Any]:
    body = {"type": "APP", "to": 1, "from": 2, "term": 3, "log_term": 2, "index": 4, "commit": 4,
            "entries": [[2, 5, 0, "a"], [3, 6, 0, "b"]]}
    body.update(kw)
    return body


def test_messages_round_trip() -> None:
    cc = ConfChange().encode()
    msgs = [
        Message(APP, to=1, frm=2, term=3, log_term=2, index=4, commit=4,
                entries=[Entry(2, 5, EntryType.NORMAL, b"x"), Entry(3, 6, EntryType.CONF_CHANGE, cc)]),
        Message(MessageType.VOTE_RESP, to=1, frm=2, term=3, reject=True),
        Message(MessageType.READ_INDEX, to=1, frm=2, context=b"\xff\x00"),
        Message(MessageType.SNAP, to=1, frm=2, term=3,
                snapshot=Snapshot(SnapshotMeta(9, 3, ConfState(voters=(1, 2), addresses={1: "a:1", 2: "b:2"})))),
        Message(MessageType.SNAP, to=1, frm=2, term=3,  # with the log id of the configuration's entry
                snapshot=Snapshot(SnapshotMeta(9, 3, ConfState(voters=(1,)), conf_index=5, conf_term=2))),
    ]
    for msg in msgs:
        back = decode_message(encode_message(msg), snapshot_data=b"" if msg.snapshot else None)
        assert back == msg
    fwd = ForwardBatch(to=1, frm=2, term=3, batch=7, data=b'{"c":[]}')
    assert decode_forward_batch(encode_forward_batch(fwd)) == fwd and frame_tag(fwd) == "RaftForward"
    ref = BatchRefused(to=2, frm=1, term=3, batch=7)
    assert decode_batch_refused(encode_batch_refused(ref)) == ref and frame_tag(ref) == "RaftForwardResponse"


@pytest.mark.parametrize(
    "body, why",
    [
        (app(type="PROP"), "local type"),
        (app(type="HUP"), "local type"),
        (app(type="NOPE"), "unknown type"),
        (app(**{"from": 0}), "names its sender"),
        (app(term=-1), "non-negative"),
        (app(term=True), "non-negative"),
        (app(entries=[[2, 6, 0, "a"]]), "does not follow"),
        (app(entries=[[2, 5, 0, "a"], [2, 7, 0, "b"]]), "does not follow"),
        (app(entries=[[3, 5, 0, "a"], [2, 6, 0, "b"]]), "out of order"),
        (app(entries=[[4, 5, 0, "a"]]), "out of order"),  # past the leader's term
        (app(entries=[[2, 5, 7, "a"]]), "unknown entry type"),
        (app(entries=[[2, 5, 1, "not a conf change"]]), "configuration change"),
        (app(entries=[[2, 5, 0]]), "entry must be"),
        (app(entries=[[2, 5, 0, 17]]), "entry data"),
        (app(entries=[[2, 5, 0, {"b64": "!!"}]]), "base64"),
        (app(type="HEARTBEAT"), "carries no entries"),
        (app(reject="yes"), "boolean"),
        ({"type": "SNAP", "to": 1, "from": 2, "term": 3}, "without a snapshot"),
        ({"type": "SNAP", "to": 1, "from": 2, "term": 3, "snapshot": {"index": 1, "term": 1}}, "conf_state"),
        ({"type": "SNAP", "to": 1, "from": 2, "term": 3,
          "snapshot": {"index": 1, "term": 1, "conf_state": {"voters": ["1"]}}}, "node ids"),
        ({"type": "SNAP", "to": 1, "from": 2, "term": 3,
          "snapshot": {"index": 1, "term": 1, "conf_state": {"addresses": {"x": 1}}}}, "addresses"),
        ([], "expected object"),
    ],
)
def test_what_the_core_could_not_take_is_refused(body: Any, why: str) -> None:
    with pytest.raises(RaftCodecError, match=why):
        decode_message(body)


@pytest.mark.parametrize(
    "body",
    [
        {"to": 1, "from": 2, "term": 3, "batch": 1},  # no data
        {"to": 1, "from": 0, "term": 3, "batch": 1, "data": ""},
        {"to": 1, "from": 2, "term": 3, "batch": 0, "data": ""},
        {"to": "1", "from": 2, "term": 3, "batch": 1, "data": ""},
        "RaftForward",
    ],
)
def test_bad_forwarded_batches_are_refused(body: Any) -> None:
    with pytest.raises(RaftCodecError):
        decode_forward_batch(body)
    with pytest.raises(RaftCodecError):
        decode_batch_refused(body)


def test_a_refusal_says_it_was_not_taken() -> None:
    with pytest.raises(RaftCodecError, match="taken"):
        decode_batch_refused({"to": 2, "from": 1, "term": 3, "batch": 7})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**64) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
names = st.sampled_from([t.name for t in MessageType])
fields = st.fixed_dictionaries(
    {"type": names},
    optional={k: json_values for k in ("to", "from", "term", "log_term", "index", "commit", "entries",
                                       "reject", "reject_hint", "context", "snapshot")},
)


@settings(max_examples=200, deadline=None)
@given(body=fields | json_values)
def test_decoding_random_bodies_only_ever_refuses(body: Any) -> None:
    try:
        decode_message(body)
    except RaftCodecError:
        pass
    for decode in (decode_forward_batch, decode_batch_refused):
        try:
            decode(body)
        except RaftCodecError:
            pass
