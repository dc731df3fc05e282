"""A follower that stops reading its peer connections (SIGSTOP) while a client
writes tens of MiB through the leader (issue 19: peer connections are bounded
like client ones). The leader keeps committing with the other follower and
answering; its memory grows by what the data costs (as the live follower's
does) plus at most the bound on a peer's unsent output, not by everything the
frozen follower was sent; and the follower catches up once it runs again."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from tests.node.harness import Conn, eid, logged, node_metrics, read, wait_until, write
from tests.node.test_cluster import init_cluster
from tests.node.test_hostile_clients import rss_mib

VALUE = 512 << 10  # characters of each value written
WRITES = 160  # 80 MiB in all, over five fields (~2-4 s on the development machine)
WINDOW = 4  # writes in flight
FIELDS = [(eid("Root", 1), "Description"), (eid("Folder", 2), "Description"), (eid("Folder", 5), "Description"),
          (eid("Folder", 7), "Description"), (eid("Folder", 10), "Description")]
PEER_OUTPUT = 8  # MiB: --max-peer-output here, so that 80 MiB written is ten times the bound
STUCK = 3  # seconds: --stuck-timeout here
# Few retained changes (--notify-retain): each node then holds the five last values, not the window of all 160.
# Own snapshots built on a thread: a forked build runs at SCHED_IDLE, which a loaded machine starves, and
# each node's log then grows until its build gets CPU, by up to ~60 MiB at other moments on each node.
NODE_ARGS = ("--in-memory", "--notify-retain", "16", "--max-peer-output", str(PEER_OUTPUT << 20),
             "--stuck-timeout", str(STUCK), "--snapshot-build", "thread")


def value(i: int) -> str:
    return f"{i:08d}" * (VALUE // 8)


def _applied(mt: dict[str, Any]) -> int:
    return int(mt["last_applied"]["index"]) if mt["last_applied"] else 0


async def test_a_frozen_follower_leaves_the_leader_bounded_and_catches_up(nodes):
    ns = [nodes(i, *NODE_ARGS) for i in (1, 2, 3)]
    conns, leader_id = await init_cluster(ns)
    leader = ns[leader_id - 1]
    frozen, live = [n for n in ns if n is not leader]
    writer = conns[leader_id - 1]

    async def put(i: int) -> None:
        entity, field = FIELDS[i % len(FIELDS)]
        r = await writer.perform({"UpdateEntity": {"request": [write(entity, field, {"String": value(i)})]}}, timeout=30)
        assert r["UpdateEntity"]["error"] is None, r  # acknowledged: committed by a majority

    for i in range(len(FIELDS)):  # every field holds a value of its final size before the baseline
        await put(i)
    assert leader.proc is not None and live.proc is not None and frozen.proc is not None
    base = {n.id: rss_mib(n.proc.pid) for n in (leader, live)}
    peak = dict(base)
    committed = int((await node_metrics(leader))["commit_index"])
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        latencies: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            """A fresh client is answered by the leader throughout."""
            while not done.is_set():
                started = time.monotonic()
                c = await Conn.open(leader.addr)
                assert (await c.metrics())["id"] == leader.id
                await c.close()
                latencies.append(time.monotonic() - started)
                for n in (leader, live):
                    assert n.proc is not None
                    peak[n.id] = max(peak[n.id], rss_mib(n.proc.pid))
                await asyncio.sleep(0.1)

        prober = asyncio.create_task(probe())
        started = time.monotonic()
        sem = asyncio.Semaphore(WINDOW)

        async def limited(i: int) -> None:
            async with sem:
                await put(i)

        await asyncio.gather(*(limited(i) for i in range(len(FIELDS), len(FIELDS) + WRITES)))
        elapsed = time.monotonic() - started
        done.set()
        await prober
        mt = await node_metrics(leader)
        assert mt["state"] == "Leader" and int(mt["commit_index"]) >= committed + WRITES, mt
        behind = mt["replication"][str(frozen.id)]
        assert behind is None or behind["index"] <= committed, mt  # it really took no part
        grew = {i: peak[i] - base[i] for i in base}
        print(f"{WRITES * VALUE >> 20} MiB written in {elapsed:.1f} s; RSS grew by {grew} MiB "
              f"(leader {leader.id}); GetMetrics max {max(latencies):.2f} s")
        assert max(latencies) < 5.0, latencies
        # What the data costs shows in the live follower; the leader holds at most the peer's bound
        # more, plus slack for the two nodes' log compactions falling at other moments
        # (docs/security.md has the figures, with the bound and without).
        assert grew[leader.id] <= grew[live.id] + PEER_OUTPUT + 24, grew
        assert f"peer {frozen.id} is not keeping up: dropped" in leader.log_path.read_text()
        # A link whose peer reads nothing is aborted after --stuck-timeout (keepalive cannot tell:
        # its ping waits behind the full buffer) and dialled again.
        await wait_until(lambda: logged(leader, f"lost connection to peer {frozen.id} at {frozen.addr}: "
                                                 f"it read nothing for {STUCK}s"), timeout=STUCK + 10,
                         what="the link to the frozen follower to be closed")
    finally:
        frozen.proc.send_signal(signal.SIGCONT)

    last = WRITES + len(FIELDS) - 1

    async def caught_up() -> bool:
        ms = [await node_metrics(n) for n in ns]
        return len({_applied(m) for m in ms}) == 1 and _applied(ms[0]) >= committed + WRITES

    await wait_until(caught_up, timeout=60, what="the frozen follower to catch up")
    c = await Conn.open(frozen.addr)
    try:
        for k, (entity, field) in enumerate(FIELDS):
            i = max(j for j in range(last + 1) if j % len(FIELDS) == k)
            r = await c.perform({"UpdateEntity": {"request": [read(entity, field)]}})
            assert r["UpdateEntity"]["response"][0]["Read"]["value"] == {"String": value(i)}
    finally:
        await c.close()
    for n in ns:
        assert "Traceback" not in n.log_path.read_text()
