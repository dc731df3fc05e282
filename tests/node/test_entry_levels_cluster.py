"""A cluster mid-upgrade, with real processes: nodes 1 and 2 run this build, node 3 a build
whose highest semantics level is 1 (qcore.node.entries). There is no such build to run, so node 3
is this build with ENTRY_LEVEL set to 1 before anything else imports it: it declares level 1 on
its Raft links, writes level 1, and stops (exit 78) at an entry of level 2, as an older build does.
With a leader of this build, entries are written at level 1 all the same, the leader's own and the
batches forwarded by either follower: node 3 applies every one, and a move records no writer on
the parents' Children (level 1's rule; level 2 records the write's writer there)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from qcore.node.entries import ENTRY_LEVEL
from tests.node.harness import (Conn, NodeProc, eid, read, start_and_init, wait_ready, wait_serving, wait_until,
                                write)
from tests.node.http_get import http_get

OLDER_BUILD = ("import sys\nimport qcore.node.entries as entries\nentries.ENTRY_LEVEL = 1\n"
               "from qcore.cli.node import main\nsys.exit(main())\n")


async def _known_leader(c: Conn) -> int | None:
    return (await c.metrics())["current_leader"]


async def _leader(c: Conn) -> int:
    leader = (await c.metrics())["current_leader"]
    assert leader, "no leader"
    return int(leader)


async def _start(nodes: list[NodeProc]) -> Conn:
    """Start and Init the cluster, wait until every node is ready; a connection to the first."""
    await start_and_init(nodes)
    for n in nodes:
        await wait_ready(n)
    return await Conn.open(nodes[0].addr)


async def _create(c: Conn, name: str, parent: Any = None) -> Any:
    r = await c.perform({"CreateEntity": {"entity_type": "Object", "parent_id": parent, "name": name}})
    assert r["CreateEntity"]["error"] is None, r
    return r["CreateEntity"]["response"]


async def _entry_level(n: NodeProc) -> str:
    _, _, body = await http_get(n.addr, "/metrics")
    (line,) = [ln for ln in body.decode().splitlines() if ln.startswith("qcore_entry_level ")]
    return line.split()[1]


async def test_a_leader_of_this_build_writes_what_a_member_of_an_older_build_applies(tmp_path: Path) -> None:
    nodes = [NodeProc(1, tmp_path), NodeProc(2, tmp_path),
             NodeProc(3, tmp_path, program=[sys.executable, "-c", OLDER_BUILD])]
    conns: list[Conn] = []
    try:
        c = await _start(nodes)
        if await _leader(c) == 3:  # hand leadership over (SIGTERM does) to a node of this build
            assert nodes[2].terminate() == 0
            nodes[2].start()
            await wait_ready(nodes[2])
        leader = await wait_until(lambda: _known_leader(c), what="node 1 knowing the leader")
        await c.close()
        assert leader != 3
        conns = [await Conn.open(n.addr) for n in nodes]

        a, b = await _create(conns[0], "a"), await _create(conns[0], "b")
        moved = await _create(conns[0], "moved", a)
        for i, c in enumerate(conns):  # a move made on every node: by the leader, or forwarded to it
            to = b if i % 2 == 0 else a
            move = write(moved, "Parent", {"EntityReference": to})
            move["Write"]["writer_id"] = eid("Object", 99)
            r = await c.perform({"UpdateEntity": {"request": [move]}})
            assert r["UpdateEntity"]["error"] is None, r
            for parent in (a, b):
                for n, other in zip(nodes, conns):
                    got = await other.perform({"UpdateEntity": {"request": [read(parent, "Children")]}})
                    assert got["UpdateEntity"]["response"][0]["Read"]["writer_id"] is None, (n.id, got)
        assert all(n.alive() for n in nodes), nodes[2].log_tail()
        applied = {n.id: (await c.metrics())["last_applied"] for n, c in zip(nodes, conns)}
        assert len({str(v) for v in applied.values()}) == 1, applied

        async def at_level_1() -> bool:
            return await _entry_level(nodes[leader - 1]) == "1.0"

        await wait_until(at_level_1, what="qcore_entry_level 1 on the leader")
        assert "proposing log entries at semantics level 1 (node 3 declared level 1)" in (
            nodes[leader - 1].log_path.read_text())
    finally:
        for c in conns:
            await c.close()
        for n in nodes:
            n.kill9()


async def test_a_cluster_of_this_build_keeps_its_level_while_a_member_is_down_and_the_others_restart(
        tmp_path: Path) -> None:
    """Every member runs this build and entries of its level are applied. Node 3 goes down, nodes
    1 and 2 restart: the leader has not heard node 3 declare a level since its start, but the log
    it applied holds entries of this build's level, so it goes on writing that level (a move
    records its writer on the parents' Children, from level 2 on), as etcd's cluster version does
    not go down."""
    nodes = [NodeProc(i, tmp_path) for i in (1, 2, 3)]
    conns: list[Conn] = []
    try:
        c = await _start(nodes)
        leader = await _leader(c)
        await wait_until(lambda: _at(nodes[leader - 1], f"{float(ENTRY_LEVEL)}"),
                         what=f"qcore_entry_level {ENTRY_LEVEL} on the leader")
        await _create(c, "before")
        await c.close()

        nodes[2].kill9()
        for n in nodes[:2]:
            assert n.terminate() == 0
            n.start()
            await wait_serving(n)
            await wait_ready(n)
        conns = [await Conn.open(n.addr) for n in nodes[:2]]
        # node 2 is ready once it knows a leader; node 1 may hear of one (node 2 just
        # elected) a moment later
        leader = await wait_until(lambda: _known_leader(conns[0]), what="node 1 knowing the leader")
        assert await _entry_level(nodes[leader - 1]) == f"{float(ENTRY_LEVEL)}"
        assert f"entries of level {ENTRY_LEVEL} are applied already" in nodes[leader - 1].log_path.read_text()

        a, b = await _create(conns[0], "a"), await _create(conns[0], "b")
        moved = await _create(conns[0], "moved", a)
        move = write(moved, "Parent", {"EntityReference": b})
        move["Write"]["writer_id"] = eid("Object", 99)
        r = await conns[1].perform({"UpdateEntity": {"request": [move]}})  # through either node
        assert r["UpdateEntity"]["error"] is None, r
        got = await conns[0].perform({"UpdateEntity": {"request": [read(b, "Children")]}})
        assert got["UpdateEntity"]["response"][0]["Read"]["writer_id"] == eid("Object", 99), got
    finally:
        for c in conns:
            await c.close()
        for n in nodes:
            n.kill9()


async def _at(n: NodeProc, level: str) -> bool:
    return await _entry_level(n) == level
