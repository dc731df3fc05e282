"""Writes made on a follower travel to the leader as forwarded batches
(`ForwardBatch`, refused with `BatchRefused`) and are answered from the
follower's own apply (qcore.node.replica, run by qcore.node.driver).

Three RaftDrivers run in one event loop over in-memory storage, wired by a
tiny in-process network that can hold back or drop messages, so the cases
where the leader refuses a batch or leadership changes under it are
deterministic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Callable

import pytest

from qcore.node.driver import RaftDriver
from qcore.node.entries import ENTRY_LEVEL
from qcore.node.errors import NotLeader, RequestFailed
from qcore.node.options import NodeOptions
from qcore.node.state_machine import StateMachine
from qcore.protocol.errors import Kind, retry_class
from qcore.protocol.values import decode_command_request, encode_load_config
from qcore.protocol.raft_codec import BatchRefused, ForwardBatch, PeerMessage
from qcore.raft import Config, RawNode
from qcore.raft.types import EntryType, Message, MessageType
from qcore.storage import MemoryStorage
from qcore.store.config import load_config

REPO = Path(__file__).resolve().parents[2]
ADDRESSES = {1: "n1", 2: "n2", 3: "n3"}


class Net:
    """Delivers messages between drivers on the next loop iteration; a
    filter may drop them (it sees every message first)."""

    def __init__(self) -> None:
        self.drivers: dict[int, RaftDriver] = {}
        self.drop: Callable[[PeerMessage], bool] = lambda m: False
        self.seen: list[PeerMessage] = []

    def sender(self) -> Callable[[Sequence[PeerMessage]], None]:
        def send(msgs: Sequence[PeerMessage]) -> None:
            loop = asyncio.get_running_loop()
            for msg in msgs:
                self.seen.append(msg)
                if self.drop(msg) or msg.to not in self.drivers:
                    continue
                loop.call_soon(self.drivers[msg.to].step, msg)

        return send


def _command(name: str) -> tuple[dict[str, Any], Any]:
    request = {"CreateEntity": {"entity_type": "Object", "parent_id": None, "name": name}}
    return request, decode_command_request(request)


async def _cluster(tmp_path: Path, levels: dict[int, int] | None = None) -> tuple[Net, dict[int, RaftDriver]]:
    """Three drivers, node 1 the leader. `levels`: the semantics level each node declares to
    the others (as on its Raft link; a node left out declares none); by default all this build's."""
    net = Net()
    declared = dict.fromkeys(ADDRESSES, ENTRY_LEVEL) if levels is None else levels
    config_json = encode_load_config(load_config(REPO / "schemas.yaml"))
    for nid in ADDRESSES:
        opts = NodeOptions(id=nid, ws_addr=ADDRESSES[nid], data_dir=tmp_path / str(nid), tick_ms=10,
                           election_ticks=10, request_timeout=5.0)
        raw = RawNode(Config(id=nid, election_tick=10, heartbeat_tick=1, pre_vote=True, check_quorum=True),
                      rng=random.Random(nid))
        driver = RaftDriver(opts, raw, MemoryStorage(), StateMachine(), net.sender(), declared_level=declared.get)
        net.drivers[nid] = driver
        driver.start()
        await driver.bootstrap(ADDRESSES, config_json)
    net.drivers[1].replica.campaign()
    net.drivers[1]._wake.set()  # noqa: SLF001 (the test drives the core)
    leader = net.drivers[1]
    assert await leader.wait_for(lambda: leader.is_leader() and leader.applied >= 2, 5)
    for d in net.drivers.values():
        assert await d.wait_for(lambda d=d: d.leader_id() == 1 and d.applied >= leader.applied, 5)
    return net, net.drivers


async def _stop(drivers: dict[int, RaftDriver]) -> None:
    for d in drivers.values():
        await d.stop()


