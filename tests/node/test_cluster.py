"""3- and 5-node clusters of real processes: formation, forwarding,
linearizable reads from every node, leader failure, restart and catch-up,
membership change under load."""

from __future__ import annotations

import asyncio
import signal

import pytest

from qcore import wsfast
from tests.node.harness import Conn, NodeProc, logged, read, start_and_init, wait_serving, wait_until, write


async def leader_of(conns: list[Conn]) -> int:
    for c in conns:
        try:
            m = await c.metrics()
        except Exception:
            continue
        if m["state"] == "Leader":
            return m["id"]
    return 0


async def form_cluster(nodes_: list[NodeProc]) -> list[Conn]:
    """Init on the first node, then AddLearner + ChangeMembership (the openraft way)."""
    for n in nodes_:
        await wait_serving(n)
    conns = [await Conn.open(n.addr) for n in nodes_]
    assert (await conns[0].call("Init", nodes=[]))["InitResponse"]["response"] == "Ok"
    for n in nodes_[1:]:
        reply = await conns[0].call("AddLearner", node_id=n.id, node_addr=n.addr, timeout=60)
        assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    reply = await conns[0].call("ChangeMembership", members=[n.id for n in nodes_], timeout=60)
    assert "Ok" in reply["ChangeMembershipResponse"]["response"], reply
    for c in conns:
        await wait_until(lambda c=c: _sees_members(c, len(nodes_)), what="membership everywhere")
    return conns


async def init_cluster(nodes_: list[NodeProc]) -> tuple[list[Conn], int]:
    """Start the nodes, Init them as one cluster (SPEC 2.1), wait for a leader:
    a connection to each (over TLS where the node has a client context) and the leader's id."""
    await start_and_init(nodes_)
    conns = [await Conn.open(n.addr, n.ssl) for n in nodes_]
    leader = await wait_until(lambda: leader_of(conns), what="a leader")
    return conns, leader


async def _sees_members(c: Conn, n: int) -> bool:
    m = await c.metrics()
    return len(m["membership_config"]["membership"]["configs"][0]) == n and m["current_leader"] is not None


async def make_counter(c: Conn, name: str) -> dict:
    await c.perform({"SetSchema": {"entity_schema": {"entity_type": "Counter", "inherit": "Object", "fields": {
        "N": {"field_type": "N", "default_value": {"Int": 0}, "rank": 10, "read_permission": None,
              "write_permission": None, "choices": None}}}}})
    r = await c.perform({"CreateEntity": {"entity_type": "Counter", "parent_id": None, "name": name}})
    assert r["CreateEntity"]["error"] is None, r
    return r["CreateEntity"]["response"]


async def read_n(c: Conn, ent: dict) -> int:
    r = await c.perform({"UpdateEntity": {"request": [read(ent, "N")]}})
    assert r["UpdateEntity"]["error"] is None, r
    return r["UpdateEntity"]["response"][0]["Read"]["value"]["Int"]


@pytest.mark.parametrize("fast", ["on", "off"], ids=["ws-fast-paths", "ws-public-api"])
async def test_three_nodes_forward_writes_and_read_linearizably_everywhere(nodes, fast, monkeypatch):
    """Also with qcore.wsfast's fallback to websockets' public API (as with
    a websockets release it was not tested with)."""
    if fast == "off":
        monkeypatch.setenv("QCORE_WS_FASTPATH", "0")
    ns = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    ent = await make_counter(conns[1], "c")  # sent to a follower or the leader: either works
    for i in range(30):
        writer = conns[i % 3]
        r = await writer.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None, r
        # a read that starts after the write completed sees it, on every node
        for c in conns:
            assert await read_n(c, ent) == i + 1
    # every node applied the same log
    metrics = [await c.metrics() for c in conns]
    assert len({m["current_leader"] for m in metrics}) == 1
    if fast == "off" or wsfast.FAST:
        assert all(f"fast paths {fast}" in n.log_tail(1000) for n in ns)


