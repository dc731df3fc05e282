"""Hypothesis: every store type survives encode -> JSON bytes -> decode
unchanged, and arbitrary JSON never makes a decoder raise anything but CodecError."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.protocol import values as V
from qcore.store import (
    AdjustBehavior,
    Blob,
    Bool,
    Choice,
    CreateEntity,
    CreateEntityResponse,
    DeleteEntity,
    DeleteEntityResponse,
    EntityExists,
    EntityExistsResponse,
    EntityId,
    EntityList,
    EntityReference,
    EntitySchema,
    FieldExists,
    FieldExistsResponse,
    FieldSchema,
    FindEntities,
    FindEntitiesResponse,
    Float,
    GetCompleteSchema,
    GetCompleteSchemaResponse,
    GetChildren,
    GetChildrenResponse,
    GetEntityTypes,
    GetEntityTypesResponse,
    GetSchema,
    GetSchemaResponse,
    Int,
    LoadConfig,
    LoadConfigResponse,
    Notification,
    NotifyConfigEntityId,
    NotifyConfigEntityType,
    PageOpts,
    PageResult,
    PushCondition,
    Read,
    SetSchema,
    SetSchemaResponse,
    String,
    Timestamp,
    TimestampValue,
    TreeNode,
    UpdateEntity,
    UpdateEntityResponse,
    Write,
)

U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(max_size=8)
eids = st.builds(EntityId, names, U64)
timestamps = st.builds(Timestamp, U64, st.integers(0, 999_999_999))
values = st.one_of(
    st.builds(Blob, st.binary(max_size=8)),
    st.builds(Bool, st.booleans()),
    st.builds(Choice, I64),
    st.builds(EntityList, st.lists(eids, max_size=4).map(tuple)),
    st.builds(EntityReference, st.none() | eids),
    st.builds(Float, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(Int, I64),
    st.builds(String, st.text(max_size=8)),
    st.builds(TimestampValue, timestamps),
)
opt_values = st.none() | values
requests = st.one_of(
    st.builds(Read, eids, names, opt_values, st.none() | timestamps, st.none() | eids),
    st.builds(
        Write,
        eids,
        names,
        opt_values,
        st.sampled_from(list(PushCondition)),
        st.sampled_from(list(AdjustBehavior)),
        st.none() | timestamps,
        st.none() | eids,
    ),
)
field_schemas = st.builds(
    FieldSchema, names, values, I64, st.none() | eids, st.none() | eids, st.none() | st.lists(names).map(tuple)
)
entity_schemas = st.builds(
    lambda t, i, fss: EntitySchema(t, i, {f.field_type: f for f in fss}),
    names,
    st.none() | names,
    st.lists(field_schemas, max_size=3),
)
page_opts = st.none() | st.builds(PageOpts, U64, st.none() | names)
tree_nodes = st.recursive(
    st.builds(TreeNode, names, names, st.dictionaries(names, values, max_size=2), st.just([])),
    lambda kids: st.builds(TreeNode, names, names, st.dictionaries(names, values, max_size=2),
                           st.lists(kids, max_size=3)),
    max_leaves=6,
)
load_configs = st.builds(LoadConfig, st.lists(entity_schemas, max_size=3), st.lists(tree_nodes, max_size=2))
commands = st.one_of(
    st.builds(UpdateEntity, st.lists(requests, max_size=4)),
    st.builds(CreateEntity, names, st.none() | eids, names),
    st.builds(DeleteEntity, eids),
    st.builds(SetSchema, entity_schemas),
    st.builds(GetSchema, names),
    st.builds(GetCompleteSchema, names),
    st.builds(FindEntities, names, page_opts),
    st.builds(GetEntityTypes, page_opts),
    st.builds(GetChildren, eids, page_opts),
    st.builds(EntityExists, eids),
    st.builds(FieldExists, names, names),
)
errors = st.none() | st.text(max_size=10)
responses = st.one_of(
    st.builds(UpdateEntityResponse, st.lists(requests, max_size=3), errors),
    st.builds(CreateEntityResponse, st.none() | eids, errors),
    st.builds(DeleteEntityResponse, errors),
    st.builds(SetSchemaResponse, errors),
    st.builds(GetSchemaResponse, st.none() | entity_schemas, errors),
    st.builds(GetCompleteSchemaResponse, st.none() | entity_schemas, errors),
    st.builds(FindEntitiesResponse, st.none() | st.builds(PageResult, st.lists(eids, max_size=3), U64,
                                                           st.none() | names), errors),
    st.builds(GetEntityTypesResponse, st.none() | st.builds(PageResult, st.lists(names, max_size=3), U64,
                                                             st.none() | names), errors),
    st.builds(GetChildrenResponse, st.none() | st.builds(PageResult, st.lists(eids, max_size=3), U64,
                                                          st.none() | names), errors),
    st.builds(EntityExistsResponse, st.booleans()),
    st.builds(FieldExistsResponse, st.booleans()),
    st.builds(LoadConfigResponse, errors, U64),
)
notify_configs = st.one_of(
    st.builds(NotifyConfigEntityId, eids, names, st.booleans(), st.lists(names, max_size=3).map(tuple)),
    st.builds(NotifyConfigEntityType, names, names, st.booleans(), st.lists(names, max_size=3).map(tuple)),
)
notifications = st.builds(
    Notification, eids, names, values, values, timestamps, st.none() | eids,
    st.dictionaries(names, opt_values, max_size=3), U64,
)


def wire(obj):
    return orjson.loads(orjson.dumps(obj))


@given(eids)
def test_entity_id(x):
    assert V.decode_entity_id(wire(V.encode_entity_id(x))) == x


@given(timestamps)
def test_timestamp(x):
    assert V.decode_timestamp(wire(V.encode_timestamp(x))) == x


@given(values)
def test_value(x):
    assert V.decode_value(wire(V.encode_value(x))) == x


@given(requests)
def test_request(x):
    assert V.decode_request(wire(V.encode_request(x))) == x


@given(field_schemas)
def test_field_schema(x):
    assert V.decode_field_schema(wire(V.encode_field_schema(x))) == x


@given(entity_schemas)
def test_entity_schema(x):
    assert V.decode_entity_schema(wire(V.encode_entity_schema(x))) == x


@given(page_opts)
def test_page_opts(x):
    assert V.decode_page_opts(wire(V.encode_page_opts(x))) == x


@given(commands)
def test_command_request(x):
    assert V.decode_command_request(wire(V.encode_command_request(x))) == x


@settings(max_examples=50)
@given(load_configs)
def test_load_config(x):
    assert V.decode_load_config(wire(V.encode_load_config(x))) == x
    assert V.decode_command_request(wire(V.encode_command_request(x)), allow_internal=True) == x


@given(responses)
def test_command_response(x):
    assert V.decode_command_response(wire(V.encode_command_response(x))) == x


@given(notify_configs)
def test_notify_config(x):
    got = V.decode_notify_config(wire(V.encode_notify_config(x)))
    assert got == x and hash(got) == hash(x)


@given(notifications)
def test_notification(x):
    assert V.decode_notification(wire(V.encode_notification(x))) == x


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5) | st.sampled_from(["Int", "Read", "Write", "UpdateEntity", "typ", "id"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["Int", "Float", "String", "Blob", "EntityList", "EntityReference", "Timestamp", "Choice",
                         "Bool", "Read", "Write", "UpdateEntity", "CreateEntity", "request", "entity_id",
                         "field_type", "typ", "id", "value", "secs_since_epoch", "nanos_since_epoch",
                         "entity_schema", "fields", "entity_type", "default_value", "page_opts", "limit",
                         "EntityId", "EntityType", "context", "response", "error", "items", "total"]),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)
DECODERS = [
    V.decode_command_request,
    V.decode_command_response,
    V.decode_value,
    V.decode_request,
    V.decode_entity_id,
    V.decode_timestamp,
    V.decode_entity_schema,
    V.decode_notify_config,
    V.decode_notification,
    V.decode_load_config,
    V.decode_page_opts,
]


@settings(max_examples=300)
@given(json_values, st.sampled_from(DECODERS))
def test_arbitrary_json_only_raises_codec_error(obj, dec):
    try:
        dec(obj)
    except V.CodecError as e:
        assert str(e)


@settings(max_examples=200)
@given(commands, st.data())
def test_mutated_valid_requests_only_raise_codec_error(cmd, data):
    obj = wire(V.encode_command_request(cmd))

    def mutate(o):
        if isinstance(o, dict) and o:
            k = data.draw(st.sampled_from(sorted(o)))
            if data.draw(st.booleans()):
                o[k] = data.draw(json_values)
            else:
                mutate(o[k])
        elif isinstance(o, list) and o:
            mutate(o[data.draw(st.integers(0, len(o) - 1))])

    mutate(obj)
    try:
        V.decode_command_request(obj)
    except V.CodecError as e:
        assert str(e).startswith("request")