async def test_follower_write_is_answered_from_its_own_apply(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        request, command = _command("from-follower")
        response = await asyncio.wait_for(drivers[2].propose_command(request, command), 5)
        assert response["CreateEntity"]["error"] is None
        created = response["CreateEntity"]["response"]
        # The leader applied the same entry, and sent no reply frame for it:
        # the follower answered from its own apply.
        assert drivers[1].applied == drivers[2].applied
        forwards = [m for m in net.seen if type(m) in (ForwardBatch, BatchRefused)]
        assert [(type(m), m.frm, m.to) for m in forwards] == [(ForwardBatch, 2, 1)]
        # Every node holds the entity the follower was told about.
        for d in drivers.values():
            await d.wait_for(lambda d=d: d.applied >= drivers[2].applied, 5)
            store = d.replica._app.store  # type: ignore[attr-defined]  # noqa: SLF001
            assert store.query(decode_command_request({"EntityExists": {"entity_id": created}})).response is True
    finally:
        await _stop(drivers)


async def test_leader_tells_the_follower_its_batch_committed_without_holding_back(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        drivers[1].replica._notices._delay = 3600  # noqa: SLF001 (held notices never go out by timer here)
        request, command = _command("told-at-once")
        await asyncio.wait_for(drivers[2].propose_command(request, command), 5)
        index = drivers[2].applied
        told = [m for m in net.seen
                if type(m) is Message and m.type == MessageType.APP and m.to == 2 and not m.entries and m.commit >= index]
        assert told, "the commit of node 2's batch reached it only by a heartbeat or timer"
    finally:
        await _stop(drivers)


async def test_batch_for_a_stale_term_is_refused_and_safe_to_retry(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        # Make the follower name a term the leader is not in: the leader
        # must not append the batch, and must say so.
        follower = drivers[3]
        original = net.sender()

        def rewrite(msgs: Sequence[PeerMessage]) -> None:
            original([dataclasses.replace(m, term=m.term + 7) if type(m) is ForwardBatch else m for m in msgs])

        follower.replica._send = rewrite  # noqa: SLF001
        before = drivers[1].raw.term
        request, command = _command("stale")
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(follower.propose_command(request, command), 5)
        assert (info.value.kind, retry_class(info.value.kind)) == (Kind.UNAVAILABLE, "definite"), str(info.value)
        refusals = [m for m in net.seen if type(m) is BatchRefused]
        assert [(m.frm, m.to, m.term) for m in refusals] == [(1, 3, before + 7)]
        # Nothing was appended for it anywhere.
        await asyncio.sleep(0)
        assert all(d.replica._local_cmds == {} for d in drivers.values())  # noqa: SLF001
    finally:
        await _stop(drivers)


async def test_batch_lost_with_its_leader_fails_as_not_applied(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        # The leader never receives the follower's batch; then node 2 is
        # elected. Once node 3 applies an entry of the new term, its batch
        # (sent at the old term) provably never committed.
        net.drop = lambda m: type(m) is ForwardBatch
        old_term = drivers[3].raw.term
        request, command = _command("lost")
        fut = drivers[3].propose_command(request, command)
        await asyncio.sleep(0.01)
        assert not fut.done()
        drivers[1].transfer_leader(2)
        await drivers[2].wait_for(lambda: drivers[2].is_leader(), 5)
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(fut, 5)
        assert (info.value.kind, retry_class(info.value.kind)) == (Kind.UNAVAILABLE, "definite"), str(info.value)
        assert drivers[3].raw.term > old_term
        # A new write from node 3 now goes to node 2 and succeeds.
        net.drop = lambda m: False
        request, command = _command("after")
        response = await asyncio.wait_for(drivers[3].propose_command(request, command), 5)
        assert response["CreateEntity"]["error"] is None
    finally:
        await _stop(drivers)


async def test_no_reachable_leader_is_not_leader(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        drivers[2].replica._reachable = lambda peer: False  # noqa: SLF001
        request, command = _command("nowhere")
        with pytest.raises(NotLeader):
            await asyncio.wait_for(drivers[2].propose_command(request, command), 5)
    finally:
        await _stop(drivers)


async def test_a_batch_of_a_newer_level_is_refused_and_nothing_stops(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A follower of a newer build (mid-upgrade: followers first) forwards a batch of a semantics
    level the leader does not know (qcore.node.entries). Appended, it would stop the leader and
    every node of its build when applied; the leader refuses it instead, as a definite failure."""
    import orjson

    from qcore.node import driver as driver_module

    stopped: list[str] = []
    monkeypatch.setattr(driver_module, "stop_process", lambda code, what, trace=True: stopped.append(what))
    net, drivers = await _cluster(tmp_path)
    try:
        follower = drivers[3]
        original = net.sender()

        def newer(m: PeerMessage) -> PeerMessage:
            if type(m) is not ForwardBatch:
                return m
            batch = orjson.loads(m.data)
            batch["v"] = ENTRY_LEVEL + 1
            return dataclasses.replace(m, data=orjson.dumps(batch))

        follower.replica._send = lambda msgs: original([newer(m) for m in msgs])  # noqa: SLF001
        applied = drivers[1].applied
        request, command = _command("from a newer build")
        with pytest.raises(RequestFailed) as info:
            await asyncio.wait_for(follower.propose_command(request, command), 5)
        assert retry_class(info.value.kind) == "definite", str(info.value)
        assert [(m.frm, m.to) for m in net.seen if type(m) is BatchRefused] == [(1, 3)]
        # the leader goes on, and takes writes of its own level
        request, command = _command("from the leader")
        response = await asyncio.wait_for(drivers[1].propose_command(request, command), 5)
        assert response["CreateEntity"]["error"] is None
        assert drivers[1].applied == applied + 1 and stopped == []
    finally:
        await _stop(drivers)


def _entries(driver: RaftDriver) -> list[dict[str, Any]]:
    """The batches in a driver's log (its NORMAL entries' payloads), decoded."""
    import orjson

    return [orjson.loads(e.data) for e in driver._storage.recover().entries  # noqa: SLF001
            if e.type == EntryType.NORMAL and e.data]


async def test_a_leader_writes_and_lowers_forwarded_batches_to_the_level_every_member_declared(
        tmp_path: Path) -> None:
    """Node 3 declared level 1 (a build before levels, mid-upgrade), so the leader proposes at
    level 1, its own writes and the level-2 batches of follower 2 (which knows only the
    leader's level) alike: every node applies them by the same rules, node 3 included."""
    import orjson

    net, drivers = await _cluster(tmp_path, {1: ENTRY_LEVEL, 2: ENTRY_LEVEL, 3: 1})
    try:
        for nid, name in ((1, "by the leader"), (2, "by a follower")):
            request, command = _command(name)
            response = await asyncio.wait_for(drivers[nid].propose_command(request, command), 5)
            assert response["CreateEntity"]["error"] is None
        forwarded = [orjson.loads(m.data) for m in net.seen if type(m) is ForwardBatch]
        assert [b["v"] for b in forwarded] == [ENTRY_LEVEL]  # the follower's batch, at the leader's level
        for d in drivers.values():
            assert await d.wait_for(lambda d=d: d.applied >= drivers[1].applied, 5)
            written = [b for b in _entries(d) if "c" in b and b["c"]]
            assert [b["c"][0][2]["CreateEntity"]["name"] for b in written] == ["by the leader", "by a follower"]
            assert ["v" in b for b in written] == [False, False]  # level 1: as a build before levels writes
        assert drivers[1].entry_level() == 1 and drivers[2].entry_level() == ENTRY_LEVEL
    finally:
        await _stop(drivers)


async def test_followers_forward_level_1_batches_to_a_leader_that_declared_no_level(tmp_path: Path) -> None:
    """The first upgrade from a build before levels: its leader declares no level and appends a
    forwarded batch as it is, so a follower of this build writes its batches at level 1, which
    the old leader and every old node apply as this build's nodes do. Once every member declared
    this build's level, the leader writes at it."""
    import orjson

    net, drivers = await _cluster(tmp_path, {2: ENTRY_LEVEL, 3: ENTRY_LEVEL})
    try:
        request, command = _command("to an old leader")
        response = await asyncio.wait_for(drivers[2].propose_command(request, command), 5)
        assert response["CreateEntity"]["error"] is None
        assert ["v" in orjson.loads(m.data) for m in net.seen if type(m) is ForwardBatch] == [False]
        assert drivers[2].entry_level() == 1
    finally:
        await _stop(drivers)


async def test_the_leader_writes_at_this_builds_level_only_once_every_member_declared_it(tmp_path: Path) -> None:
    declared: dict[int, int] = {1: ENTRY_LEVEL, 2: ENTRY_LEVEL}
    net, drivers = await _cluster(tmp_path, declared)
    try:
        leader = drivers[1]
        init = _entries(leader)[0]
        assert "init" in init and "v" not in init  # written with no member heard from: level 1 with three
        for name, level in (("node 3 unheard of", 1), ("node 3 declared", ENTRY_LEVEL)):
            if level == ENTRY_LEVEL:
                declared[3] = ENTRY_LEVEL
            request, command = _command(name)
            response = await asyncio.wait_for(leader.propose_command(request, command), 5)
            assert response["CreateEntity"]["error"] is None
            assert _entries(leader)[-1].get("v", 1) == level
            assert leader.entry_level() == level
    finally:
        await _stop(drivers)


async def test_a_new_leader_writes_no_lower_than_the_entries_it_holds_unapplied(tmp_path: Path) -> None:
    """Node 2 is elected holding a level-2 entry it does not know is committed (so has not
    applied), while node 3 counts as level 1 (down, then back with no declaration yet). The new
    leader commits that entry before its own, so its own are not written back at level 1: the
    floor of entries.proposal_level covers the log a leader holds unapplied, not only what it applied."""
    vote_types = (MessageType.PRE_VOTE, MessageType.VOTE)
    declared: dict[int, int] = {1: ENTRY_LEVEL, 2: ENTRY_LEVEL}
    net, drivers = await _cluster(tmp_path, declared)
    try:
        assert drivers[1].entry_level() == 1 and drivers[2].replica._app.applied_level == 1  # noqa: SLF001
        declared[3] = ENTRY_LEVEL  # every member at this build's level: node 1 writes at it
        net.drop = lambda m: m.to == 3 or (m.frm == 2 and m.to == 1)  # node 2 stores it; nothing commits
        request, command = _command("level 2, not known committed")
        unsettled = [drivers[1].propose_command(request, command)]  # settled only when the nodes stop
        assert await drivers[2].wait_for(lambda: _entries(drivers[2])[-1].get("v") == ENTRY_LEVEL, 5)
        assert drivers[2].replica._app.applied_level == 1  # noqa: SLF001

        del declared[3]  # node 3 went down and is back, with no level declared yet
        net.drop = lambda m: (1 in (m.frm, m.to)  # node 1 cut off; node 2 wins node 3's vote, commits nothing
                              or (m.frm == 2 and not (type(m) is Message and m.type in vote_types)))
        assert await drivers[2].wait_for(drivers[2].is_leader, 10)
        request, command = _command("by the new leader")
        unsettled.append(drivers[2].propose_command(request, command))

        def newest() -> dict[str, Any]:
            return _entries(drivers[2])[-1]

        assert await drivers[2].wait_for(lambda: newest()["c"][0][2]["CreateEntity"]["name"] == "by the new leader", 5)
        assert drivers[2].replica._app.applied_level == 1  # noqa: SLF001 (the level-2 entry: still unapplied)
        assert newest().get("v") == ENTRY_LEVEL and drivers[2].entry_level() == ENTRY_LEVEL
    finally:
        await _stop(drivers)
    assert all(isinstance(f.exception(), RequestFailed) for f in unsettled)  # "node is shutting down"