async def test_multi_node_init_and_leader_kill(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    conns, _ = await init_cluster(ns)
    ent = await make_counter(conns[0], "k")
    acked = 0
    for _ in range(10):
        r = await conns[2].perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None
        acked += 1
    old = await leader_of(conns)
    ns[old - 1].kill9()
    alive = [c for i, c in enumerate(conns) if i != old - 1]
    await wait_until(lambda: _new_leader(alive, old), timeout=30, what="a new leader")
    # The dead leader's connections closed: a survivor campaigned at once
    # (--link-down-ticks), not after an election timeout.
    early = f"no word from leader {old} since its link went down; campaigning"
    assert any(early in n.log_tail(400) for i, n in enumerate(ns) if i != old - 1)
    for _ in range(10):
        r = await alive[0].perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None
        acked += 1
    for c in alive:
        assert await read_n(c, ent) == acked
    # the old leader comes back with its data dir and catches up
    ns[old - 1].start()
    await wait_serving(ns[old - 1])
    back = await Conn.open(ns[old - 1].addr)
    await wait_until(lambda: _reads(back, ent, acked), timeout=30, what="catch-up after restart")


async def _new_leader(conns: list[Conn], old: int) -> bool:
    lid = await leader_of(conns)
    return lid not in (0, old)


async def _reads(c: Conn, ent: dict, expected: int) -> bool:
    try:
        return await read_n(c, ent) == expected
    except AssertionError:
        return False


async def test_five_nodes_member_added_and_removed_under_load(nodes):
    snap = ("--snapshot-threshold", "200", "--snapshot-keep", "0")  # joiners must get a snapshot
    ns = [nodes(i, *snap) for i in (1, 2, 3)]
    for n in ns:
        n.start()
    conns = await form_cluster(ns)
    ent = await make_counter(conns[0], "load")
    acked = 0
    stop = asyncio.Event()

    async def load(c: Conn) -> None:
        nonlocal acked
        while not stop.is_set():
            r = await c.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}})
            if r["UpdateEntity"]["error"] is None:
                acked += 1

    workers = [asyncio.create_task(load(c)) for c in conns for _ in range(4)]
    await wait_until(lambda: _acked_at_least(lambda: acked, 300), what="load")
    for c in conns:  # every node has compacted its log, so joiners cannot be sent the entries
        await wait_until(lambda c=c: _has_snapshot(c), timeout=60, what="a snapshot")
    # two more nodes join while writes flow (they get a snapshot: threshold 200)
    extra = [nodes(i, *snap).start() for i in (4, 5)]
    for n in extra:
        await wait_serving(n)
        reply = await conns[0].call("AddLearner", node_id=n.id, node_addr=n.addr, timeout=60)
        assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    reply = await conns[1].call("ChangeMembership", members=[1, 2, 3, 4, 5], timeout=60)
    assert "Ok" in reply["ChangeMembershipResponse"]["response"], reply
    # remove node 1 (maybe the leader) and node 2 under load
    reply = await conns[2].call("ChangeMembership", members=[3, 4, 5], timeout=60)
    assert "Ok" in reply["ChangeMembershipResponse"]["response"], reply
    stop.set()
    await asyncio.gather(*workers, return_exceptions=True)
    survivors = [await Conn.open(n.addr) for n in extra] + [conns[2]]
    await wait_until(lambda: leader_of(survivors), what="leader among 3,4,5")
    final = acked
    for c in survivors:
        await wait_until(lambda c=c: _reads_at_least(c, ent, final), timeout=30, what="all acked writes")
    # the joiners were brought up to date by a snapshot, not by replaying the log
    for n in extra:
        assert "installed snapshot" in n.log_path.read_text(), n.log_tail()


async def _has_snapshot(c: Conn) -> bool:
    return (await c.metrics())["snapshot"] is not None


async def _acked_at_least(get, n: int) -> bool:
    return get() >= n


async def _reads_at_least(c: Conn, ent: dict, n: int) -> bool:
    try:
        return await read_n(c, ent) >= n
    except AssertionError:
        return False


async def test_sigterm_on_leader_hands_over_and_answers_in_flight_requests(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns:
        n.start()
    conns = await form_cluster(ns)
    ent = await make_counter(conns[0], "t")
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    leader_conn = conns[lid - 1]
    # many writes in flight on the leader while it is told to stop
    inflight = [
        asyncio.create_task(leader_conn.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 1}, adjust="Add")]}}))
        for _ in range(100)
    ]
    await asyncio.sleep(0)  # let the sends go out
    assert await asyncio.to_thread(ns[lid - 1].terminate) == 0
    results = await asyncio.gather(*inflight, return_exceptions=True)
    answered = [r for r in results if isinstance(r, dict)]
    # every request got a reply or saw the connection close; none hangs
    assert len(answered) + sum(isinstance(r, Exception) for r in results) == 100
    assert "transferring leadership" in ns[lid - 1].log_path.read_text()
    others = [c for i, c in enumerate(conns) if i != lid - 1]
    await wait_until(lambda: _new_leader(others, lid), timeout=10, what="new leader after transfer")
    ok = sum(1 for r in answered if r["UpdateEntity"]["error"] is None)
    assert await read_n(others[0], ent) >= ok


