"""The envelope codec: seed shapes, round-trips, and every way a frame can be wrong."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qcore.protocol import auth, messages as m, ops
from qcore.protocol.messages import ProtocolError, decode_message, encode_message

# ---------------------------------------------------------------- seed shapes

SEED_FRAMES = [
    {"Init": {"id": "req-123", "nodes": []}},
    {"InitResponse": {"id": "req-123", "response": "Ok"}},
    {"InitResponse": {"id": "req-123", "response": {"Err": "already initialised"}}},
    {"AddLearner": {"id": "req-124", "node_id": 2, "node_addr": "127.0.0.1:8081"}},
    {"ChangeMembership": {"id": "req-125", "members": [1, 2, 3]}},
    {"GetMetrics": {"id": "req-126"}},
    {
        "Perform": {
            "id": "req-127",
            "request": {
                "UpdateEntity": {
                    "request": [
                        {
                            "Read": {
                                "entity_id": {"typ": "User", "id": 123},
                                "field_type": "Name",
                                "value": None,
                                "write_time": None,
                                "writer_id": None,
                            }
                        }
                    ]
                }
            },
        }
    },
    {"Error": {"id": "req-123", "error": "Description of what went wrong"}},
]


@pytest.mark.parametrize("frame", SEED_FRAMES, ids=lambda f: next(iter(f)))
def test_seed_frames_decode_and_reencode_byte_identically(frame: dict[str, Any]) -> None:
    raw = orjson.dumps(frame)
    msg = decode_message(raw)
    assert type(msg).TAG == next(iter(frame))
    assert encode_message(msg) == raw


@pytest.mark.parametrize("cls", sorted({c for c in m.MESSAGE_TYPES.values() if not hasattr(c, "OMIT")}, key=lambda c: c.TAG),
                         ids=lambda c: c.TAG)
def test_encoding_matches_orjsons_own_dataclass_output(cls: type[Any]) -> None:
    """encode_message builds the body itself (a fast path); it must write what
    orjson writes for the dataclass, field for field and in order (types
    with fields left out at their default: the tests below)."""
    names = [f.name for f in dataclasses.fields(cls)]
    msg = cls(*[[i, {"nested": name}] for i, name in enumerate(names)])
    assert encode_message(msg) == orjson.dumps({cls.TAG: msg})


def test_init_nodes_become_pairs() -> None:
    msg = decode_message(b'{"Init":{"id":"a","nodes":[[1,"h:1"],[2,"h:2"]]}}')
    assert msg == m.Init("a", [(1, "h:1"), (2, "h:2")])


def test_integer_ids_are_echoed_unchanged() -> None:
    msg = decode_message(b'{"GetMetrics":{"id":42}}')
    assert msg.id == 42
    assert encode_message(m.GetMetricsResponse(msg.id, {})) == b'{"GetMetricsResponse":{"id":42,"response":{}}}'


def test_optional_fields_default_and_are_omitted_at_default() -> None:
    cm = decode_message(b'{"ChangeMembership":{"id":"a","members":[1]}}')
    assert cm == m.ChangeMembership("a", [1], retain=False)
    assert decode_message(b'{"ChangeMembership":{"id":"a","members":[1],"retain":true}}').retain is True
    assert b"retain" not in encode_message(cm)
    rn = decode_message(b'{"RegisterNotification":{"id":"a","config":{}}}')
    assert rn.from_index is None
    assert b"from_index" not in encode_message(rn)
    assert decode_message(b'{"RegisterNotification":{"id":"a","config":{},"from_index":null}}').from_index is None
    rn5 = m.RegisterNotification("a", {}, from_index=5)
    assert decode_message(encode_message(rn5)) == rn5


def test_unknown_fields_are_ignored() -> None:
    assert decode_message(b'{"GetMetrics":{"id":"a","extra":[1]}}') == m.GetMetrics("a")


def test_str_bytes_and_memoryview_input() -> None:
    raw = '{"GetMetrics":{"id":"é"}}'
    assert decode_message(raw) == decode_message(raw.encode()) == decode_message(memoryview(raw.encode()))


def test_result_helpers() -> None:
    assert m.ok() == "Ok"
    assert m.ok(None) == {"Ok": None}
    assert m.ok({"log_id": 3}) == {"Ok": {"log_id": 3}}
    assert m.ok("Ok") == {"Ok": "Ok"}
    assert m.err("boom") == {"Err": "boom"}
    assert m.result_of("Ok") == (True, None)
    assert m.result_of({"Ok": 5}) == (True, 5)
    assert m.result_of({"Err": "x"}) == (False, "x")
    assert m.result_of({"Other": 1})[0] is False
    assert m.result_of(["Ok"])[0] is False


def test_new_id_is_unique_text() -> None:
    ids = {m.new_id() for _ in range(100)}
    assert len(ids) == 100 and all(isinstance(i, str) for i in ids)


def test_response_types_cover_every_request() -> None:
    for req, resp in m.RESPONSE_TYPES.items():
        assert resp.TAG == req.TAG + "Response"
    assert set(m.MESSAGE_TYPES) == {c.TAG for c in m.RESPONSE_TYPES} | {
        c.TAG for c in m.RESPONSE_TYPES.values()
    } | {"Notification", "Error"}


# ---------------------------------------------------------------- round trips

ids = st.one_of(st.text(max_size=40), st.integers(min_value=-(2**63), max_value=2**64 - 1))
u64 = st.integers(min_value=0, max_value=2**64 - 1)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
results = st.one_of(
    st.just("Ok"),
    st.builds(lambda v: {"Ok": v}, json_values),
    st.builds(lambda s: {"Err": s}, st.text(max_size=30)),
)

STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    m.Init: st.builds(m.Init, ids, st.lists(st.tuples(u64, st.text(max_size=20)), max_size=5),
                      st.one_of(st.none(), st.text(max_size=20))),
    m.AddLearner: st.builds(m.AddLearner, ids, u64, st.text(max_size=20)),
    m.ChangeMembership: st.builds(m.ChangeMembership, ids, st.lists(u64, max_size=5), st.booleans()),
    m.RemoveNode: st.builds(m.RemoveNode, ids, u64),
    m.GetMetrics: st.builds(m.GetMetrics, ids),
    m.GetMetricsResponse: st.builds(m.GetMetricsResponse, ids, json_objects),
    m.Perform: st.builds(m.Perform, ids, json_objects),
    m.PerformResponse: st.builds(m.PerformResponse, ids, json_objects),
    m.RaftVote: st.builds(m.RaftVote, ids, json_objects),
    m.RaftAppend: st.builds(m.RaftAppend, ids, json_objects),
    m.RaftSnapshot: st.builds(m.RaftSnapshot, ids, json_objects),
    m.RaftForward: st.builds(m.RaftForward, ids, json_objects),
    m.PeerAuth: st.builds(m.PeerAuth, ids, json_objects),
    m.RegisterNotification: st.builds(m.RegisterNotification, ids, json_objects, st.one_of(st.none(), u64)),
    m.UnregisterNotification: st.builds(m.UnregisterNotification, ids, ids),
    m.Notification: st.builds(m.Notification, ids, json_objects),
    m.Error: st.builds(m.Error, ids, st.text(max_size=40)),
    ops.GetClusterMetrics: st.builds(ops.GetClusterMetrics, ids),
    ops.SnapshotSave: st.builds(ops.SnapshotSave, ids),
    ops.SnapshotRead: st.builds(ops.SnapshotRead, ids, st.text(max_size=20), u64, u64),
    ops.SnapshotRelease: st.builds(ops.SnapshotRelease, ids, st.text(max_size=20)),
    auth.Authenticate: st.builds(auth.Authenticate, ids, st.text(max_size=20), st.text(max_size=20)),
    auth.AuthAdmin: st.builds(auth.AuthAdmin, ids, json_objects),
}
for _cls in (
    m.InitResponse,
    m.AddLearnerResponse,
    m.ChangeMembershipResponse,
    m.RemoveNodeResponse,
    m.RaftVoteResponse,
    m.RaftAppendResponse,
    m.RaftSnapshotResponse,
    m.RaftForwardResponse,
    m.PeerAuthResponse,
    m.RegisterNotificationResponse,
    m.UnregisterNotificationResponse,
    ops.GetClusterMetricsResponse,
    ops.SnapshotSaveResponse,
    ops.SnapshotReadResponse,
    ops.SnapshotReleaseResponse,
    auth.AuthenticateResponse,
    auth.AuthAdminResponse,
):
    STRATEGIES[_cls] = st.builds(_cls, ids, results)


def test_every_message_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(m.MESSAGE_TYPES.values())


@given(st.one_of(*STRATEGIES.values()))
def test_round_trip(msg: Any) -> None:
    raw = encode_message(msg)
    assert decode_message(raw) == msg
    # One object, one key: the type name.
    frame = orjson.loads(raw)
    assert list(frame) == [type(msg).TAG]


@given(st.one_of(*STRATEGIES.values()))
def test_field_names_on_the_wire_are_the_dataclass_fields(msg: Any) -> None:
    body = orjson.loads(encode_message(msg))[type(msg).TAG]
    names = [f.name for f in dataclasses.fields(msg)]
    assert set(body) <= set(names)
    assert set(names) - set(body) <= {name for name, _ in getattr(msg, "OMIT", ())}


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        decode_message(data)
    except ProtocolError:
        pass


@given(json_values)
def test_arbitrary_json_decodes_or_raises_protocol_error(value: Any) -> None:
    try:
        decode_message(orjson.dumps(value))
    except ProtocolError:
        pass


@given(st.sampled_from(sorted(m.MESSAGE_TYPES)), json_objects)
def test_arbitrary_bodies_decode_or_raise_protocol_error(tag: str, body: dict[str, Any]) -> None:
    try:
        decode_message(orjson.dumps({tag: body}))
    except ProtocolError:
        pass


# ---------------------------------------------------------------- errors


def _error(frame: Any) -> ProtocolError:
    raw = frame if isinstance(frame, bytes) else orjson.dumps(frame)
    with pytest.raises(ProtocolError) as info:
        decode_message(raw)
    return info.value


@pytest.mark.parametrize(
    ("frame", "text", "request_id"),
    [
        (b"not json", "invalid JSON", None),
        (b"", "invalid JSON", None),
        (b'{"GetMetrics":{"id":"a"}', "invalid JSON", None),
        (b"\xff\xfe", "invalid JSON", None),
        ([1, 2], "expected an object with one message type as its key, got array", None),
        ("hello", "expected an object with one message type as its key, got string", None),
        (None, "expected an object with one message type as its key, got null", None),
        ({}, "expected an object with one message type as its key, got an empty object", None),
        (
            {"GetMetrics": {"id": "a"}, "Init": {"id": "b", "nodes": []}},
            "expected exactly one message type, got 2: GetMetrics, Init",
            None,
        ),
        ({"Foo": {"id": "r1"}}, 'unknown message type "Foo"', "r1"),
        ({"Foo": {"id": 9}}, 'unknown message type "Foo"', 9),
        ({"Foo": {"id": 1.5}}, 'unknown message type "Foo"', 1.5),
        ({"Foo": {"id": True}}, 'unknown message type "Foo"', None),
        ({"Foo": "x"}, 'unknown message type "Foo"', None),
        ({"GetMetrics": "x"}, "GetMetrics: expected object, got string", None),
        ({"GetMetrics": None}, "GetMetrics: expected object, got null", None),
        ({"GetMetrics": {}}, "GetMetrics.id: missing field", None),
        ({"GetMetrics": {"id": None}}, "GetMetrics.id: expected string or integer, got null", None),
        ({"Perform": {"id": True, "request": {}}}, "Perform.id: expected string or integer, got boolean", None),
        ({"Perform": {"id": {"a": 1}, "request": {}}}, "Perform.id: expected string or integer, got object", None),
        ({"Perform": {"id": 1.5, "request": {}}}, "Perform.id: expected string or integer, got number", 1.5),
        ({"Perform": {"id": "p"}}, "Perform.request: missing field", "p"),
        ({"Perform": {"id": "p", "request": []}}, "Perform.request: expected object, got array", "p"),
        ({"Init": {"id": "i"}}, "Init.nodes: missing field", "i"),
        ({"Init": {"id": "i", "nodes": {}}}, "Init.nodes: expected array of [node_id, address] pairs, got object", "i"),
        ({"Init": {"id": "i", "nodes": [[1]]}}, "Init.nodes[0]: expected [node_id, address] pair, got array", "i"),
        ({"Init": {"id": "i", "nodes": [1]}}, "Init.nodes[0]: expected [node_id, address] pair, got integer", "i"),
        ({"Init": {"id": "i", "nodes": [[1, "a"], ["2", "b"]]}}, "Init.nodes[1][0]: expected unsigned integer, got string", "i"),
        ({"Init": {"id": "i", "nodes": [[-1, "a"]]}}, "Init.nodes[0][0]: expected unsigned integer, got integer", "i"),
        ({"Init": {"id": "i", "nodes": [[1, 2]]}}, "Init.nodes[0][1]: expected string, got integer", "i"),
        (b'{"Init":{"id":"i","nodes":[[18446744073709551616,"a"]]}}', "Init.nodes[0][0]: expected unsigned integer, got number", "i"),
        ({"AddLearner": {"id": "l", "node_id": True, "node_addr": "a"}}, "AddLearner.node_id: expected unsigned integer, got boolean", "l"),
        ({"AddLearner": {"id": "l", "node_id": 2}}, "AddLearner.node_addr: missing field", "l"),
        ({"ChangeMembership": {"id": "c", "members": [1, "2"]}}, "ChangeMembership.members[1]: expected unsigned integer, got string", "c"),
        ({"ChangeMembership": {"id": "c", "members": 3}}, "ChangeMembership.members: expected array of node ids, got integer", "c"),
        ({"ChangeMembership": {"id": "c", "members": [1], "retain": 1}}, "ChangeMembership.retain: expected boolean, got integer", "c"),
        ({"RemoveNode": {"id": "r"}}, "RemoveNode.node_id: missing", "r"),
        ({"RemoveNode": {"id": "r", "node_id": "2"}}, "RemoveNode.node_id: expected unsigned integer, got string", "r"),
        ({"RegisterNotification": {"id": "n", "config": {}, "from_index": -1}}, "RegisterNotification.from_index: expected unsigned integer, got integer", "n"),
        ({"RegisterNotification": {"id": "n", "config": "x"}}, "RegisterNotification.config: expected object, got string", "n"),
        ({"UnregisterNotification": {"id": "u", "token": [1]}}, "UnregisterNotification.token: expected string or integer, got array", "u"),
        ({"InitResponse": {"id": "r", "response": "ok"}}, 'InitResponse.response: expected "Ok", {"Ok": ...} or {"Err": "..."}, got string', "r"),
        ({"InitResponse": {"id": "r", "response": {"Err": 5}}}, "InitResponse.response.Err: expected string, got integer", "r"),
        ({"AddLearnerResponse": {"id": "r", "response": {"Ok": 1, "Err": "x"}}}, 'AddLearnerResponse.response: expected "Ok", {"Ok": ...} or {"Err": "..."}, got object', "r"),
        ({"GetMetricsResponse": {"id": "r", "response": "Ok"}}, "GetMetricsResponse.response: expected object, got string", "r"),
        ({"Notification": {"token": "t"}}, "Notification.notification: missing field", None),
        ({"Error": {"id": "e", "error": None}}, "Error.error: expected string, got null", "e"),
    ],
)
def test_error_text_and_recovered_id(frame: Any, text: str, request_id: Any) -> None:
    e = _error(frame)
    assert e.message.startswith(text), e.message
    assert str(e) == e.message
    assert e.request_id == request_id
    if request_id is not None:
        assert type(e.request_id) is type(request_id)


def test_an_error_may_echo_any_recovered_id() -> None:
    e = _error({"Perform": {"id": 1.5, "request": {}}})
    reply = m.Error(e.request_id, e.message)  # type: ignore[arg-type]
    assert decode_message(encode_message(reply)) == reply
    assert _error({"Error": {"id": True, "error": "x"}}).message == "Error.id: expected string or number, got boolean"


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    e = _error(b"[" * 100_000 + b"]" * 100_000)
    assert e.message.startswith("invalid JSON")
