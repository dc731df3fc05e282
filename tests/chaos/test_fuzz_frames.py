"""Input hardening: a live node fed random and mutated frames must keep serving.

One real node process (single-node cluster, ``--init``) is started for the
module with small, explicit limits. Every hypothesis example sends some hostile
frames on one connection and then a well-formed request, whose correct reply
must arrive; the node must never exit. SPEC 2: a bad frame gets an ``Error``
and the connection stays open; an oversized frame is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from qcore.chaos.cluster import registers_config
from qcore.local_procs import free_port, log_tail, node_argv

from .node_available import requires_node

pytestmark = requires_node

MAX_FRAME = 256 * 1024
MAX_INFLIGHT = 128
_ids = itertools.count(1)


class LiveNode:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        cfg = tmp / "schemas.yaml"
        cfg.write_text(registers_config(4))
        self.log = open(tmp / "node.log", "wb")
        self.log_path = tmp / "node.log"
        self.proc = subprocess.Popen(
            node_argv(1, self.addr, cfg, tmp / "data", "--init", "--max-frame-bytes", str(MAX_FRAME),
                      "--max-inflight", str(MAX_INFLIGHT), "--max-connections", "2000"),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.register = self._wait_ready()

    def tail(self) -> str:
        return log_tail(self.log_path)

    def _wait_ready(self) -> int:
        """Poll until the node has a register to read (a separate process: nothing to await)."""
        deadline = time.monotonic() + 60
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"node exited:\n{self.tail()}"
            try:
                with connect(f"ws://{self.addr}", open_timeout=2) as ws:
                    reply = request(ws, "Perform", {"request": {"FindEntities": {
                        "entity_type": "Register", "page_opts": None}}})
                    items = reply["PerformResponse"]["response"]["FindEntities"]["response"]["items"]
                    if items:
                        return int(items[0]["id"])
            except (OSError, ConnectionClosed, KeyError, TypeError, TimeoutError) as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"node not ready: {last!r}\n{self.tail()}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNode]:
    n = LiveNode(tmp_path_factory.mktemp("fuzz"))
    yield n
    alive = n.proc.poll() is None
    n.stop()
    assert alive, f"the node died during the fuzz tests:\n{n.tail()}"


def request(ws: ClientConnection, tag: str, fields: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send a well-formed request and return its reply, skipping replies to other ids."""
    rid = f"ok-{next(_ids)}"
    ws.send(json.dumps({tag: {"id": rid, **fields}}))
    return wait_reply(ws, rid, timeout)


