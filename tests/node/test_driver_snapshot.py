"""A node keeps taking part in Raft, and keeps applying and answering,
while it builds a snapshot (qcore.node.own_snapshots run by the replica;
the builder serialises a `Store.clone()` taken at the snapshot's index).

Three RaftDrivers in one event loop over in-memory storage, wired by the
in-process network of test_forwarded_writes. A node's store (and so its
clone) blocks in `snapshot()` until the test lets it go, standing in for
the seconds a million-entity store takes to serialise.
"""

from __future__ import annotations

import asyncio
import os
import logging
import threading
from pathlib import Path

import pytest

from qcore.node import snapshot_child
from qcore.node.driver import RaftDriver
from qcore.node.state_machine import StateMachine
from qcore.protocol.values import decode_command_request
from qcore.raft.types import Message
from qcore.store import Store
from tests.node.test_forwarded_writes import _cluster, _command, _stop


def _gate(store: Store) -> tuple[threading.Event, threading.Event]:
    """Make `store.snapshot()` (and its clones') wait for the returned
    `release` event; the `started` event is set when it begins."""
    started, release = threading.Event(), threading.Event()

    class GatedStore(Store):
        __slots__ = ()

        def snapshot(self, consume: bool = False) -> bytes:
            started.set()
            assert release.wait(10), "the test never released the snapshot"
            return super().snapshot(consume)

    store.__class__ = GatedStore
    return started, release


async def _start_building(node: RaftDriver, leader: RaftDriver, started: threading.Event) -> int:
    """Make `node` start a snapshot; returns the index it is taken at."""
    node._opts.snapshot_build = "thread"  # noqa: SLF001 (the gate is an event of this process)
    node.replica.opts.snapshot_threshold = 3  # noqa: SLF001
    for i in range(3):
        await asyncio.wait_for(leader.propose_command(*_command(f"before-{i}")), 5)
    assert await node.wait_for(started.is_set, 5), "the node never started a snapshot"
    # One build is what the tests follow: with the threshold left at 3, the
    # node could start another once the build under test is done, and move
    # its snapshot index past it.
    node.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001
    building = node.replica._snapshots.building  # noqa: SLF001
    assert building is not None
    return building


def _exists(store: Store, entity: object) -> bool:
    return bool(store.query(decode_command_request({"EntityExists": {"entity_id": entity}})).response)


def _snapshot_store(node: RaftDriver) -> Store:
    """The store held by `node`'s latest snapshot."""
    snap = node.raw.latest_snapshot
    assert snap is not None
    sm = StateMachine()
    sm.restore(snap.data, snap.meta.index)
    return sm.store