async def test_sigterm_on_leader_hands_over_to_a_live_voter_not_a_dead_one(nodes):
    """A leader stopping hands leadership to a voter it can reach: with the other followers
    equally up to date, a dead one (its link lost) is passed over, as etcd's server picks
    the longest-connected member. Picking it cost the transfer's timeout, writes refused."""
    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns:
        n.start()
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    followers = [n for n in ns if n.id != lid]
    dead, live = max(followers, key=lambda n: n.id), min(followers, key=lambda n: n.id)
    dead.kill9()  # the higher id: the old choice, max((match, id)), took it on a tie
    leader = ns[lid - 1]
    await wait_until(lambda: logged(leader, f"lost connection to peer {dead.id} "), what="the leader to lose its link")
    assert await asyncio.to_thread(leader.terminate) == 0
    assert f"transferring leadership to {live.id} before shutdown" in leader.log_path.read_text(), leader.log_tail()


async def test_sighup_stops_a_leader_as_sigterm_does(nodes):
    """SIGHUP (a closed terminal, or an operator used to PostgreSQL's reload) is a clean stop:
    leadership handed over, exit code 0, and the log says why; not an unannounced death that
    leaves the cluster an election timeout without a leader."""
    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns:
        n.start()
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    leader = ns[lid - 1]
    assert leader.proc is not None
    leader.proc.send_signal(signal.SIGHUP)
    assert await asyncio.to_thread(leader.proc.wait, 15) == 0, leader.log_tail()
    log = leader.log_path.read_text()
    assert "received SIGHUP: it stops the node as SIGTERM does" in log and "transferring leadership" in log, log
    others = [c for i, c in enumerate(conns) if i != lid - 1]
    await wait_until(lambda: _new_leader(others, lid), timeout=10, what="new leader after transfer")


async def test_sighup_stays_ignored_under_nohup(nodes):
    """A node started with SIGHUP ignored (`nohup qcore ...`) keeps ignoring it: the terminal it was
    started from closing does not stop it."""
    import shutil
    import sys

    nohup = shutil.which("nohup")
    if nohup is None:
        pytest.skip("no nohup here")
    n = nodes(1, "--init", "--in-memory", program=[nohup, sys.executable, "-m", "qcore"]).start()
    await wait_serving(n)
    assert n.proc is not None
    n.proc.send_signal(signal.SIGHUP)  # ignored: discarded as it is sent
    c = await Conn.open(n.addr)
    try:
        assert (await c.metrics())["id"] == 1  # a round of the node's loop after the signal
    finally:
        await c.close()
    assert n.alive() and "received SIGHUP" not in n.log_path.read_text()
    assert n.terminate() == 0


async def test_cluster_status_says_a_member_that_hangs_did_not_answer(nodes):
    """qcore-cli status (GetClusterMetrics) on a member that accepts connections but does not
    answer (SIGSTOP here; a frozen VM): the row says so, not a bare 'unreachable: '."""
    ns = [nodes(i) for i in (1, 2, 3)]
    await start_and_init(ns)
    conns = [await Conn.open(n.addr) for n in ns]
    leader = await wait_until(lambda: leader_of(conns), what="a leader")
    stopped = next(n for n in ns if n.id != leader)
    asker = next(c for n, c in zip(ns, conns) if n.id not in (leader, stopped.id))
    assert stopped.proc is not None
    stopped.proc.send_signal(signal.SIGSTOP)
    try:
        reply = await asker.call("GetClusterMetrics")
    finally:
        stopped.proc.send_signal(signal.SIGCONT)
    members = {m["id"]: m for m in reply["GetClusterMetricsResponse"]["response"]["Ok"]["members"]}
    assert members[stopped.id]["metrics"] is None
    assert members[stopped.id]["error"] == "unreachable: no answer within 1.5 s", members[stopped.id]
    assert all(members[i]["error"] is None for i in members if i != stopped.id), members
    for c in conns:
        await c.close()
