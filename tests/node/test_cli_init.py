"""`qcore-cli init --node ...` as the README runs it: when it says the cluster is
initialised, every member is in it (the next command, on any node, is served), or it
says which member is not in yet."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.node.harness import REPO, Conn, NodeProc, wait_serving


async def cli(addr: str, *argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qcore.cli.client", "--addr", addr, *argv, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return await proc.wait(), out.decode()


def node_args(ns: list[NodeProc]) -> list[str]:
    return [a for n in ns for a in ("--node", f"{n.id}={n.addr}")]


async def test_init_of_several_nodes_answers_once_every_member_is_in(nodes):
    ns = [nodes(i).start() for i in (1, 2, 3)]
    for n in ns:
        await wait_serving(n)
    code, out = await cli(ns[0].addr, "init", *node_args(ns))
    assert code == 0, out
    for n in ns:  # right away, as `qcore-cli init ... && qcore-cli status` would
        c = await Conn.open(n.addr)
        try:
            mt = await c.metrics()
        finally:
            await c.close()
        assert mt["initialised"] and mt["current_leader"] == 1, (n.id, mt)
    assert out.startswith("initialised with nodes ") and out.endswith("; leader: node 1\n"), out


async def test_init_says_which_member_is_not_in_yet(nodes):
    ns = [nodes(i) for i in (1, 2, 3)]
    for n in ns[:2]:  # node 3 is never started
        n.start()
        await wait_serving(n)
    code, out = await cli(ns[0].addr, "--timeout", "3", "init", *node_args(ns))
    assert code == 0, out  # the cluster is initialised: nodes 1 and 2 elect a leader
    first, _, note = out.partition("\n")
    assert first.startswith("initialised with nodes ") and "; leader: node 1" in first, out
    assert note.startswith("not every member is in yet (node 3 unreachable"), out