async def test_a_follower_building_a_snapshot_still_acknowledges_and_applies(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    leader, follower = drivers[1], drivers[2]
    started, release = _gate(follower.replica._app.store)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        at = await _start_building(follower, leader, started)
        # Cut node 3 off: from now on every commit needs node 2's acknowledgement.
        net.drop = lambda m: 3 in (m.to, m.frm)
        created = []
        for i in range(5):
            reply = await asyncio.wait_for(leader.propose_command(*_command(f"during-{i}")), 5)
            assert reply["CreateEntity"]["error"] is None
            created.append(reply["CreateEntity"]["response"])
        assert follower.persisted_index >= leader.applied  # it wrote and acknowledged them...
        # ...and applies them while its copy of the store is being serialised
        assert await follower.wait_for(lambda: follower.applied == leader.applied, 5)
        assert not release.is_set() and follower.replica._snapshots.building == at  # noqa: SLF001
        store = follower.replica._app.store  # type: ignore[attr-defined]  # noqa: SLF001
        assert all(_exists(store, e) for e in created)
        assert follower.snapshot_index < at
        release.set()
        assert await follower.wait_for(lambda: follower.snapshot_index == at, 5)
        # The snapshot holds the state at its index: none of the later writes.
        assert not any(_exists(_snapshot_store(follower), e) for e in created)
        assert follower.is_leader() is False and leader.is_leader()
    finally:
        release.set()
        await _stop(drivers)


async def test_a_leader_building_its_own_snapshot_answers_writes_meanwhile(tmp_path: Path) -> None:
    """The point of building from a clone: a leader's snapshot of a large
    store no longer stops its writes for the seconds serialising takes."""
    _, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    started, release = _gate(leader.replica._app.store)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        at = await _start_building(leader, leader, started)
        created = []
        for i in range(5):
            reply = await asyncio.wait_for(leader.propose_command(*_command(f"during-{i}")), 5)
            assert reply["CreateEntity"]["error"] is None
            created.append(reply["CreateEntity"]["response"])
        assert not release.is_set() and leader.replica._snapshots.building == at  # noqa: SLF001
        assert leader.applied > at
        store = leader.replica._app.store  # type: ignore[attr-defined]  # noqa: SLF001
        assert all(_exists(store, e) for e in created)
        release.set()
        assert await leader.wait_for(lambda: leader.snapshot_index == at, 5)
        assert not any(_exists(_snapshot_store(leader), e) for e in created)  # the state at its index
    finally:
        release.set()
        await _stop(drivers)


@pytest.mark.skipif(not snapshot_child.available(), reason="needs os.fork")
async def test_a_leader_building_in_a_child_answers_writes_and_a_stop_ends_the_child(tmp_path: Path) -> None:
    """The default build (a child forked in the round, serialising its image
    of the state): the leader applies and answers meanwhile, and a node
    stopped mid-build kills the child instead of waiting for it."""
    net, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    assert leader._opts.snapshot_build == "process"  # noqa: SLF001

    class Stuck(Store):  # the child never finishes: the test ends it
        __slots__ = ()

        def snapshot(self, consume: bool = False) -> bytes:
            threading.Event().wait()
            return b""

    leader.replica._app.store.__class__ = Stuck  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        leader.replica.opts.snapshot_threshold = 3  # noqa: SLF001
        for i in range(3):
            await asyncio.wait_for(leader.propose_command(*_command(f"before-{i}")), 5)
        assert await leader.wait_for(lambda: leader._child is not None, 5)  # noqa: SLF001
        leader.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001
        child = leader._child  # noqa: SLF001
        assert child is not None
        for i in range(5):
            reply = await asyncio.wait_for(leader.propose_command(*_command(f"during-{i}")), 5)
            assert reply["CreateEntity"]["error"] is None
        assert leader._child is child  # noqa: SLF001  (still building)
    finally:
        await _stop(drivers)
    try:  # the builder's thread reaps the child once it is killed
        await asyncio.wait_for(asyncio.to_thread(leader._builder.shutdown, True), 5)  # noqa: SLF001
    finally:
        gone = _gone(child.pid)
        child.kill()  # whatever happened, leave no process behind
    assert gone


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_a_snapshot_overtaken_by_the_leaders_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="qcore.node.own_snapshots")
    net, drivers = await _cluster(tmp_path)
    leader, follower = drivers[1], drivers[2]
    started, release = _gate(follower.replica._app.store)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        at = await _start_building(follower, leader, started)
        # The leader snapshots and compacts past everything node 2 has, and
        # node 2 misses the appends: it can only catch up by the snapshot.
        dropped_to_2: list[Message] = []
        net.drop = lambda m: m.to == 2 and not dropped_to_2.append(m)  # type: ignore[func-returns-value]
        leader.replica.opts.snapshot_threshold = 1  # noqa: SLF001
        leader.replica.opts.snapshot_keep = 0  # noqa: SLF001
        for i in range(3):
            await asyncio.wait_for(leader.propose_command(*_command(f"after-{i}")), 5)
        has = follower.persisted_index
        assert await leader.wait_for(lambda: leader.snapshot_index == leader.applied > has, 5)
        leader.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001
        target = leader.snapshot_index
        net.drop = lambda m: False
        assert await follower.wait_for(lambda: follower.applied >= target, 10)
        assert follower.replica.stats.snapshots_installed == 1
        release.set()  # the old build finishes after the newer snapshot was installed
        assert await follower.wait_for(follower.replica.snapshots_idle, 5)
        assert follower.snapshot_index >= target > at
        assert f"dropping the snapshot built at index {at}" in caplog.text
    finally:
        release.set()
        await _stop(drivers)


async def test_snapshots_are_due_by_log_bytes_and_keep_a_bounded_log(tmp_path: Path) -> None:
    """Batched entries can be large: the byte bounds, not only the entry
    counts, decide when a snapshot is taken and how much log stays behind it."""
    net, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    try:
        leader.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001 - never by entry count
        leader.replica.opts.snapshot_keep = 10**9  # noqa: SLF001 - keep everything by entry count...
        leader.replica.opts.snapshot_threshold_bytes = 2_000  # noqa: SLF001
        leader.replica.opts.snapshot_keep_bytes = 600  # noqa: SLF001 - ...but only ~600 bytes of it
        start = leader.snapshot_index
        for i in range(30):
            await asyncio.wait_for(leader.propose_command(*_command(f"bytes-{i}")), 5)
        assert await leader.wait_for(lambda: leader.snapshot_index > start, 5), "no snapshot by bytes"
        snap = leader.snapshot_index
        purged = leader.raw.status().purged
        assert 0 < snap - purged < 20  # a handful of ~100-byte entries kept, not all of them
    finally:
        await _stop(drivers)
