"""Clusters that form themselves (SPEC 9), with real processes: three nodes
given --initial-cluster form a cluster with no Init, a --join node becomes a
voter with the data, members with another config file are refused, and
/ready turns 503 once the cluster has lost its quorum."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from qcore.cli.client import build_parser, run as cli_run
from tests.node.harness import SCHEMAS, Conn, NodeProc, eid, logged, read, wait_serving, wait_until, write
from tests.node.http_get import http_get


def initial_cluster(nodes_: list[NodeProc]) -> str:
    return ",".join(f"{n.id}={n.addr}" for n in nodes_)


async def ready(n: NodeProc) -> tuple[int, dict]:
    status, _, body = await http_get(n.addr, "/ready")
    return status, orjson.loads(body)


async def read_value(c: Conn, entity: dict, field: str) -> dict:
    r = await c.perform({"UpdateEntity": {"request": [read(entity, field)]}})
    assert r["UpdateEntity"]["error"] is None, r
    return r["UpdateEntity"]["response"][0]["Read"]["value"]


async def test_initial_cluster_forms_without_init_and_a_join_node_becomes_a_voter(
    nodes, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = [nodes(i) for i in (1, 2, 3)]
    flag = initial_cluster(ns)
    for n in ns:
        n.extra += ["--initial-cluster", flag]
    ns[0].start()  # alone, the first member cannot form the cluster and /ready says so

    async def waits_for_members() -> bool:
        status, body = await ready(ns[0])
        return status == 503 and body["reason"].endswith(
            "the cluster has not formed yet (no leader elected that this node knows of); "
            "it needs 2 of its voters 1, 2, 3 up and reaching each other")
    await wait_serving(ns[0])
    await wait_until(waits_for_members, what="/ready says the cluster has not formed")
    for n in ns[1:]:
        n.start()
    for n in ns:
        await wait_serving(n)
        await wait_until(lambda n=n: _is_ready(n), what=f"node {n.id} ready")
    c = await Conn.open(ns[1].addr)
    try:
        # The config file was applied once, by the cluster itself.
        assert await read_value(c, eid("Folder", 2), "Name") == {"String": "Users"}
        r = await c.perform({"UpdateEntity": {"request": [write(eid("Sensor", 12), "Reading", {"Float": 42.5})]}})
        assert r["UpdateEntity"]["error"] is None
    finally:
        await c.close()
    ids = set()
    for n in ns:
        x = await Conn.open(n.addr)
        ids.add((await x.metrics())["cluster_id"])
        await x.close()
    assert len(ids) == 1 and None not in ids  # every member derived the same identity

    joiner = nodes(4, "--join", f"{ns[0].addr},{ns[2].addr}").start()
    await wait_serving(joiner)
    j = await Conn.open(joiner.addr)
    try:
        async def voter() -> bool:
            m = await j.metrics()
            return 4 in m["membership_config"]["membership"]["configs"][0] and m["current_leader"] is not None
        await wait_until(voter, timeout=60, what="node 4 a voter")
        assert await read_value(j, eid("Sensor", 12), "Reading") == {"Float": 42.5}
        m = await j.metrics()
        assert m["membership_config"]["membership"]["configs"] == [[1, 2, 3, 4]]
    finally:
        await j.close()

    learner = nodes(5, "--join", ns[1].addr, "--join-as-learner").start()
    await wait_serving(learner)
    lc = await Conn.open(learner.addr)
    try:
        async def learning() -> bool:
            m = await lc.metrics()
            return m["membership_config"]["membership"]["learners"] == [5] and m["state"] == "Learner"
        await wait_until(learning, timeout=60, what="node 5 a learner")
        assert await read_value(lc, eid("Sensor", 12), "Reading") == {"Float": 42.5}
    finally:
        await lc.close()

    await wait_until(lambda: _status_shows(joiner.addr, 5, capsys), what="status lists all five members")
    assert await cli("--addr", ns[2].addr, "tree", "Folder$2") == 0
    assert capsys.readouterr().out.splitlines() == ["Folder$2  'Users'", "  User$3  'admin'", "  User$4  'alice'"]

    # Four voters need three: with two of them gone, the others have no quorum and say so
    # (the learner does not count towards one).
    ns[0].kill9()
    ns[1].kill9()
    assert await cli("--addr", ns[2].addr, "--json", "status") == 0
    rows = {r["id"]: r for r in orjson.loads(capsys.readouterr().out)["members"]}
    assert rows[1]["health"].startswith("unreachable") and rows[1]["role"] == "-"
    assert rows[3]["term"] is not None

    for n in (ns[2], joiner):
        async def not_ready(n: NodeProc = n) -> bool:
            status, body = await ready(n)
            return status == 503 and "may have lost its quorum" in body["reason"] and body["leader"] is None
        await wait_until(not_ready, timeout=30, what=f"/ready 503 on node {n.id} without a quorum")


async def cli(*argv: str) -> int:
    return await cli_run(build_parser().parse_args(list(argv)))


async def _status_shows(addr: str, members: int, capsys: pytest.CaptureFixture[str]) -> bool:
    """`qcore-cli status` lists `members` healthy rows, one of them the leader."""
    assert await cli("--addr", addr, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "ROLE", "TERM", "COMMIT", "APPLIED", "LAG", "HEALTH"]
    rows = [line.split() for line in lines[1:]]
    return (len(rows) == members and all(r[-1] == "ok" for r in rows)
            and sum(r[2] == "Leader" for r in rows) == 1)


async def _is_ready(n: NodeProc) -> bool:
    return (await ready(n))[0] == 200


async def test_members_with_different_config_files_refuse_each_other(nodes, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(SCHEMAS.read_text().replace("Contains all user accounts", "Someone else's schema"))
    ns = [nodes(i) for i in (1, 2, 3)]
    flag = initial_cluster(ns)
    for n in ns:
        n.extra += ["--initial-cluster", flag]
        if n.id == 3:
            n.extra += ["--config-file", str(other)]
        n.start()
    for n in ns:
        await wait_serving(n)
    for n in ns[:2]:
        await wait_until(lambda n=n: _is_ready(n), what=f"node {n.id} ready")

    async def refused() -> bool:
        status, body = await ready(ns[2])
        return status == 503 and "different config files" in body["reason"]
    await wait_until(refused, what="node 3 refused for its config file")
    log = ns[2].log_path.read_text()
    assert "ERROR" in log and "different config files" in log
    assert "different config files" in ns[0].log_path.read_text() + ns[1].log_path.read_text()
    c = await Conn.open(ns[0].addr)
    try:
        assert await read_value(c, eid("Folder", 2), "Description") == {"String": "Contains all user accounts"}
        m = await c.metrics()
        assert m["membership_config"]["membership"]["configs"] == [[1, 2, 3]]
    finally:
        await c.close()
    leader = ns[m["current_leader"] - 1]
    assert leader.id in (1, 2)
    c = await Conn.open(leader.addr)
    try:
        assert (await c.metrics())["replication"]["3"] is None  # node 3 never took an entry from this cluster
    finally:
        await c.close()
    n3 = await Conn.open(ns[2].addr)
    try:
        m3 = await n3.metrics()
        assert m3["current_leader"] is None and m3["last_applied"]["index"] <= 1
    finally:
        await n3.close()


async def test_a_member_that_lost_its_data_dir_is_refused_by_join_until_it_is_removed(nodes, tmp_path: Path) -> None:
    """A voter restarted with --join on an empty data dir (a wiped disk) is still a member the leader
    counts as holding entries: it would get no entries (the leader thinks it has them) and vote with an
    empty log. It stops (exit 2) saying to remove it first; removed, it joins again."""
    import shutil
    import subprocess

    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns:
        n.extra += ["--initial-cluster", initial_cluster(ns)]
        n.start()
    for n in ns:
        await wait_serving(n)
    joiner = nodes(4, "--join", ns[0].addr).start()
    await wait_until(lambda: _voters_are(ns[0], [1, 2, 3, 4]), timeout=60, what="node 4 a voter")
    # Another node given the same id (elsewhere) lost nothing: it is told the id is taken, not to remove node 4.
    (tmp_path / "twin").mkdir()
    twin = NodeProc(4, tmp_path / "twin", "--join", ns[0].addr).start()
    try:
        await wait_until(lambda: logged(twin, f"node 4 is already a member at {joiner.addr}"), what="the id taken")
        assert twin.terminate() == 0 and "data was lost" not in twin.log_path.read_text()
    finally:
        twin.kill9()
    assert joiner.terminate() == 0
    shutil.rmtree(joiner.data_dir)
    joiner.start()
    assert joiner.proc is not None
    try:
        code = await asyncio.to_thread(joiner.proc.wait, 30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"node 4 went on with a lost data dir:\n{joiner.log_tail()}") from None
    assert code == 2, joiner.log_tail()
    assert "node 4 is a member of the cluster and its leader holds it acknowledged up to log index" in \
        joiner.log_path.read_text() and "qcore-cli remove-node 4" in joiner.log_path.read_text()
    assert await cli("--addr", ns[1].addr, "remove-node", "4") == 0
    shutil.rmtree(joiner.data_dir)
    joiner.start()
    await wait_serving(joiner)
    await wait_until(lambda: _voters_are(joiner, [1, 2, 3, 4]), timeout=60, what="node 4 a voter again")


async def _voters_are(n: NodeProc, voters: list[int]) -> bool:
    c = await Conn.open(n.addr)
    try:
        m = await c.metrics()
        return m["current_leader"] is not None and m["membership_config"]["membership"]["configs"] == [voters]
    finally:
        await c.close()
