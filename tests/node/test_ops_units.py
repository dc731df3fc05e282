"""Unit tests of the operations layer's pure parts: the HTTP router, the
counters /metrics reads, cluster identities, --initial-cluster parsing,
the backup file format and the JSON log format."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.datastructures import Headers
from websockets.http11 import Request

from qcore.cli.logs import JsonFormatter
from qcore.node.bootstrap import parse_members
from qcore.node.cluster_identity import ClusterIdentity, Identity, config_digest, derived_id, from_path
from qcore.node.health import ReadinessFacts, not_ready_because, readiness
from qcore.node.http import HttpReply, HttpRoutes
from qcore.node.stats import Histogram, NodeStats, classify
from qcore.protocol import messages as m
from qcore.storage.backup_file import BackupError, BackupHeader, header_check, read_backup, write_backup
from qcore.raft.types import Message, MessageType
from tests.node.http_get import METHODS_REACH_THE_NODE
from tests.raft.network import Network


def request(path: str, upgrade: bool = False, method: str = "GET") -> Request:
    headers = Headers({"Host": "x"})
    if upgrade:
        headers["Upgrade"] = "websocket"
        headers["Connection"] = "Upgrade"
    return Request(path, headers) if method == "GET" else Request(path, headers, method)


async def test_router_answers_gets_and_lets_websocket_handshakes_through() -> None:
    routes = HttpRoutes()
    routes.add("/health", lambda r: HttpReply.json(200, {"status": "ok"}))

    async def static(r: Request) -> HttpReply:
        return HttpReply.text(200, f"file {r.path}")

    routes.add_prefix("/static/", static)
    routes.add_prefix("/static/deep/", lambda r: HttpReply.text(200, "deeper"))
    resp = await routes.process_request(None, request("/health?x=1"))
    assert resp is not None and resp.status_code == 200 and resp.body == b'{"status":"ok"}\n'
    assert resp.headers["Content-Type"] == "application/json" and resp.headers["Connection"] == "close"
    resp = await routes.process_request(None, request("/static/a.js"))
    assert resp is not None and resp.body == b"file /static/a.js"
    resp = await routes.process_request(None, request("/static/deep/x"))
    assert resp is not None and resp.body == b"deeper"  # the longest prefix wins
    resp = await routes.process_request(None, request("/nope"))
    assert resp is not None and resp.status_code == 404
    assert await routes.process_request(None, request("/health", upgrade=True)) is None
    assert await routes.process_request(None, request("/", upgrade=True)) is None
    routes.check_upgrade(lambda r: HttpReply.text(403, "no") if r.path.startswith("/raft") else None)
    resp = await routes.process_request(None, request("/raft?from=2", upgrade=True))
    assert resp is not None and resp.status_code == 403
    routes.add("/boom", lambda r: 1 / 0)  # type: ignore[arg-type,return-value]
    resp = await routes.process_request(None, request("/boom"))
    assert resp is not None and resp.status_code == 500


@pytest.mark.skipif(not METHODS_REACH_THE_NODE, reason="websockets < 17 has no Request.method: only GETs reach the node")
async def test_router_answers_any_other_method_404_and_head_without_a_body() -> None:
    routes = HttpRoutes()
    routes.add("/health", lambda r: HttpReply.json(200, {"status": "ok"}))
    for method in ("POST", "DELETE"):  # SPEC 9: anything but GET is 404, upgrade or not
        for upgrade in (False, True):
            resp = await routes.process_request(None, request("/health", upgrade, method))
            assert resp is not None and resp.status_code == 404 and b"only GET" in resp.body
    resp = await routes.process_request(None, request("/health", method="HEAD"))
    assert resp is not None and resp.status_code == 404 and resp.body == b"" and "Content-Length" not in resp.headers


def test_ready_only_when_initialised_led_and_applied_up_to_commit() -> None:
    ready = ReadinessFacts(stopping=False, initialised=True, removed=False, leader_id=2, term=7, role="Follower",
                           refusals=(), applied=120, commit=120)
    assert not_ready_because(ready) is None
    assert not_ready_because(replace(ready, applied=90)) == "catching up: applied 90 of 120 known to be committed"
    assert not_ready_because(replace(ready, leader_id=0, role="PreCandidate")) == (
        "no leader known (term 7, role PreCandidate): the cluster may have lost its quorum")
    assert not_ready_because(replace(ready, leader_id=0, role="PreCandidate", formed=False, voters=(1, 2, 3))) == (
        "no leader known (term 7, role PreCandidate): the cluster has not formed yet (no leader elected that this "
        "node knows of); it needs 2 of its voters 1, 2, 3 up and reaching each other")
    assert not_ready_because(replace(ready, leader_id=0, refusals=("refusing node 3", "refusing node 4"))) == (
        "no leader known; refusing node 3; refusing node 4")
    assert not_ready_because(replace(ready, removed=True, applied=90)) == "removed from the cluster"
    assert not_ready_because(replace(ready, removed=True, leader_id=0, removed_why="node 2 says so")) == (
        "removed from the cluster (node 2 says so)")
    assert (not_ready_because(replace(ready, initialised=False, leader_id=0)) or "").startswith("not initialised: ")
    assert not_ready_because(replace(ready, stopping=True, initialised=False)) == "shutting down"


def test_a_follower_whose_leader_committed_past_its_log_is_catching_up() -> None:
    """A restarted follower has applied all of its own log (its commit stops there) and knows its
    leader, whose heartbeat said the log is committed further: /ready answers 503 catching up."""
    net = Network([1, 2])
    follower = net.nodes[2]
    follower.step(Message(MessageType.HEARTBEAT, to=2, frm=1, term=2, index=120, commit=1))
    net.process(2)
    st = follower.status()
    assert (st.leader_id, st.commit, st.applied) == (1, 1, 1)
    driver = SimpleNamespace(status=lambda: st, initialised=lambda: True, removed=lambda: False, applied=st.applied,
                             removal=SimpleNamespace(reason=lambda applied: None))
    node = SimpleNamespace(driver=driver, stopping=False, opts=SimpleNamespace(id=2),
                           cluster_identity=SimpleNamespace(refusals=lambda: []))
    ready, body = readiness(node)  # type: ignore[arg-type]
    assert not ready
    assert body["reason"] == "catching up: applied 1 of 120 known to be committed"


def test_histogram_buckets_are_prometheus_le_buckets() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert h.count == 5 and h.sum == pytest.approx(8.65)


def test_outcomes() -> None:
    assert classify(m.Error(1, "x")) == 2
    assert classify(m.InitResponse(1, "Ok")) == 0
    assert classify(m.AddLearnerResponse(1, {"Err": "no"})) == 2
    assert classify(m.PerformResponse(1, {"UpdateEntity": {"response": [], "error": None}})) == 0
    assert classify(m.PerformResponse(1, {"UpdateEntity": {"response": [], "error": "type mismatch"}})) == 1
    relayed = type("Raw", (), {"frame": {"PerformResponse": {"id": 1, "response": {"CreateEntity": {"error": "x"}}}}})()
    assert classify(relayed) == 1
    stats = NodeStats()
    stats.request_done("Perform", 0.001, m.Error(1, "x"))
    stats.request_done("Perform", 0.002, m.PerformResponse(1, {"DeleteEntity": {"error": None}}))
    rs = stats.requests["Perform"]
    assert (rs.ok, rs.rejected, rs.error, rs.duration.count) == (1, 0, 1, 2)


def test_histogram_exposition_parses() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    from qcore.node.prometheus import _histogram

    h = Histogram((0.001, 0.01))
    h.observe(0.005)

    class C(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            yield _histogram("qcore_x_seconds", "x", h)

    reg = CollectorRegistry()
    reg.register(C())
    (family,) = text_string_to_metric_families(generate_latest(reg).decode())
    values = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert values[("qcore_x_seconds_bucket", "0.001")] == 0 and values[("qcore_x_seconds_bucket", "+Inf")] == 1
    assert values[("qcore_x_seconds_count", None)] == 1


def test_cluster_identity_adopts_persists_and_refuses(tmp_path: Path) -> None:
    ident = ClusterIdentity(1, tmp_path)
    assert ident.current is None and ident.query() == ""
    theirs = Identity("abc", "f" * 64)
    assert ident.check_inbound(2, "h:2", None) is None  # a peer without identity: accepted, nothing adopted
    assert ident.check_inbound(2, "h:2", theirs) is None and ident.current == theirs  # adopted
    assert ClusterIdentity(1, tmp_path).current == theirs  # and durable
    assert from_path("/raft?from=2&addr=h:2" + ident.query()) == theirs
    why = ident.check_inbound(3, "h:3", Identity("zzz", "e" * 64))
    assert why is not None and "different config files" in why
    why = ident.check_inbound(4, "h:4", Identity("zzz", "f" * 64))
    assert why is not None and "cluster zzz" in why
    assert len(ident.refusals()) == 2


def test_derived_ids_depend_on_members_and_config() -> None:
    a = derived_id({1: "h:1", 2: "h:2"}, config_digest({"schemas": [], "tree": []}))
    assert a == derived_id({2: "h:2", 1: "h:1"}, config_digest({"tree": [], "schemas": []}))
    assert a != derived_id({1: "h:1", 2: "h:3"}, config_digest({"schemas": [], "tree": []}))
    assert a != derived_id({1: "h:1", 2: "h:2"}, config_digest({"schemas": [1], "tree": []}))


def test_parse_members() -> None:
    assert parse_members("1=a:1, 2=[::1]:2") == {1: "a:1", 2: "[::1]:2"}
    for bad, why in (("1=a", "ID=HOST:PORT"), ("x=a:1", "ID=HOST:PORT"), ("0=a:1", "positive"),
                     ("1=a:1,1=b:2", "twice"), ("", "ID=HOST:PORT")):
        with pytest.raises(ValueError, match=why):
            parse_members(bad)


def test_backup_file_round_trip_and_refusals(tmp_path: Path) -> None:
    import hashlib

    data = b"state machine bytes" * 1000
    header = BackupHeader(index=7, term=2, size=len(data), sha256=hashlib.sha256(data).hexdigest(), entities=3)
    path = tmp_path / "b.snap"
    write_backup(path, header, data)
    seen = []
    got_header, got = read_backup(path, seen.append, chunk=4096)
    assert got == data and got_header == header and seen[-1] == len(data)
    raw = path.read_bytes()
    cases = {
        "not a qcore snapshot file": b"PK\x03\x04" + raw,
        "format '9' is not supported": raw.replace(b"qcore-snapshot 1", b"qcore-snapshot 9", 1),
        "header is corrupt": raw.replace(b'"index":7', b'"index":-7', 1),
        "truncated": raw[:-1],
        "bytes after": raw + b"x",
        "sha256 is": raw[:-1] + b"X",
        "header's check does not match": raw.replace(b'"index":7', b'"index":8', 1),
    }
    for why, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(BackupError, match=why):
            read_backup(path)
    with pytest.raises(BackupError, match="does not match"):
        write_backup(path, header, data + b"!")
    # A write that fails at the end (here: FILE is a directory) leaves no FILE.part behind.
    (tmp_path / "dir.snap").mkdir()
    with pytest.raises(OSError):
        write_backup(tmp_path / "dir.snap", header, data)
    assert not (tmp_path / "dir.snap.part").exists()
    # A file from before the header had a check is read as it was.
    path.write_bytes(raw.replace(b',"check":"' + header_check(header).encode() + b'"', b"", 1))
    assert read_backup(path) == (header, data)


def test_python_warnings_are_log_lines_in_the_json_format_too() -> None:
    import subprocess
    import sys

    script = ("import warnings; from qcore.cli.logs import configure; configure(4, 'INFO', 'json'); "
              "warnings.warn('something is deprecated', DeprecationWarning)")
    run = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in run.stderr.splitlines()]  # every line is JSON
    assert [(o["logger"], o["level"], o["node"]) for o in lines] == [("py.warnings", "WARNING", 4)], run.stderr
    assert "something is deprecated" in lines[0]["msg"]


def test_json_log_lines() -> None:
    fmt = JsonFormatter(3)
    rec = logging.LogRecord("qcore.node.driver", logging.INFO, __file__, 1, "role=%s term=%d", ("Leader", 4), None)
    obj = json.loads(fmt.format(rec))
    assert obj["msg"] == "role=Leader term=4" and obj["node"] == 3 and obj["level"] == "INFO"
    assert obj["logger"] == "qcore.node.driver" and obj["ts"].endswith("Z")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = fmt.format(rec)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]
