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

from qcore.chaos.proxy import LinkProxy
from qcore.client import Client, notify_on_entity
from qcore.store.types import EntityId, Int, String
from tests.node.harness import REPO, Conn, NodeProc, wait_until, write
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


async def test_a_watch_from_an_index_through_one_address_resumes_on_another_member(nodes) -> None:  # type: ignore[no-untyped-def]
    """Given one node's address and a from_index (qcore-cli --addr X watch ... --from-index N),
    a watch still fails over to the other members when that node dies."""
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    counter = await make_counter(conns[lid - 1], "c")
    x = ns[lid % 3]  # a follower
    async with Client([ns[lid - 1].addr]) as w, Client([x.addr], request_timeout=10, attempt_timeout=2) as c:
        start = (await w.metrics())["last_applied"]["index"]
        watch = await c.watch(notify_on_entity(counter, "N"), from_index=start)
        await w.write(counter, "N", 1, adjust="Add")
        assert (await watch.get(20)).current_value == Int(1)
        x.kill9()
        await w.write(counter, "N", 1, adjust="Add")
        await w.write(counter, "N", 1, adjust="Add")
        assert [(await watch.get(20)).current_value for _ in range(2)] == [Int(2), Int(3)]
        assert c.address != x.addr
        await watch.close()


async def test_a_path_watch_resumed_after_its_entity_moved_keeps_watching_the_field_it_reached(nodes) -> None:  # type: ignore[no-untyped-def]
    """User$3 (in Folder$2) moves to Folder$5 while the watcher of its Parent->Name is
    disconnected: the resumed watch still follows Folder$2's Name, as the first
    registration did, missing none of its changes and getting none of Folder$5's."""
    ns: list[NodeProc] = [nodes(i).start() for i in (1, 2, 3)]
    conns = await form_cluster(ns)
    lid = await wait_until(lambda: leader_of(conns), what="a leader")
    node = ns[lid % 3]  # the watcher's node (a follower) stays up; only its link is cut
    link = LinkProxy("watcher", node.port)
    await link.start()
    user, users, other = EntityId("User", 3), EntityId("Folder", 2), EntityId("Folder", 5)
    async with Client([ns[lid - 1].addr]) as w, Client([link.address], request_timeout=30, attempt_timeout=2) as c:
        watch = await c.watch(notify_on_entity(user, "Parent->Name"))
        # watch() told the client every member's address; keep it on the cut link, so that
        # it resumes only once the link is back, after the move.
        c.addresses[:] = [link.address]
        await w.write(users, "Name", "a1")
        assert ((n := await watch.get(20)).entity_id, n.current_value) == (users, String("a1"))
        await link.stop()
        await w.write(users, "Name", "a2")
        await w.write(user, "Parent", other)  # the move
        await w.write(other, "Name", "b1")
        moved = (await w.metrics())["last_applied"]["index"]
        # The resume is answered by a node that has applied the move.
        await wait_until(lambda: _applied(conns[lid % 3], moved), what="the watcher's node to apply the move")
        await link.start()
        await w.write(users, "Name", "a3")
        await w.write(other, "Name", "b2")
        await w.write(users, "Name", "a4")
        got = [await watch.get(20) for _ in range(3)]
        await watch.close()
    await link.stop()
    assert [(n.entity_id, n.current_value) for n in got] == [(users, String(v)) for v in ("a2", "a3", "a4")]


async def _applied(c: Conn, index: int) -> bool:
    return bool((await c.metrics())["last_applied"]["index"] >= index)


async def _exists(c: Client, e: dict) -> bool:
    return await c.entity_exists(e)


def _true_when(check):  # type: ignore[no-untyped-def]
    async def poll() -> bool:
        return bool(check())
    return poll



async def test_cli_watch_outlives_its_node_being_down_and_prints_the_changes_made_after(nodes) -> None:  # type: ignore[no-untyped-def]
    """qcore-cli watch gave up --timeout after the last node went away (ConnectionFailed, exit 1),
    where etcdctl's watch keeps trying. Now it tries again until Ctrl-C, each attempt bounded by
    --timeout and logged at -v, and once the node is back prints the changes made since, none twice."""
    from tests.node.harness import wait_ready, wait_serving

    n = nodes(1, "--init").start()
    await wait_serving(n)
    await wait_ready(n)
    async with Client([n.addr], request_timeout=20) as c:
        entity = await c.create("Object", "w")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qcore.cli.client", "--addr", n.addr, "--timeout", "1", "-v",
            "watch", str(entity), "Name", "--count", "2",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            await _stderr_until(proc.stderr, b"Ctrl-C to stop")
            await c.write(entity, "Name", "one")
            first = await asyncio.wait_for(proc.stdout.readline(), 30)
            n.kill9()
            # Two attempts failed, each given --timeout 1: it went on past the --timeout that ended it.
            await _stderr_until(proc.stderr, b"attempt 2 to resume from log index")
            n.start()
            await wait_serving(n)
            await wait_ready(n)
            await c.write(entity, "Name", "two")
            second = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert b'Name: String "w" -> String "one"' in first, first
    assert b'Name: String "one" -> String "two"' in second, second  # and not "one" again


async def _stderr_until(stream: asyncio.StreamReader, text: bytes) -> bytes:
    seen = b""
    while text not in seen:
        line = await asyncio.wait_for(stream.readline(), 60)
        assert line, seen  # the command ended
        seen += line
    return seen
