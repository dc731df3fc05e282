"""GET /health, /ready and /metrics on the node's WebSocket port (SPEC 9),
against real node processes."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import orjson
from prometheus_client.parser import text_string_to_metric_families

from qcore.node.entries import ENTRY_LEVEL
from qcore.wsfast import masked_text_frame
from tests.node.harness import Conn, NodeProc, eid, wait_serving, wait_until, write
from tests.node.http_get import METHODS_REACH_THE_NODE, http_exchange, http_get, parse_response


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(node: NodeProc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = await http_get(node.addr, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain"), (status, headers)
    return samples(body.decode())


async def test_health_ready_metrics_and_404_share_the_port_with_websockets(nodes) -> None:
    n = nodes(1, "--init").start()
    await wait_serving(n)
    status, headers, body = await http_get(n.addr, "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["status"] == "ok"
    assert orjson.loads(body)["version"] == version("qcore")  # which build serves: a rolling upgrade's progress
    await wait_until(lambda: _ready(n), what="/ready 200")
    for path, named in (("/nope?x=1", "/nope"), ("//health", "//health"), ("//health?x=1", "//health"),
                        ("///", "///")):  # named as requested (//health was taken for a host: an empty path)
        status, headers, body = await http_get(n.addr, path)
        assert (status, body) == (404, f"404 not found: {named}\n".encode()), (path, body)
        # The path is echoed as text: a browser must not sniff it into a page (a path with markup in it).
        assert headers["x-content-type-options"] == "nosniff", headers

    before = await scrape(n)
    for name in ("qcore_raft_term", "qcore_raft_commit_index", "qcore_raft_applied_index", "qcore_raft_is_leader",
                 "qcore_raft_leader_changes_total", "qcore_raft_proposals_total", "qcore_connections",
                 "qcore_notifications_sent_total", "qcore_store_entities", "qcore_snapshots_total",
                 "qcore_snapshot_size_bytes", "qcore_snapshot_duration_seconds_count",
                 "qcore_wal_fsync_duration_seconds_count", "qcore_connections_paused_total",
                 "qcore_connections_closed_stuck_total", "qcore_turn_waits_total",
                 "qcore_notifications_caught_up_total", "qcore_notifications_cut_off_total",
                 "qcore_snapshot_save_duration_seconds_count", "qcore_storage_log_bytes",
                 "qcore_storage_snapshot_bytes"):
        assert (name, ()) in before, name
    assert before[("qcore_raft_is_leader", ())] == 1
    assert before[("qcore_build_info", (("entry_level", str(ENTRY_LEVEL)), ("version", version("qcore"))))] == 1
    assert before[("qcore_store_entities", ())] == 12  # schemas.yaml's tree

    c = await Conn.open(n.addr)
    try:
        for i in range(20):
            r = await c.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Float": i + 0.5})]}})
            assert r["UpdateEntity"]["error"] is None
        r = await c.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Int": 1})]}})
        assert r["UpdateEntity"]["error"] is not None  # a type mismatch: the store refuses it
        # Not a request of a type a node serves: qcore_invalid_frames_total.
        for frame in ("not json", b"\x00binary", '{"Nope": {"id": 1}}', '{"PerformResponse": {"id": 1, "response": {}}}'):
            await c.ws.send(frame)
            assert "Error" in await c.unmatched.get()
        # A Perform whose fields are missing or wrongly typed, in its envelope or its command, is an
        # error of type Perform (a missing `request` was an invalid frame; a wrongly typed name, a Perform error).
        for request in ({}, {"request": 5}, {"request": {"CreateEntity": {"entity_type": "Folder", "parent_id": None}}},
                        {"request": {"CreateEntity": {"entity_type": 5, "parent_id": None, "name": "x"}}}):
            r = await c.call("Perform", **request)
            assert r["Error"]["kind"] == "invalid", r
        during = await scrape(n)
        assert during[("qcore_connections", ())] >= 1
    finally:
        await c.close()
    after = await scrape(n)
    ok = ("qcore_requests_total", (("outcome", "ok"), ("type", "Perform")))
    rejected = ("qcore_requests_total", (("outcome", "rejected"), ("type", "Perform")))
    assert after[ok] - before.get(ok, 0) == 20
    assert after[rejected] - before.get(rejected, 0) == 1
    error = ("qcore_requests_total", (("outcome", "error"), ("type", "Perform")))
    assert after[error] - before.get(error, 0) == 4
    assert after[("qcore_invalid_frames_total", ())] - before[("qcore_invalid_frames_total", ())] == 4
    count = ("qcore_request_duration_seconds_count", (("type", "Perform"),))
    assert after[count] - before.get(count, 0) == 25
    assert after[("qcore_raft_proposals_total", ())] >= before[("qcore_raft_proposals_total", ())] + 21
    assert after[("qcore_wal_fsync_duration_seconds_count", ())] > before[("qcore_wal_fsync_duration_seconds_count", ())]
    assert after[("qcore_raft_commit_index", ())] >= before[("qcore_raft_commit_index", ())] + 21


async def test_storage_metrics_are_the_data_dirs_files_and_snapshot_saves(nodes) -> None:
    """qcore_storage_{log,snapshot}_bytes are the sizes of the data dir's log
    segments and snapshot file; qcore_snapshot_save_duration_seconds counts
    each snapshot written there."""
    n = nodes(1, "--init", "--snapshot-threshold", "10").start()
    await wait_serving(n)
    await wait_until(lambda: _ready(n), what="/ready 200")
    c = await Conn.open(n.addr)
    try:
        for i in range(15):  # a snapshot falls due 10 applied entries on
            r = await c.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Float": i + 0.5})]}})
            assert r["UpdateEntity"]["error"] is None
    finally:
        await c.close()

    async def saved() -> dict | None:
        got = await scrape(n)
        return got if got[("qcore_snapshot_save_duration_seconds_count", ())] >= 1 else None

    got = await wait_until(saved, what="a snapshot saved")
    files = {p.name: p.stat().st_size for p in n.data_dir.iterdir()}
    log_bytes = sum(size for name, size in files.items() if name.startswith("wal-") and name.endswith(".log"))
    snap_bytes = sum(size for name, size in files.items() if name.startswith("snap-") and name.endswith(".snap"))
    assert snap_bytes > 0 and log_bytes > 0, files
    assert got[("qcore_storage_snapshot_bytes", ())] == snap_bytes, files
    assert got[("qcore_storage_log_bytes", ())] == log_bytes, files
    assert got[("qcore_snapshots_total", ())] >= 1


async def _unanswered(n: NodeProc, method: str, path: str, headers: str, body: bytes = b"") -> bool:
    try:
        return await http_exchange(n.addr, method, path, headers=headers, body=body) == b""
    except ConnectionResetError:
        return True


async def test_only_get_is_served_any_other_method_gets_404(nodes) -> None:
    n = nodes(1, "--init", "--in-memory").start()
    await wait_serving(n)
    await wait_until(lambda: _ready(n), what="/ready 200")
    for path in ("/health", "/ready", "/metrics", "/", "/console/console.css", "/forward", "/nope"):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            # No body (as `curl -X POST`); an upgrade header changes nothing either.
            upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n" if path == "/forward" else ""
            headers = upgrade + "Content-Length: 0\r\n"
            if not METHODS_REACH_THE_NODE:
                assert await _unanswered(n, method, path, headers), (method, path)
                continue
            data = await http_exchange(n.addr, method, path, headers=headers)
            status, got, body = parse_response(data)
            assert status == 404, (method, path, data)
            if method == "HEAD":  # nothing after the header, and no length it would have to match
                assert data.endswith(b"\r\n\r\n") and body == b"" and "content-length" not in got, data
            else:
                assert body == b"404 not found: only GET is served over HTTP here\n", (method, path, data)
                assert got["content-length"] == str(len(body))
        assert (await http_get(n.addr, path))[0] == (404 if path in ("/forward", "/nope") else 200), path
    # A request with a body is not HTTP the port speaks: websockets closes it unanswered.
    assert await _unanswered(n, "POST", "/health", "Content-Length: 2\r\n", b"{}")
    assert (await http_get(n.addr, "/health"))[0] == 200
    assert not METHODS_REACH_THE_NODE or "Traceback" not in n.log_path.read_text()


async def test_repeated_header_lines_are_a_400_or_one_list_never_a_500(nodes) -> None:
    """Two Host lines are a 400 on every path (RFC 9112 3.2); If-None-Match on two lines is one list
    (RFC 9110 5.3). Both were a 500 on the console's files, with a traceback in the log per request."""
    n = nodes(1, "--init", "--in-memory").start()
    await wait_serving(n)
    for path in ("/health", "/ready", "/metrics", "/", "/console/console.css", "/nope"):
        status, _, body = parse_response(await http_exchange(n.addr, "GET", path, headers="Host: elsewhere\r\n"))
        assert (status, body) == (400, b"400 bad request: more than one Host header\n"), path
    _, headers, _ = await http_get(n.addr, "/")
    etag = headers["etag"]
    status, _, body = parse_response(await http_exchange(
        n.addr, "GET", "/", headers=f'If-None-Match: "other"\r\nIf-None-Match: {etag}\r\n'))
    assert (status, body) == (304, b"")
    status, _, _ = parse_response(await http_exchange(
        n.addr, "GET", "/", headers='If-None-Match: "other"\r\nIf-None-Match: "more"\r\n'))
    assert status == 200
    assert (await http_get(n.addr, "/health"))[0] == 200
    assert "Traceback" not in n.log_path.read_text()


