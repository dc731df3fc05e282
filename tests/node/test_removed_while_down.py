"""A node removed from the cluster while it was down learns so from its peers
when it comes back (qcore.node.removal), instead of campaigning in vain and
telling clients "no leader"."""

from __future__ import annotations

import orjson

from tests.node.harness import Conn, logged, wait_serving, wait_until, write
from tests.node.http_get import http_get
from tests.node.test_cluster import init_cluster, make_counter, read_n


async def _refused_as_removed(c: Conn) -> dict:
    reply = await c.call("Perform", request={"EntityExists": {"entity_id": {"typ": "Root", "id": 1}}})
    return reply if reply.get("Error", {}).get("kind") == "removed" else {}


async def test_a_node_removed_while_down_says_so_when_it_returns(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    victim = next(n for n in ns if n.id != leader)
    rest = [n.id for n in ns if n is not victim]
    victim.kill9()
    reply = await conns[leader - 1].call("ChangeMembership", members=rest, timeout=60)
    assert "Ok" in reply["ChangeMembershipResponse"]["response"], reply

    victim.start()
    await wait_serving(victim)
    c = await Conn.open(victim.addr)
    error = await wait_until(lambda: _refused_as_removed(c), what="the returning node to say it was removed")
    assert "removed from the cluster" in error["Error"]["error"]
    status, _, body = await http_get(victim.addr, "/ready")
    ready = orjson.loads(body)
    assert status == 503 and ready["reason"].startswith("removed from the cluster (node ")
    assert f"node {victim.id} was removed from the cluster" in ready["reason"]
    assert await logged(victim, f"refuses our Raft messages: node {victim.id} was removed from the cluster")

    # The remaining two go on as a cluster of their own.
    live = conns[rest[0] - 1]
    ent = await make_counter(live, "after")
    r = await live.perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 5})]}})
    assert r["UpdateEntity"]["error"] is None
    assert await read_n(conns[rest[1] - 1], ent) == 5
    status, _, _ = await http_get(ns[rest[0] - 1].addr, "/ready")
    assert status == 200


async def test_members_that_were_down_through_changes_are_not_taken_for_removed(nodes):
    """Peers that have applied further refuse only a node their configuration
    lacks: a member that was down while a newcomer joined, and the newcomer,
    which joined with nothing applied, both take part as before."""
    ns = [nodes(i) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    late = next(n for n in ns if n.id != leader)
    late.kill9()
    newcomer = nodes(4).start()
    await wait_serving(newcomer)
    reply = await conns[leader - 1].call("AddLearner", node_id=4, node_addr=newcomer.addr, timeout=60)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    reply = await conns[leader - 1].call("ChangeMembership", members=[1, 2, 3, 4], timeout=60)
    assert "Ok" in reply["ChangeMembershipResponse"]["response"], reply
    late.start()  # behind the others by both changes
    await wait_serving(late)
    for n in (late, newcomer):
        await wait_until(lambda n=n: _ready(n), what=f"node {n.id} ready")
        assert "was removed from the cluster" not in n.log_tail(400)


async def _ready(n) -> bool:
    status, _, _ = await http_get(n.addr, "/ready")
    return status == 200
