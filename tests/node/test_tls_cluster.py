"""A secured cluster of real processes (SPEC 8.1, 8.2): TLS on the one port
and peers that prove they hold the cluster's secret."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from qcore.client import Client
from qcore.client.errors import ConnectionFailed
from qcore.tls import client_context
from tests.node.harness import Conn, wait_serving, wait_until, write
from tests.node.http_get import http_get
from tests.node.test_cluster import _new_leader, init_cluster, leader_of, make_counter, read_n
from tests.node.tls_files import make_tls


async def test_tls_cluster_forms_replicates_elects_and_serves_verified_clients(nodes, tmp_path):
    tls = make_tls(tmp_path)
    ns = [nodes(i, *tls.node_args(), ssl=tls.client()) for i in (1, 2, 3)]
    conns, _ = await init_cluster(ns)
    ent = await make_counter(conns[1], "k")
    acked = 0
    for i in range(6):  # through each node in turn: followers forward over authenticated TLS links
        r = await conns[i % 3].perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None, r
        acked += 1
    for c in conns:
        assert await read_n(c, ent) == acked
    old = await leader_of(conns)
    ns[old - 1].kill9()
    alive = [c for i, c in enumerate(conns) if i != old - 1]
    await wait_until(lambda: _new_leader(alive, old), timeout=30, what="a new leader")
    # The client library, verifying the cluster's CA, reads and writes.
    async with Client([n.addr for n in ns], tls_ca=str(tls.ca), request_timeout=20) as c:
        await c.write(ent, "N", 5)
        assert await c.read_value(ent, "N") == 5
    for c in alive:
        assert await read_n(c, ent) == 5
    # The operator's view: every live member answers the leader's GetMetrics over TLS ...
    r = await alive[0].call("GetClusterMetrics")
    members = r["GetClusterMetricsResponse"]["response"]["Ok"]["members"]
    assert sorted(e["id"] for e in members if e["metrics"] is not None) == sorted(n.id for n in ns if n.alive())
    # ... and HTTP is served over the same TLS: https:// only.
    live = next(n for n in ns if n.alive())
    status, _, body = await http_get(live.addr, "/health", ssl=tls.client())
    assert status == 200 and b'"ok"' in body
    status, _, _ = await http_get(live.addr, "/ready", ssl=tls.client())
    assert status == 200
    status, _, body = await http_get(live.addr, "/metrics", ssl=tls.client())
    assert status == 200 and b"qcore_raft_term" in body
    with pytest.raises((ValueError, IndexError, OSError, asyncio.TimeoutError)):
        await http_get(live.addr, "/health")  # plain HTTP on the TLS port: no answer to parse
    for c in conns:
        await c.close()


async def test_plain_and_wrongly_trusting_clients_are_refused(nodes, tmp_path):
    tls = make_tls(tmp_path)
    other = make_tls(tmp_path, "other")
    n = nodes(1, *tls.node_args(secret=False), "--init", ssl=tls.client()).start()
    await wait_serving(n)
    # A plain ws:// handshake on the TLS port fails.
    with pytest.raises((InvalidMessage, OSError, EOFError)):
        ws = await connect(f"ws://{n.addr}", proxy=None, open_timeout=5)
        await ws.close()
    # A client trusting another CA refuses the node's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        await Conn.open(n.addr, other.client())
    with pytest.raises(ConnectionFailed, match="certificate refused"):
        async with Client([n.addr], tls_ca=str(other.ca), request_timeout=5) as c:
            await c.metrics()
    # ... and a client that trusts no CA in particular (the system's) too.
    with pytest.raises(ConnectionFailed, match="certificate refused"):
        async with Client([f"wss://{n.addr}"], request_timeout=5) as c:
            await c.metrics()
    # The node kept serving through all of it.
    c = await Conn.open(n.addr, tls.client())
    assert (await c.metrics())["id"] == 1
    await c.close()


async def test_bad_tls_input_is_closed_and_the_node_keeps_serving(nodes, tmp_path):
    tls = make_tls(tmp_path)
    n = nodes(1, *tls.node_args(secret=False), "--init", "--handshake-timeout", "1", ssl=tls.client()).start()
    await wait_serving(n)
    host, port = n.addr.rsplit(":", 1)
    # Garbage where a ClientHello should be: the node drops the connection.
    r, w = await asyncio.open_connection(host, int(port))
    w.write(b"\x16\x03\x01\x00\x05garbage and more garbage\r\n\r\n" * 20)
    await w.drain()
    assert await asyncio.wait_for(r.read(), 5) == b""
    w.close()
    # A handshake that stalls (TCP open, nothing sent): closed after --handshake-timeout,
    # while a well-behaved client is served meanwhile.
    loop = asyncio.get_running_loop()
    r, w = await asyncio.open_connection(host, int(port))
    started = loop.time()
    c = await Conn.open(n.addr, tls.client())
    assert (await c.metrics())["id"] == 1
    assert await asyncio.wait_for(r.read(), 10) == b""
    assert loop.time() - started >= 0.9
    w.close()
    # A TLS handshake that stops half-way (ClientHello sent, never finished) is closed too.
    raw = ssl.create_default_context()
    raw.check_hostname = False
    raw.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_obj = raw.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls_obj.do_handshake()
    r, w = await asyncio.open_connection(host, int(port))
    w.write(outgoing.read())  # the ClientHello, then silence
    await w.drain()
    data = b""
    while chunk := await asyncio.wait_for(r.read(65536), 10):
        data += chunk  # the server's hello; then the node gives up on us
    w.close()
    assert (await c.metrics())["id"] == 1
    await c.close()


async def test_peers_proving_themselves_by_client_certificate(nodes, tmp_path):
    tls = make_tls(tmp_path)
    other = make_tls(tmp_path, "other")
    ns = [nodes(i, *tls.node_args(secret=False, cert_auth=True), ssl=tls.client()) for i in (1, 2)]
    conns, _ = await init_cluster(ns)
    ent = await make_counter(conns[0], "k")
    for c in conns:  # one of them forwards its write over a certificate-authenticated /forward link
        r = await c.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None, r
    assert [await read_n(c, ent) for c in conns] == [2, 2]
    vote = {"type": "VOTE", "to": 1, "from": 9, "term": 500, "log_term": 500, "index": 10**6}
    # Without a client certificate, a verified TLS connection is a client's.
    stranger = await Conn.open(ns[0].addr, tls.client(), path="/raft?from=9&addr=127.0.0.1:1")
    r = await stranger.call("RaftVote", request=vote)
    assert r["Error"]["kind"] == "unauthenticated_peer", r
    await stranger.close()
    # A certificate from another CA does not get through the TLS handshake.
    forged = client_context(tls.ca, other.cert, other.key)
    with pytest.raises((ssl.SSLError, OSError, EOFError, InvalidMessage)):
        c = await Conn.open(ns[0].addr, forged, path="/raft?from=9&addr=127.0.0.1:1")
        await c.call("RaftVote", request=vote, timeout=5)
    assert (await conns[0].metrics())["current_term"] < 500
    for c in conns:
        await c.close()