async def test_an_upgrade_to_a_target_that_does_not_parse_is_a_400_not_a_logged_500(nodes) -> None:
    """`//[x` is an IPv6 host to urlsplit, which raised ValueError in the peer-path check: websockets
    answered 500 and logged 'process_request failed' with a traceback, for each such handshake."""
    n = nodes(1, "--init", "--in-memory").start()
    await wait_serving(n)
    upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    for target in ("//[x", "//[/raft?from=2&addr=127.0.0.1:1", "//[::1/forward"):
        status, _, body = parse_response(await http_exchange(n.addr, "GET", target, headers=upgrade))
        assert status == 400 and body.startswith(b"400 bad request: cannot parse the request target"), (target, body)
    assert (await http_get(n.addr, "//[x"))[0] == 404  # plain GET: a path like any other, not found
    c = await Conn.open(n.addr)
    try:
        assert (await c.metrics())["id"] == 1
    finally:
        await c.close()
    assert "Traceback" not in n.log_path.read_text()


async def test_pipelined_requests_get_the_first_answered_and_the_connection_closed(nodes) -> None:
    """Bytes after a plain request's head were parsed as WebSocket frames, failed the connection and
    closed it before the answer: a pipelined second request, or a stray CRLF, and nothing was answered."""
    n = nodes(1, "--init", "--in-memory").start()
    await wait_serving(n)
    await wait_until(lambda: _ready(n), what="/ready 200")
    for path, after in (("/health", b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"), ("/metrics", b"\r\n"),
                        ("/", b"GET /health HTTP/1.1\r\n\r\n" * 3), ("/nope", b"\r\n\r\n")):
        data = await http_exchange(n.addr, "GET", path, body=after)
        status, headers, body = parse_response(data)
        assert status == (404 if path == "/nope" else 200) and headers["connection"] == "close", (path, data)
        assert len(body) == int(headers["content-length"]), (path, data)  # the first answer only
    # A client's first frame may come right behind its upgrade request, in the same write: it is read.
    host, port = n.addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {n.addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                     + masked_text_frame(b'{"GetMetrics": {"id": "m1"}}'))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        head = await reader.readexactly(2)
        size = head[1] & 0x7F
        size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big") if size >= 126 else size
        reply = orjson.loads(await reader.readexactly(size))
        assert reply["GetMetricsResponse"]["id"] == "m1", reply
    finally:
        writer.close()
    assert "Traceback" not in n.log_path.read_text()


async def test_no_metrics_turns_metrics_off(nodes) -> None:
    n = nodes(1, "--init", "--no-metrics").start()
    await wait_serving(n)
    status, _, body = await http_get(n.addr, "/metrics")
    assert status == 404 and b"--no-metrics" in body
    assert (await http_get(n.addr, "/health"))[0] == 200


async def _ready(n: NodeProc) -> bool:
    return (await http_get(n.addr, "/ready"))[0] == 200


async def test_ready_is_503_with_a_reason_before_init(nodes) -> None:
    n = nodes(1).start()
    await wait_serving(n)
    status, _, body = await http_get(n.addr, "/ready")
    assert status == 503 and orjson.loads(body)["reason"].startswith("not initialised")


async def test_json_log_format_writes_one_object_per_line(nodes) -> None:
    n = nodes(1, "--init", "--log-format", "json").start()
    await wait_serving(n)
    await wait_until(lambda: _ready(n), what="/ready 200")  # so it has logged becoming leader
    lines = [line for line in n.log_path.read_text().splitlines() if line.strip()]
    objs = [orjson.loads(line) for line in lines]  # every line is JSON
    assert any(o["logger"] == "qcore.node.replica" and "role=Leader" in o["msg"] for o in objs)
    assert all(o["node"] == 1 and o["level"] in ("DEBUG", "INFO", "WARNING", "ERROR") for o in objs)


async def test_notifications_sent_counts_notifications_not_registration_replies(nodes) -> None:
    n = nodes(1, "--init", "--in-memory").start()
    await wait_serving(n)
    await wait_until(lambda: _ready(n), what="/ready 200")
    sent = ("qcore_notifications_sent_total", ())
    before = (await scrape(n))[sent]
    c = await Conn.open(n.addr)
    try:
        for field in ("Reading", "Unit"):
            config = {"EntityId": {"entity_id": eid("Sensor", 12), "field_type": field,
                                   "trigger_on_change": False, "context": []}}
            reply = await c.call("RegisterNotification", config=config)
            assert "Ok" in reply["RegisterNotificationResponse"]["response"], reply
        for i in range(3):
            r = await c.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Float": i + 0.5})]}})
            assert r["UpdateEntity"]["error"] is None
        for _ in range(3):
            assert "Notification" in await asyncio.wait_for(c.unmatched.get(), 20)
    finally:
        await c.close()

    async def counted() -> float:
        return (await scrape(n))[sent] - before
    assert await wait_until(counted, what="the notifications counted") == 3  # 2 registrations, 3 changes


def test_json_log_format_start_up_errors_are_json_lines_too(tmp_path) -> None:
    """A node that cannot start says why in a JSON line as well (they were plain `qcore: ...` text)."""
    import socket
    import subprocess
    import sys

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        for args, code, why in (
            (["--ws-addr", "127.0.0.1:1", "--tick-ms", "0"], 2, "argument --tick-ms: must be at least 1"),
            (["--ws-addr", "127.0.0.1:1", "--config-file", str(tmp_path / "missing.yaml")], 2, "config file not found"),
            (["--ws-addr", busy, "--init"], 2, f"cannot listen on --ws-addr {busy}: Address already in use"),
        ):
            p = subprocess.run([sys.executable, "-m", "qcore", "--id", "1", "--in-memory", "--log-format", "json", *args],
                               capture_output=True, text=True, timeout=30, cwd=tmp_path)
            lines = (p.stdout + p.stderr).splitlines()
            objs = [orjson.loads(line) for line in lines]  # every line is JSON
            assert p.returncode == code and objs[-1]["level"] == "CRITICAL" and why in objs[-1]["msg"], (args, lines)
    finally:
        taken.close()


async def test_a_request_refused_before_it_is_served_counts_as_an_error_of_its_type(nodes, tmp_path) -> None:
    """qcore_requests_total counts every request answered, by type and outcome: one refused for
    want of a login (users on) is an `error` of its type; it was not counted at all, so a
    dashboard of error rates missed every authentication failure."""
    pw = tmp_path / "admin.pw"
    pw.write_text("secretpw1\n")
    n = nodes(1, "--init", "--admin-password-file", str(pw)).start()
    await wait_serving(n)
    key = ("qcore_requests_total", (("outcome", "error"), ("type", "Perform")))
    before = (await scrape(n)).get(key, 0)
    c = await Conn.open(n.addr)
    try:
        r = await c.call("Perform", request={"GetEntityTypes": {"page_opts": None}})
        assert r["Error"]["kind"] == "auth_required", r
    finally:
        await c.close()
    assert (await scrape(n)).get(key, 0) - before == 1
