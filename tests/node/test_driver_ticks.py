"""The driver's clock (qcore.node.driver `_tick_loop`): a tick every
`tick_ms`, and none for time the event loop was held up (a stalled process,
SIGSTOP, a paused VM), as Go's time.Ticker drops them for etcd. Fired back
to back on resuming, the missed ticks would run an election timeout and the
reads' wait for a leader out in a few milliseconds, before the messages that
arrived meanwhile are read.

One RaftDriver in this event loop over in-memory storage, then three real
node processes."""

from __future__ import annotations

import asyncio
import random
import signal
import time

from qcore.node.driver import RaftDriver
from qcore.node.options import NodeOptions
from qcore.node.state_machine import StateMachine
from qcore.raft import Config, RawNode
from qcore.storage import MemoryStorage
from tests.node.harness import eid, read, wait_ready
from tests.node.test_cluster import init_cluster

TICK_MS = 20


async def test_ticks_missed_while_the_loop_was_held_up_are_dropped() -> None:
    opts = NodeOptions(id=1, ws_addr="127.0.0.1:1", tick_ms=TICK_MS, election_ticks=10)
    raw = RawNode(Config(id=1, election_tick=10, heartbeat_tick=1), rng=random.Random(1))
    driver = RaftDriver(opts, raw, MemoryStorage(), StateMachine(), lambda msgs: None)
    fired: list[float] = []  # loop time of each tick
    tick = driver.replica.tick
    loop = asyncio.get_running_loop()

    def counted() -> None:
        fired.append(loop.time())
        tick()

    driver.replica.tick = counted  # type: ignore[method-assign]
    driver.start()
    try:
        while len(fired) < 3:  # it ticks
            await asyncio.sleep(TICK_MS / 1000)
        time.sleep(0.5)  # the loop held up for 25 ticks' time
        resumed = loop.time()
        before = len(fired)
        for _ in range(100):  # loop iterations: each could fire one tick
            await asyncio.sleep(0)
        after = fired[before:]
        elapsed = loop.time() - resumed
        # The one tick that was due, then one per tick_ms since: not the 25 missed.
        assert len(after) <= 1 + elapsed * 1000 / TICK_MS + 1, (len(after), elapsed)
        while len(fired) < before + 3:  # and it goes on ticking
            await asyncio.sleep(TICK_MS / 1000)
    finally:
        await driver.stop()


async def test_a_follower_resumed_after_sigstop_answers_reads_at_once(nodes) -> None:  # type: ignore[no-untyped-def]
    """Real processes: a follower stopped for 1 s (50 ticks, past any election
    timeout) reads its leader's heartbeats on resuming, and a read sent to it
    then is answered. With the missed ticks fired on resuming, it campaigned
    first, and a read was answered no_leader within milliseconds."""
    ns = [nodes(i, "--in-memory") for i in (1, 2, 3)]
    conns, leader_id = await init_cluster(ns)
    follower = next(n for n in ns if n.id != leader_id)
    conn = conns[follower.id - 1]
    assert follower.proc is not None
    await wait_ready(follower)
    request = {"UpdateEntity": {"request": [read(eid("Root", 1), "Name")]}}
    for _ in range(5):
        follower.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(1)  # how long it is stopped (not a wait for anything)
        finally:
            follower.proc.send_signal(signal.SIGCONT)
        reply = await conn.call("Perform", request=request)
        assert "PerformResponse" in reply, reply
