"""qcore.protocol.reply_size against the real encoder: the estimate is never
below the encoded size of a response and at most a few tens of bytes per value
above it."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from qcore.protocol import messages as m
from qcore.protocol.reply_size import ReadMeter, blob_size, perform_reply, response_size, text_size, value_size
from qcore.protocol.values import encode_command_response, encode_value
from qcore.store import (
    Blob,
    UpdateEntity,
    Write,
    EntityId,
    EntityList,
    PageResult,
    Read,
    String,
    UpdateEntityResponse,
)
from qcore.store.commands import GetChildrenResponse
from tests.protocol.test_values_props import responses, values
from tests.store.helpers import T0, create, make_store

SLACK = 64  # bytes the estimate may exceed a value's encoding by


def encoded(obj: object) -> int:
    return len(orjson.dumps(obj))


@given(responses)
def test_a_response_is_never_larger_than_its_estimate(resp):
    assert response_size(resp) >= encoded(encode_command_response(resp))


@given(values)
def test_a_value_is_estimated_within_a_few_bytes(v):
    actual = encoded(encode_value(v))
    assert actual <= value_size(v) <= actual + SLACK


@given(st.text())  # every code point hypothesis draws: control characters, quotes, non-ASCII
def test_text_is_counted_exactly(s):
    assert text_size(s) == encoded(s)


@given(st.binary(max_size=2000))
def test_a_blob_is_counted_exactly(b):
    assert blob_size(b) == encoded(list(b))


def test_large_values_of_every_shape_are_estimated_tightly():
    big = [
        Blob(bytes(range(256)) * 4096),  # 1 MiB, every byte value
        Blob(bytes(1 << 20)),  # 1 MiB of zeros: 2 bytes of JSON each
        String("x" * (1 << 20)),
        String("\u00e9\u2028\"\\\n\x01" * 50_000),
        EntityList(tuple(EntityId("Device", i) for i in range(50_000))),
    ]
    for v in big:
        actual = encoded(encode_value(v))
        assert actual <= value_size(v) <= actual + SLACK, v.__class__.__name__


def test_a_batch_naming_one_value_many_times_is_estimated_per_copy():
    blob = Blob(bytes(range(256)) * 1024)
    resp = UpdateEntityResponse([Read(EntityId("Device", 11), "Firmware", blob) for _ in range(100)])
    actual = encoded(encode_command_response(resp))
    assert actual <= response_size(resp) <= actual + 100 * 128


def test_a_page_of_ids_is_estimated_tightly():
    resp = GetChildrenResponse(PageResult([EntityId("Sensor", i) for i in range(100_000)], 100_000, "c" * 40))
    actual = encoded(encode_command_response(resp))
    assert actual <= response_size(resp) <= actual + 256


def test_a_reply_over_the_limit_is_an_error_saying_by_how_much_and_what_to_do():
    blob = Blob(bytes(range(256)) * 1024)  # ~913 KiB of JSON
    reads = [Read(EntityId("Device", 11), "Firmware", blob) for _ in range(4)]
    fits = perform_reply("r1", UpdateEntityResponse(reads), 4 << 20)
    assert fits.__class__ is m.PerformResponse
    size = len(m.encode_message(fits))
    assert size <= 4 << 20
    over = perform_reply("r1", UpdateEntityResponse(reads * 2), 4 << 20)
    assert over.__class__ is m.Error and over.kind == "invalid" and over.id == "r1"
    assert f"over the limit of {4 << 20} (--max-frame-bytes) by " in over.error
    assert over.error.endswith("; read fewer values per request")
    too_big = int(over.error.split("at least ")[1].split(" bytes")[0])
    assert 2 * size - 200 <= too_big <= 2 * size + 8 * 128  # twice the batch that fitted, give or take the ids
    page = perform_reply(7, GetChildrenResponse(PageResult([EntityId("Sensor", i) for i in range(1000)], 1000)), 1000)
    assert page.__class__ is m.Error and "ask for smaller pages" in page.error


def test_a_meter_cuts_a_read_batch_short_once_it_is_over_the_limit():
    """Every read of a String decodes it afresh: a batch of 1,000 reads of 1 MiB
    stops after the few that reach the limit, and is refused saying "at least"."""
    s = make_store()
    user = create(s, "User", "u")
    text = String("x" * (1 << 20))
    resp, _ = s.apply(UpdateEntity([Write(user, "Email", text)]), T0)
    assert resp.error is None
    batch = UpdateEntity([Read(user, "Email")] * 1000)
    meter = ReadMeter(batch.request, 4 << 20)
    partial = s.query(batch, meter.add)
    assert len(partial.response) == 4  # the fourth copy takes it over 4 MiB
    assert meter.size > 4 << 20
    refused = perform_reply("r", partial, 4 << 20, meter)
    assert refused.__class__ is m.Error and "at least" in refused.error and "read fewer values" in refused.error
    whole = s.query(UpdateEntity(batch.request[:10]), ReadMeter(batch.request[:10], 16 << 20).add)
    assert len(whole.response) == 10 and whole.response[-1].value == text  # under the limit: not cut


def test_a_meter_counts_what_a_batch_that_writes_echoes():
    s = make_store()
    user = create(s, "User", "u")
    batch = UpdateEntity([Write(user, "Email", String("y" * 100_000)), *[Read(user, "Email")] * 3,
                          Write(user, "Avatar", Blob(bytes(range(256)) * 100)), Read(user, "Avatar")])
    meter = ReadMeter(batch.request, 16 << 20)
    resp, _ = s.apply(batch, T0, meter.add)
    assert len(resp.response) == 6
    actual = encoded(encode_command_response(resp))
    assert actual <= response_size(resp, meter) <= actual + 6 * 128


def test_one_value_over_the_limit_is_told_apart_from_too_many():
    s = make_store()
    user = create(s, "User", "u")
    s.apply(UpdateEntity([Write(user, "Email", String("z" * 5000))]), T0)
    one = UpdateEntity([Read(user, "Email")])
    meter = ReadMeter(one.request, 4096)
    refused = perform_reply(1, s.query(one, meter.add), 4096, meter)
    assert refused.__class__ is m.Error and "one value this large needs a node with a larger" in refused.error
