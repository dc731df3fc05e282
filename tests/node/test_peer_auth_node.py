"""Peer authentication against real processes (SPEC 8.2): strangers' Raft
messages are refused, a node with the wrong secret cannot join, a recorded
handshake does not open a new connection."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys

import orjson
from websockets.asyncio.client import connect

from qcore.local_procs import free_port
from qcore.node.entries import encode_batch, new_batch
from qcore.node.exposure import security_warning
from qcore.node.peer_auth import Dialler, PeerKeys, load_secret
from tests.node.harness import Conn, eid, logged, read, wait_serving, wait_until, write
from tests.node.test_cluster import init_cluster
from tests.node.tls_files import make_secret, make_tls


def _raft(tag: str, body: dict) -> bytes:
    return orjson.dumps({tag: {"id": 7, "request": body}})


async def _exchange(ws, frame: bytes) -> dict:
    await ws.send(frame, text=True)
    ((tag, body),) = orjson.loads(await asyncio.wait_for(ws.recv(), 10)).items()
    return {"tag": tag, **body}


async def test_strangers_raft_messages_change_neither_term_nor_leader(nodes, tmp_path):
    secret = make_secret(tmp_path)
    ns = [nodes(i, "--peer-secret-file", str(secret), "--handshake-timeout", "2") for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    before = [await c.metrics() for c in conns]
    term = before[0]["current_term"]
    high = term + 1000
    follower = next(n for n in ns if n.id != leader)
    attacks = [
        _raft("RaftVote", {"type": "VOTE", "to": follower.id, "from": 9, "term": high, "log_term": high,
                           "index": 10**6}),
        _raft("RaftAppend", {"type": "APP", "to": follower.id, "from": 9, "term": high, "log_term": 0,
                             "index": 0, "commit": 0, "entries": []}),
        _raft("RaftAppend", {"type": "HEARTBEAT", "to": follower.id, "from": leader, "term": high}),
        _raft("RaftAppend", {"type": "TIMEOUT_NOW", "to": leader, "from": follower.id, "term": term}),
        _raft("RaftSnapshot", {"msg": {"type": "SNAP", "to": follower.id, "from": 9, "term": high,
                                       "snapshot": {"index": 10**6, "term": high, "voters": [9]}},
                               "offset": 0, "total": 2, "data": base64.b64encode(b"{}").decode(), "done": True}),
        orjson.dumps({"RaftAppendResponse": {"id": 8, "response": {"Ok": {
            "type": "APP_RESP", "to": leader, "from": follower.id, "term": high, "index": 10**6}}}}),
        # A forwarded batch of writes the leader would append as it is (issue 18's peer message),
        # and the leader's refusal of a batch, which would fail a follower's writes.
        _raft("RaftForward", {"to": leader, "from": follower.id, "term": term, "batch": 1,
                              "data": encode_batch(new_batch([["stranger", 1, {"UpdateEntity": {
                                  "request": [write(eid("Root", 1), "Name", {"String": "forged"})]}}]])).decode()}),
        orjson.dumps({"RaftForwardResponse": {"id": 9, "response": {"Ok": {
            "to": follower.id, "from": leader, "term": term, "batch": 1, "taken": False}}}}),
    ]
    for n in (follower, ns[leader - 1]):
        # On a client's connection, and on a peer path without the handshake.
        for path in ("", "/raft?from=9&addr=127.0.0.1:1", f"/raft?from={leader}&addr={ns[leader - 1].addr}"):
            async with connect(f"ws://{n.addr}{path}", proxy=None) as ws:
                for frame in attacks:
                    r = await _exchange(ws, frame)
                    assert r["tag"] == "Error" and r["kind"] == "unauthenticated_peer", r
                    assert "not an authenticated peer" in r["error"]
        # A client request on an unauthenticated /forward connection is refused too.
        async with connect(f"ws://{n.addr}/forward", proxy=None) as ws:
            r = await _exchange(ws, orjson.dumps({"GetMetrics": {"id": 1}}))
            assert r["tag"] == "Error" and r["kind"] == "unauthenticated_peer", r
    after = [await c.metrics() for c in conns]
    assert [m["current_term"] for m in after] == [m["current_term"] for m in before]
    assert {m["current_leader"] for m in after} == {leader}
    name = await conns[leader - 1].perform({"UpdateEntity": {"request": [read(eid("Root", 1), "Name")]}})
    assert "forged" not in orjson.dumps(name).decode(), name
    # A peer-path connection that never authenticates is closed after --handshake-timeout.
    async with connect(f"ws://{follower.addr}/raft?from=9&addr=127.0.0.1:1", proxy=None) as ws:
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1008
    # The refusals are logged, rate limited: not one line per frame.
    log = ns[follower.id - 1].log_path.read_text()
    assert 1 <= log.count("not an authenticated peer") < len(attacks)
    for c in conns:
        await c.close()


async def test_a_recorded_handshake_does_not_open_a_new_connection(nodes, tmp_path):
    secret = make_secret(tmp_path)
    n = nodes(1, "--peer-secret-file", str(secret), "--init").start()
    await wait_serving(n)
    keys = PeerKeys([load_secret(secret)])
    path = "/raft?from=2&addr=127.0.0.1:1"
    # A genuine peer's handshake, recorded by whoever watches the wire.
    recorded: list[bytes] = []
    async with connect(f"ws://{n.addr}{path}", proxy=None) as ws:
        d = Dialler(keys, 2, expect=1)
        out: bytes | None = d.hello()
        while out is not None:
            recorded.append(out)
            await ws.send(out, text=True)
            out = d.receive(await asyncio.wait_for(ws.recv(decode=False), 10))
        assert d.done, d.error
    # Replayed on a new connection: the node's fresh nonce makes the old proof worthless.
    async with connect(f"ws://{n.addr}{path}", proxy=None) as ws:
        r = await _exchange(ws, recorded[0])
        assert "Challenge" in r["response"]["Ok"]
        r = await _exchange(ws, recorded[1])
        assert "Err" in r["response"] and r["kind"] == "unauthenticated_peer", r
        await asyncio.wait_for(ws.wait_closed(), 10)
    async with connect(f"ws://{n.addr}{path}", proxy=None) as ws:
        r = await _exchange(ws, _raft("RaftVote", {"type": "VOTE", "to": 1, "from": 2, "term": 99}))
        assert r["kind"] == "unauthenticated_peer"


async def test_a_node_with_the_wrong_secret_cannot_join(nodes, tmp_path):
    secret = make_secret(tmp_path)
    wrong = make_secret(tmp_path, "wrong")
    a = nodes(1, "--peer-secret-file", str(secret), "--init", "--request-timeout", "2").start()
    b = nodes(2, "--peer-secret-file", str(wrong)).start()
    await wait_serving(a)
    await wait_serving(b)
    c = await Conn.open(a.addr)
    reply = await c.call("AddLearner", node_id=2, node_addr=b.addr, timeout=20)
    assert "Err" in reply["AddLearnerResponse"]["response"], reply
    cb = await Conn.open(b.addr)
    m = await cb.metrics()
    assert m["last_log_index"] in (0, None) and m["current_leader"] is None, m
    await wait_until(lambda: logged(a, "peer handshake failed"), what="the leader logs the failed handshake")
    await wait_until(lambda: logged(b, "peer handshake failed"), what="the stranger logs its failure")
    await c.close()
    await cb.close()


def test_start_up_warning_on_a_reachable_address() -> None:
    assert security_warning("127.0.0.1:8080", tls=False, peer_auth=False) is None
    assert security_warning("[::1]:8080", tls=False, peer_auth=False) is None
    assert security_warning("localhost:8080", tls=False, peer_auth=False) is None
    w = security_warning("0.0.0.0:8080", tls=False, peer_auth=False)
    assert w is not None and "neither TLS nor peer authentication" in w and "forged Raft messages" in w
    w = security_warning("10.1.2.3:8080", tls=True, peer_auth=False)
    assert w is not None and "without peer authentication" in w and "any user's name" in w
    w = security_warning("db1.example.net:8080", tls=False, peer_auth=True)
    assert w is not None and "clear text" in w
    assert security_warning("10.1.2.3:8080", tls=True, peer_auth=True) is None


async def test_a_reachable_node_says_once_what_it_leaves_open(nodes, tmp_path) -> None:
    """Bound to 0.0.0.0 with neither TLS nor peer authentication, a node says so in one line at
    start-up, and, with users on, in one more that users can be bypassed; with a peer secret, neither."""
    pw = tmp_path / "admin-pw"
    pw.write_text("admin-pw-0c4d1e\n")
    secret = make_secret(tmp_path)

    def reachable(node_id: int, *extra: str):
        port = free_port()
        return nodes(node_id, "--init", "--in-memory", "--admin-password-file", str(pw), *extra,
                     "--ws-addr", f"0.0.0.0:{port}", port=port).start()

    exposed, guarded = reachable(1), reachable(2, "--peer-secret-file", str(secret))
    for n in (exposed, guarded):
        await wait_serving(n)
        await wait_until(lambda n=n: logged(n, "users: InitAdmin"), what=f"node {n.id} turns users on")
    log = exposed.log_path.read_text()
    assert log.count("listening on 0.0.0.0:") == 1 and log.count("neither TLS nor peer authentication") == 1, log
    assert log.count("users are on (log index") == 1 and "act as any user" in log, log
    log = guarded.log_path.read_text()
    assert "neither TLS nor peer authentication" not in log and "users are on" not in log, log
    assert log.count("listening on 0.0.0.0:") == 1 and "without TLS" in log, log  # what the secret leaves open


async def test_a_node_warns_of_a_certificate_peers_refuse_and_of_secrets_others_can_read(nodes, tmp_path) -> None:
    """At start-up, in one line each: a certificate that does not name the host of --ws-addr (peers
    and clients would refuse it), a --tls-key-file and an --admin-password-file others can read.
    A node with the documented files (keys 0600) says none of it."""
    import trustme

    tls = make_tls(tmp_path)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf = ca.issue_cert("db9.example.net")  # not 127.0.0.1, where the node listens
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "db9.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "db9.key"))
    (tmp_path / "db9.key").chmod(0o644)
    pw = tmp_path / "admin-pw"
    pw.write_text("admin-pw-0c4d1e\n")
    pw.chmod(0o644)
    exposed = nodes(1, "--init", "--in-memory", "--admin-password-file", str(pw), "--tls-cert-file",
                    str(tmp_path / "db9.pem"), "--tls-key-file", str(tmp_path / "db9.key"), "--tls-ca-file",
                    str(tmp_path / "ca.pem"), "--peer-secret-file", str(tls.secret)).start()
    pw_ok = tmp_path / "admin-pw-0600"
    pw_ok.write_text("admin-pw-0c4d1e\n")
    pw_ok.chmod(0o600)
    fine = nodes(2, "--init", "--in-memory", "--admin-password-file", str(pw_ok), *tls.node_args()).start()
    for n in (exposed, fine):
        await wait_until(lambda n=n: logged(n, "serving on wss://"), what=f"node {n.id} serving")
    log = exposed.log_path.read_text()
    assert log.count("peers dialling 127.0.0.1 will refuse this node's certificate") == 1, log
    assert "not valid for '127.0.0.1'" in log, log
    assert log.count("--tls-key-file") == 1 and "db9.key has mode 0644: other users of this machine can read the " \
        "node's private key" in log, log
    assert log.count("--admin-password-file") == 1 and "admin-pw has mode 0644" in log, log
    log = fine.log_path.read_text()
    assert "will refuse" not in log and "has mode" not in log, log


def test_unusable_secret_or_tls_files_stop_the_start_up(tmp_path) -> None:
    secret = make_secret(tmp_path)
    secret.chmod(0o644)
    base = [sys.executable, "-m", "qcore", "--id", "1", "--ws-addr", "127.0.0.1:1", "--in-memory"]
    r = subprocess.run([*base, "--peer-secret-file", str(secret)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "readable by its owner only" in r.stderr, r.stderr
    r = subprocess.run([*base, "--tls-cert-file", str(tmp_path / "none.pem"), "--tls-key-file", str(secret)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot read --tls-cert-file" in r.stderr, r.stderr
    r = subprocess.run([*base, "--peer-cert-auth"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--peer-cert-auth needs --tls-ca-file" in r.stderr, r.stderr
    # qcore gen-secret writes a usable file and never overwrites one.
    new = tmp_path / "new.secret"
    r = subprocess.run([sys.executable, "-m", "qcore", "gen-secret", str(new)], capture_output=True, text=True)
    assert r.returncode == 0 and oct(new.stat().st_mode & 0o777) == "0o600"
    r = subprocess.run([sys.executable, "-m", "qcore", "gen-secret", str(new)], capture_output=True, text=True)
    assert r.returncode == 1 and "not overwriting" in r.stderr


async def test_cluster_identity_is_learnt_only_from_an_authenticated_peer(nodes, tmp_path):
    secret = make_secret(tmp_path)
    a = nodes(1, "--peer-secret-file", str(secret), "--init").start()
    b = nodes(2, "--peer-secret-file", str(secret)).start()
    await wait_serving(a)
    await wait_serving(b)
    # A stranger declares another cluster on b's Raft path: b, which has no
    # cluster yet, must not take it (it would then refuse its real cluster).
    async with connect(f"ws://{b.addr}/raft?from=9&addr=127.0.0.1:1&cluster=0123456789abcdef", proxy=None) as ws:
        r = await _exchange(ws, _raft("RaftVote", {"type": "VOTE", "to": 2, "from": 9, "term": 5}))
        assert r["kind"] == "unauthenticated_peer"
    assert not (b.data_dir / "cluster.json").exists()
    # The real cluster's leader, once authenticated, gives b its identity, and b joins.
    c = await Conn.open(a.addr)
    reply = await c.call("AddLearner", node_id=2, node_addr=b.addr, timeout=30)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    ours = orjson.loads((a.data_dir / "cluster.json").read_bytes())["cluster_id"]
    assert orjson.loads((b.data_dir / "cluster.json").read_bytes())["cluster_id"] == ours
    await c.close()


async def test_cluster_status_connections_do_not_log_each_authentication_at_info(nodes, tmp_path):
    """GetClusterMetrics (qcore-cli status; the console asks about once a second) opens a
    peer connection to every member per call. Each authenticates by the secret but declares
    no node, so each used to log 'node None (None) authenticated as a peer' at INFO on every
    member: a line per member per second with a console open. Raft links still log theirs."""
    secret = make_secret(tmp_path)
    ns = [nodes(i, "--peer-secret-file", str(secret)) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    asker = next(c for i, c in enumerate(conns, 1) if i != leader)
    for _ in range(3):
        reply = await asker.call("GetClusterMetrics")
        members = reply["GetClusterMetricsResponse"]["response"]["Ok"]["members"]
        assert all(m["error"] is None for m in members), members
    for n in ns:
        text = n.log_path.read_text()
        assert "authenticated as a peer" in text  # the Raft links, by their node
        assert "node None" not in text, n.log_tail()
    for c in conns:
        await c.close()
