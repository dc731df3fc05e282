"""A real node whose log holds a committed entry of a level above its own
(qcore.node.entries) stops on it: one CRITICAL line naming the entry and
both levels, exit code 78, and the same again at every restart, since the
entry stays in the log unapplied (fail-stop rather than diverge)."""

from __future__ import annotations

import asyncio

import orjson

from qcore.node.driver import EXIT_NEEDS_UPGRADE
from qcore.node.entries import ENTRY_LEVEL
from qcore.raft.types import Entry, HardState
from qcore.storage import FileStorage
from tests.node.harness import Conn, wait_serving


async def test_a_node_stops_at_an_entry_it_is_too_old_to_apply(nodes) -> None:
    n = nodes(1).start()
    await wait_serving(n)
    c = await Conn.open(n.addr)
    assert (await c.call("Init", nodes=[]))["InitResponse"]["response"] == "Ok"
    r = await c.perform({"CreateEntity": {"entity_type": "Object", "parent_id": None, "name": "before"}})
    assert r["CreateEntity"]["error"] is None, r
    await c.close()
    assert n.terminate() == 0

    # A newer build's leader wrote and committed the next entry (as its WAL holds it).
    storage = FileStorage(n.data_dir)
    state = storage.recover()
    last = state.entries[-1].index
    data = orjson.dumps({"t": [1_800_000_000, 0], "v": ENTRY_LEVEL + 1, "c": [
        ["9:newer", 1, {"CreateEntity": {"entity_type": "Object", "parent_id": None, "name": "future"}}]]})
    hs = state.hard_state
    storage.save(HardState(hs.term, hs.vote, last + 1), [Entry(hs.term, last + 1, data=data)], None, True)
    storage.close()

    line = (f"log entry {last + 1} needs qcore semantics level {ENTRY_LEVEL + 1}; this node supports up to "
            f"{ENTRY_LEVEL}: upgrade this node; stopping the node (exit {EXIT_NEEDS_UPGRADE})")
    for attempt in (1, 2):  # and again after a restart: the entry is still there, still not applied
        n.start()
        assert n.proc is not None
        code = await asyncio.to_thread(n.proc.wait, 60)
        assert code == EXIT_NEEDS_UPGRADE == 78, n.log_tail()
        text = n.log_path.read_text()
        assert text.count(line) == attempt, n.log_tail()
        critical = [ln for ln in text.splitlines() if "CRITICAL" in ln]
        assert len(critical) == attempt and all(ln.endswith(line) for ln in critical), critical
    assert "Traceback" not in n.log_path.read_text()


async def test_a_node_records_the_level_each_peers_latest_raft_link_declares(tmp_path) -> None:
    """A node in this process, peers' Raft links over real WebSockets: the level a link
    declares (`&level=N` on /raft; none: a build before levels, level 1) is what the node's
    core counts that peer at, the latest link's; and its own links declare this build's."""
    from websockets.asyncio.client import connect

    from qcore.local_procs import free_ports
    from qcore.node.options import NodeOptions
    from qcore.node.server import Node

    port, = free_ports(1)
    node = Node(NodeOptions(id=1, ws_addr=f"127.0.0.1:{port}", data_dir=tmp_path, init=True))
    await node.start()
    try:
        level_of = node.driver.replica._declared_level  # noqa: SLF001 (what the core is told)
        assert level_of(2) is None  # never heard from
        for query, level in (("&level=2", 2), ("", 1), ("&level=x", 1), (f"&level={ENTRY_LEVEL}", ENTRY_LEVEL)):
            async with connect(f"ws://127.0.0.1:{port}/raft?from=2&addr=127.0.0.1:1{query}"):
                await node.driver.wait_for(lambda level=level: level_of(2) == level, 5)
                assert level_of(2) == level
        assert level_of(2) == ENTRY_LEVEL  # kept after the link closed
        assert f"&level={ENTRY_LEVEL}&" in node.transport.raft_path() + "&"
    finally:
        await node.stop()