def wait_reply(ws: ClientConnection, rid: str, timeout: float = 10.0,
               others: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read replies until the one with ``rid``; the others go to ``others``."""
    deadline = time.monotonic() + timeout
    while True:
        frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        msg = orjson.loads(frame)
        assert isinstance(msg, dict) and len(msg) == 1, f"reply is not one tagged object: {frame[:200]!r}"
        ((_, body),) = msg.items()
        if isinstance(body, dict) and body.get("id") == rid:
            return msg
        if others is not None:
            others.append(msg)


def sync(ws: ClientConnection) -> list[dict[str, Any]]:
    """A GetMetrics round trip; returns the replies that arrived before its own."""
    rid = f"sync-{next(_ids)}"
    ws.send(json.dumps({"GetMetrics": {"id": rid}}))
    others: list[dict[str, Any]] = []
    reply = wait_reply(ws, rid, others=others)
    assert "GetMetricsResponse" in reply, reply
    return others


def check_still_serving(ws: ClientConnection, node: LiveNode) -> None:
    """The well-formed requests of every example: a write and the read of it."""
    value = next(_ids)
    write = {"UpdateEntity": {"request": [{"Write": {
        "entity_id": {"typ": "Register", "id": node.register}, "field_type": "Value", "value": {"Int": value},
        "push_condition": "Always", "adjust_behavior": "Set", "write_time": None, "writer_id": None}}]}}
    reply = request(ws, "Perform", {"request": write})
    assert reply["PerformResponse"]["response"]["UpdateEntity"]["error"] is None, reply
    read = {"UpdateEntity": {"request": [{"Read": {
        "entity_id": {"typ": "Register", "id": node.register}, "field_type": "Value",
        "value": None, "write_time": None, "writer_id": None}}]}}
    reply = request(ws, "Perform", {"request": read})
    got = reply["PerformResponse"]["response"]["UpdateEntity"]["response"][0]["Read"]["value"]
    assert got == {"Int": value}, reply
    assert node.proc.poll() is None, node.tail()


# --- hostile frames -----------------------------------------------------------------

VALID = [
    {"GetMetrics": {"id": "fz"}},
    {"Perform": {"id": "fz", "request": {"UpdateEntity": {"request": [{"Read": {
        "entity_id": {"typ": "Register", "id": 1}, "field_type": "Value", "value": None,
        "write_time": None, "writer_id": None}}]}}}},
    {"Perform": {"id": "fz", "request": {"FindEntities": {"entity_type": "Register", "page_opts": None}}}},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _mutate_types(draw: st.DrawFn) -> str:
    """A known request with one field replaced by a value of a random JSON type."""
    msg = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    ((tag, body),) = msg.items()
    target: Any = body
    path = draw(st.lists(st.integers(0, 5), max_size=4))
    for step in path:
        if isinstance(target, dict) and target:
            key = sorted(target)[step % len(target)]
            if isinstance(target[key], (dict, list)) and target[key]:
                target = target[key]
        elif isinstance(target, list) and target:
            if isinstance(target[step % len(target)], (dict, list)):
                target = target[step % len(target)]
    if isinstance(target, dict) and target:
        target[sorted(target)[draw(st.integers(0, 10)) % len(target)]] = draw(json_values)
    return json.dumps(msg)


@st.composite
def hostile_frame(draw: st.DrawFn) -> tuple[str, str | bytes]:
    kind = draw(st.sampled_from(["truncated", "nesting", "types", "unknown_tag", "huge_number",
                                 "binary", "invalid_utf8", "not_object", "garbage_text"]))
    if kind == "truncated":
        text = json.dumps(draw(st.sampled_from(VALID)))
        return kind, text[: draw(st.integers(0, len(text) - 1))]
    if kind == "nesting":
        depth = draw(st.sampled_from([100, 1000, 5000, 50_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        return f"nesting{depth}", f'{{"Perform": {{"id": "fz", "request": {inner}}}}}'
    if kind == "types":
        return kind, _mutate_types(draw)
    if kind == "unknown_tag":
        tag = draw(st.text(min_size=1, max_size=20).filter(lambda t: not t.startswith(("Raft", "Init", "Add",
                                                                                        "Change", "Register",
                                                                                        "Unregister"))))
        return kind, json.dumps({tag: {"id": "fz", "x": draw(json_values)}})
    if kind == "huge_number":
        n = draw(st.sampled_from(["1" * 400, "1e400", "-1" + "0" * 30, "18446744073709551616", "1.5e308"]))
        where = draw(st.sampled_from([
            '{"GetMetrics": {"id": %s}}',
            '{"Perform": {"id": "fz", "request": {"UpdateEntity": {"request": [{"Read": {"entity_id": '
            '{"typ": "Register", "id": %s}, "field_type": "Value", "value": null, "write_time": null, '
            '"writer_id": null}}]}}}}',
        ]))
        return kind, where % n
    if kind == "binary":
        return kind, draw(st.binary(max_size=200)) if draw(st.booleans()) else json.dumps(VALID[0]).encode()
    if kind == "invalid_utf8":
        return kind, b'{"GetMetrics": {"id": "\xff\xfe\xc3\x28"}}'
    if kind == "not_object":
        return kind, json.dumps(draw(json_values))
    return kind, draw(st.text(max_size=100))


@pytest.fixture(scope="module")
def conn(node: LiveNode) -> Iterator[list[ClientConnection]]:
    with connect(f"ws://{node.addr}", max_size=None) as ws:
        yield [ws]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])
@given(frames=st.lists(hostile_frame(), min_size=1, max_size=4))
def test_hostile_frames_never_break_the_node(node: LiveNode, conn: list[ClientConnection],
                                             frames: list[tuple[str, str | bytes]]) -> None:
    ws = conn[0]
    for kind, frame in frames:
        ws.send(frame)
        others = sync(ws)
        must_error = kind == "truncated"
        if kind in ("garbage_text", "not_object"):
            try:
                must_error = not isinstance(json.loads(frame), dict)
            except ValueError:
                must_error = True
        if must_error:
            # Not a JSON object at all: it must be answered with an Error, connection open.
            errors = [m for m in others if "Error" in m and isinstance(m["Error"].get("error"), str)]
            assert errors, (kind, frame[:100], others)
        if kind.startswith("nesting"):
            # Not a CommandRequest whatever the depth: an error, as Error or in the PerformResponse.
            answered = [m for m in others if "Error" in m or next(iter(m.values())).get("id") == "fz"]
            assert answered, (kind, others)
    check_still_serving(ws, node)


def test_oversized_frame_is_refused_clearly(node: LiveNode) -> None:
    with connect(f"ws://{node.addr}", max_size=None) as ws:
        big = json.dumps({"Perform": {"id": "big", "request": {"FindEntities": {
            "entity_type": "x" * (MAX_FRAME + 10), "page_opts": None}}}})
        ws.send(big)
        try:
            reply = orjson.loads(ws.recv(timeout=10))
            assert "Error" in reply, reply
            assert "large" in reply["Error"]["error"].lower() or "size" in reply["Error"]["error"].lower(), reply
            check_still_serving(ws, node)
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e  # "message too big", with its reason
    with connect(f"ws://{node.addr}") as ws:
        check_still_serving(ws, node)


def test_flood_of_small_frames_gets_one_reply_each(node: LiveNode) -> None:
    rss_before = node.rss_kib()
    with connect(f"ws://{node.addr}", max_size=None) as ws:
        ids = [f"flood-{i}" for i in range(3000)]
        for i, rid in enumerate(ids):
            ws.send(json.dumps({"GetMetrics": {"id": rid}}) if i % 3 else '{"GetMetrics": {"id": "%s"' % rid)
        pending = set(ids)
        deadline = time.monotonic() + 60
        while pending:
            msg = orjson.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            ((tag, body),) = msg.items()
            if body.get("id") in pending:
                assert tag in ("GetMetricsResponse", "Error"), msg
                pending.discard(body["id"])
            elif tag == "Error":
                # A truncated frame's id cannot always be recovered: it gets a fresh one.
                pending.discard(next(i for i in ids if i in pending and int(i.split("-")[1]) % 3 == 0))
        check_still_serving(ws, node)
    assert node.rss_kib() < rss_before + 200_000, (rss_before, node.rss_kib())


async def _storm(addr: str, count: int) -> None:
    """Open connections and drop them: half mid-handshake, half after it, none closed cleanly."""
    host, port = addr.rsplit(":", 1)
    handshake = (f"GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

    async def one(i: int) -> None:
        try:
            r, w = await asyncio.open_connection(host, int(port))
        except OSError:
            return
        if i % 2:
            w.write(handshake[: len(handshake) // 2])
        else:
            w.write(handshake)
            try:
                await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
                pass
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        w.transport.abort()

    for start in range(0, count, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))


def test_thousands_of_connections_opened_and_dropped(node: LiveNode) -> None:
    rss_before = node.rss_kib()
    asyncio.run(_storm(node.addr, int(os.environ.get("QCORE_FUZZ_CONNECTIONS", "2000"))))
    with connect(f"ws://{node.addr}") as ws:
        check_still_serving(ws, node)
    assert node.rss_kib() < rss_before + 200_000, (rss_before, node.rss_kib())


def test_inflight_limit_refuses_excess_writes_without_applying_them(node: LiveNode) -> None:
    def add_one(rid: str) -> str:
        return json.dumps({"Perform": {"id": rid, "request": {"UpdateEntity": {"request": [{"Write": {
            "entity_id": {"typ": "Register", "id": node.register}, "field_type": "Value", "value": {"Int": 1},
            "push_condition": "Always", "adjust_behavior": "Add", "write_time": None, "writer_id": None}}]}}}})

    read = {"UpdateEntity": {"request": [{"Read": {
        "entity_id": {"typ": "Register", "id": node.register}, "field_type": "Value",
        "value": None, "write_time": None, "writer_id": None}}]}}
    with connect(f"ws://{node.addr}", max_size=None) as ws:
        before = request(ws, "Perform", {"request": read})
        start = before["PerformResponse"]["response"]["UpdateEntity"]["response"][0]["Read"]["value"]["Int"]
        ids = [f"add-{i}" for i in range(MAX_INFLIGHT * 6)]
        for rid in ids:
            ws.send(add_one(rid))
        pending, applied, refused = set(ids), 0, 0
        while pending:
            msg = orjson.loads(ws.recv(timeout=60))
            ((tag, body),) = msg.items()
            assert body.get("id") in pending, msg  # exactly one reply per request
            pending.discard(body["id"])
            if tag == "PerformResponse" and body["response"]["UpdateEntity"]["error"] is None:
                applied += 1
            else:
                assert tag == "Error" and "in flight" in body["error"], msg
                refused += 1
        after = request(ws, "Perform", {"request": read})
        end = after["PerformResponse"]["response"]["UpdateEntity"]["response"][0]["Read"]["value"]["Int"]
    assert applied >= 1 and applied + refused == len(ids)
    assert end == start + applied  # a refused write was not applied


# --- hostile peer messages -------------------------------------------------------

# Raft message bodies the core could not take as they are: refused at decode.
BAD_RAFT_BODIES = [
    {"type": "PROP", "to": 1, "from": 2, "term": 99, "entries": [[0, 0, 0, "x"]]},
    {"type": "HUP", "to": 1, "from": 2},
    {"type": "APP", "to": 1, "from": 2, "term": 99, "index": 1, "log_term": 1, "entries": [[1, 5, 0, "gap"]]},
    {"type": "APP", "to": 1, "from": 2, "term": 99, "index": 1, "log_term": 5, "entries": [[2, 2, 0, "older"]]},
    {"type": "APP", "to": 1, "from": 2, "term": 99, "entries": [[1, 1, 1, "not a conf change"]]},
    {"type": "APP", "to": 1, "from": 2, "term": 99, "entries": [[1, 1, 9, "x"]]},
    {"type": "SNAP", "to": 1, "from": 2, "term": 99},
    {"type": "SNAP", "to": 1, "from": 2, "term": 99, "snapshot": {"index": 9, "term": 9, "conf_state": {"voters": "1"}}},
    {"type": "VOTE", "to": 1, "from": 0, "term": 99},
    {"type": "VOTE", "to": 1, "from": 2, "term": -99},
    {"type": "VOTE", "to": 1, "from": 2, "term": 1.5},
]
peer_values = st.none() | st.booleans() | st.integers(-3, 2**65) | st.text(max_size=6) | st.lists(
    st.integers(-1, 9) | st.text(max_size=3), max_size=4)


@st.composite
def hostile_peer_frame(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(["RaftVote", "RaftAppend", "RaftForward", "RaftAppendResponse", "RaftForwardResponse"]))
    if draw(st.booleans()):
        body: Any = draw(st.sampled_from(BAD_RAFT_BODIES))
    else:
        # Anything, addressed to a node that is not this one: refused even if it decodes.
        body = draw(st.dictionaries(st.sampled_from(["type", "from", "term", "index", "entries", "batch", "data",
                                                     "commit", "reject", "taken"]), peer_values, max_size=6))
        body["to"] = 99
    if tag.endswith("Response"):
        return json.dumps({tag: {"id": 1, "response": {"Ok": body}}})
    return json.dumps({tag: {"id": 1, "request": body}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(frames=st.lists(hostile_peer_frame(), min_size=1, max_size=4))
def test_garbage_peer_messages_are_refused_and_the_node_keeps_serving(
        node: LiveNode, conn: list[ClientConnection], frames: list[str]) -> None:
    """Refused at decode time with an Error naming the frame: never reaching
    the Raft core, where an exception would stop the node."""
    ws = conn[0]
    for frame in frames:
        ws.send(frame)
        others = sync(ws)
        errors = [m["Error"]["error"] for m in others if "Error" in m]
        assert errors and errors[0].startswith(next(iter(json.loads(frame)))), (frame, others)
    check_still_serving(ws, node)
