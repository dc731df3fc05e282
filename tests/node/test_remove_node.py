"""`RemoveNode` takes a learner or a voter out of the cluster (etcd's
``member remove``), where ChangeMembership can only change the voters: a
learner added by mistake, or one that is gone for good, would otherwise stay
in the configuration for ever."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.node.harness import REPO, Conn, node_metrics, wait_serving, wait_until, write
from tests.node.test_cluster import init_cluster, make_counter, read_n


def _members(metrics: dict) -> tuple[list[int], list[int]]:
    membership = metrics["membership_config"]["membership"]
    return sorted(i for config in membership["configs"] for i in config), membership["learners"]


async def _removed_answer(c: Conn) -> dict:
    reply = await c.call("Perform", request={"EntityExists": {"entity_id": {"typ": "Root", "id": 1}}})
    return reply if reply.get("Error", {}).get("kind") == "removed" else {}


def _cli(addr: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qcore.cli.client", "--addr", addr, *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})


async def test_a_learner_can_be_removed_through_a_follower_and_a_retry_is_harmless(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    learner = nodes(4).start()
    await wait_serving(learner)
    reply = await conns[leader - 1].call("AddLearner", node_id=4, node_addr=learner.addr, timeout=60)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    learner.kill9()  # gone for good

    follower = next(c for n, c in zip(ns, conns) if n.id != leader)
    reply = await follower.call("RemoveNode", node_id=4, timeout=60)
    ok = reply["RemoveNodeResponse"]["response"]["Ok"]
    assert ok["log_id"]["leader_id"]["node_id"] == leader, reply
    assert ok["membership"]["learners"] == [] and "4" not in ok["membership"]["nodes"], reply
    for n in ns:
        await wait_until(lambda n=n: _without_4(n), what=f"node {n.id} to drop node 4")
        # the configuration in force names the entry that set it (openraft's StoredMembership.log_id)
        assert (await node_metrics(n))["membership_config"]["log_id"]["index"] == ok["log_id"]["index"]

    again = _cli(ns[0].addr, "remove-node", "4")  # a retry: nothing left to do
    assert again.returncode == 0, again.stderr
    assert "node 4 is not a member" in again.stdout

    ent = await make_counter(conns[leader - 1], "after")
    r = await conns[leader - 1].perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 3})]}})
    assert r["UpdateEntity"]["error"] is None
    assert await read_n(follower, ent) == 3


async def _without_4(n) -> bool:
    voters, learners = _members(await node_metrics(n))
    return voters == [1, 2, 3] and learners == []


async def test_removing_the_leader_hands_over_and_it_says_it_was_removed(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    done = _cli(ns[leader - 1].addr, "remove-node", str(leader))
    assert done.returncode == 0, done.stderr
    rest = sorted(n.id for n in ns if n.id != leader)
    assert f"node {leader} removed; voters are now {', '.join(map(str, rest))}\n" in done.stdout

    live = [c for n, c in zip(ns, conns) if n.id != leader]

    async def new_leader() -> int | None:
        m = await live[0].metrics()
        return m["current_leader"] if m["current_leader"] in rest else None

    await wait_until(new_leader, what="a leader among the remaining voters")
    ent = await make_counter(live[0], "after")
    r = await live[1].perform({"UpdateEntity": {"request": [write(ent, "N", {"Int": 7})]}})
    assert r["UpdateEntity"]["error"] is None, r
    assert await read_n(live[0], ent) == 7
    await wait_until(lambda: _removed_answer(conns[leader - 1]), what="the removed leader to say it was removed")
    status = _cli(ns[leader - 1].addr, "node-status")
    assert status.returncode == 0 and "state     removed from the cluster" in status.stdout, status


async def test_the_last_voter_cannot_be_removed(nodes):
    n = nodes(1, "--init").start()
    await wait_serving(n)
    c = await Conn.open(n.addr)

    async def refusal() -> dict:
        reply = await c.call("RemoveNode", node_id=1)
        response = reply.get("RemoveNodeResponse", {}).get("response")  # an Error frame until it leads
        return reply if isinstance(response, dict) and "Err" in response else {}

    reply = await wait_until(refusal, what="a refusal (once the node leads)")
    assert reply["RemoveNodeResponse"]["kind"] == "invalid"
    assert "only voter" in reply["RemoveNodeResponse"]["response"]["Err"]
    assert _members(await c.metrics()) == ([1], [])
    await c.close()


async def test_the_configurations_log_id_is_the_same_on_every_node_through_snapshots_and_restarts(nodes):
    """GetMetrics' membership_config.log_id names the entry that set the configuration (openraft's
    StoredMembership): the same on every node after that entry is compacted into snapshots, and
    after a node restarts from its snapshot (the snapshot carries it)."""
    snap = ("--snapshot-threshold", "10", "--snapshot-keep", "2")
    ns = [nodes(i, *snap) for i in (1, 2, 3)]
    conns, leader = await init_cluster(ns)
    learner = nodes(4, *snap).start()
    await wait_serving(learner)
    reply = await conns[leader - 1].call("AddLearner", node_id=4, node_addr=learner.addr, timeout=60)
    assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    reply = await conns[leader - 1].call("RemoveNode", node_id=4, timeout=60)
    set_by = reply["RemoveNodeResponse"]["response"]["Ok"]["log_id"]
    learner.kill9()
    for i in range(30):  # every node takes snapshots past the configuration's entry
        await make_counter(conns[leader - 1], f"c{i}")

    async def log_ids() -> list[dict]:
        return [(await node_metrics(n))["membership_config"]["log_id"] for n in ns]

    async def all_at_set_by() -> bool:
        return all(i is not None and i["index"] == set_by["index"] for i in await log_ids())

    async def snapshots_past_it() -> bool:  # own snapshots are built in the background
        snaps = [(await node_metrics(n))["snapshot"] for n in ns]
        return all(s is not None and s["index"] > set_by["index"] for s in snaps)

    await wait_until(snapshots_past_it, what="every node's snapshot past the configuration's entry")
    await wait_until(all_at_set_by, what="every node's configuration log id")
    assert {(i["index"], i["leader_id"]["term"]) for i in await log_ids()} == {
        (set_by["index"], set_by["leader_id"]["term"])}
    follower = next(n for n in ns if n.id != leader)
    assert follower.terminate() == 0
    follower.start()
    await wait_serving(follower)
    restarted = (await node_metrics(follower))["membership_config"]["log_id"]
    assert (restarted["index"], restarted["leader_id"]["term"]) == (set_by["index"], set_by["leader_id"]["term"])



async def test_a_voter_change_answers_with_the_log_id_of_the_configuration_it_leaves_in_force(nodes):
    """A change of voters by joint consensus takes two entries (enter the joint configuration, then
    leave it); its reply, as openraft's change_membership, names the second, the one that set the
    configuration it returns, which is what GetMetrics' membership_config.log_id says on every node."""
    ns = [nodes(i).start() for i in (1, 2, 3)]
    for n in ns:
        await wait_serving(n)
    c = await Conn.open(ns[0].addr)
    assert (await c.call("Init", nodes=[]))["InitResponse"]["response"] == "Ok"
    for n in ns[1:]:
        reply = await c.call("AddLearner", node_id=n.id, node_addr=n.addr, timeout=60)
        assert "Ok" in reply["AddLearnerResponse"]["response"], reply
    reply = await c.call("ChangeMembership", members=[1, 2, 3], timeout=60)  # two voters added: joint
    ok = reply["ChangeMembershipResponse"]["response"]["Ok"]

    async def settled_everywhere() -> bool:
        return [_members(await node_metrics(n)) for n in ns] == [([1, 2, 3], [])] * 3

    await wait_until(settled_everywhere, what="the three voters everywhere")
    for n in ns:
        config = (await node_metrics(n))["membership_config"]
        assert config["membership"] == ok["membership"]
        assert (config["log_id"]["index"], config["log_id"]["leader_id"]["term"]) == (
            ok["log_id"]["index"], ok["log_id"]["leader_id"]["term"]), (config, ok)
    await c.close()
