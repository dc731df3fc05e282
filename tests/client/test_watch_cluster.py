"""Notification streams of qcore.client and qcore-cli against a 3-node cluster of real processes.

A watch that resumes with ``from_index`` must deliver every acknowledged change
exactly once, in log order, across a kill -9 of the node it watched through
(issue 17, point 1): the node must answer the registration before it pushes
the replay, or the client cannot know the token the replay is sent under.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from qcore.client import Client, notify_on_entity
from qcore.store.types import Int
from tests.node.harness import REPO, NodeProc, wait_until, write
from tests.node.test_cluster import form_cluster, leader_of, make_counter


async def test_a_watch_resumed_on_another_node_after_kill9_delivers_every_acknowledged_change_once(nodes) -> None:  # type: ignore[no-untyped-def]
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    leader = ns[lid - 1]
    followers = [n for n in ns if n is not leader]
    x, y = followers  # the watch goes through x, which is killed; it resumes on y
    counter = await make_counter(conns[lid - 1], "c")

    acked: list[int] = []  # the value each acknowledged Add produced, in order
    stop = asyncio.Event()

    async def writer() -> None:
        async with Client([leader.addr], request_timeout=20) as w:
            while not stop.is_set():
                await w.write(counter, "N", 1, adjust="Add")
                acked.append(len(acked) + 1)  # one writer: the n-th Add makes N == n

    async with Client([x.addr, y.addr], request_timeout=20, attempt_timeout=2) as c:
        await wait_until(lambda: _exists(c, counter), what="the watcher's node to apply the counter")
        watch = await c.watch(notify_on_entity(counter, "N"))
        load = asyncio.create_task(writer())
        got: list = []
        try:
            while len(got) < 15:
                got.append(await watch.get(20))
            x.kill9()
            # The watch finds out, reconnects to y and resumes from its last log_index
            # while writes go on; the changes made meanwhile come as a replay.
            before = len(acked)
            await wait_until(_true_when(lambda: len(acked) >= before + 20), what="writes while the watch resumes")
        finally:
            stop.set()
            await load
        while len(got) < len(acked):
            got.append(await watch.get(20))
        assert c.address == y.addr
        await watch.close()

    assert [n.current_value for n in got] == [Int(v) for v in acked], "a change was missed, repeated or reordered"
    indexes = [n.log_index for n in got]
    assert indexes == sorted(set(indexes))


async def test_cli_watch_from_index_replays_retained_changes(nodes) -> None:  # type: ignore[no-untyped-def]
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    counter = await make_counter(conns[lid - 1], "c")
    indexes = []
    for _ in range(3):
        r = await conns[lid - 1].perform({"UpdateEntity": {"request": [write(counter, "N", {"Int": 1}, adjust="Add")]}})
        assert r["UpdateEntity"]["error"] is None, r
        indexes.append((await conns[lid - 1].metrics())["last_applied"]["index"])
    follower = ns[lid % 3]  # any other node: the replay comes from its own window
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qcore.cli.client", "--addr", follower.addr, "--json",
        "watch", f"{counter['typ']}${counter['id']}", "N", "--from-index", str(indexes[0]), "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = [orjson.loads(line) for line in out.decode().splitlines()]
    assert [n["current_value"] for n in lines] == [{"Int": 1}, {"Int": 2}, {"Int": 3}]
    assert [n["log_index"] for n in lines] == indexes


async def _exists(c: Client, e: dict) -> bool:
    return await c.entity_exists(e)


def _true_when(check):  # type: ignore[no-untyped-def]
    async def poll() -> bool:
        return bool(check())
    return poll

