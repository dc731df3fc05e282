"""A node keeps taking part in Raft while it builds a snapshot
(qcore.node.own_snapshots run by the replica, qcore.raft RawNode.pause_apply).

Three RaftDrivers in one event loop over in-memory storage, wired by the
in-process network of test_forwarded_writes. Follower 2's store blocks in
`snapshot()` until the test lets it go, standing in for the seconds a
million-entity store takes to serialise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest

from qcore.node.driver import RaftDriver
from qcore.raft.types import Message
from qcore.store import Store
from tests.node.test_forwarded_writes import _cluster, _command, _stop


def _gate(store: Store) -> tuple[threading.Event, threading.Event]:
    """Make `store.snapshot()` wait for the returned `release` event; the
    `started` event is set when it begins."""
    started, release = threading.Event(), threading.Event()

    class GatedStore(Store):
        __slots__ = ()

        def snapshot(self) -> bytes:
            started.set()
            assert release.wait(10), "the test never released the snapshot"
            return super().snapshot()

    store.__class__ = GatedStore
    return started, release


async def _start_building(follower: RaftDriver, leader: RaftDriver, started: threading.Event) -> int:
    """Make `follower` start a snapshot; returns the index it is taken at."""
    follower.replica.opts.snapshot_threshold = 3  # noqa: SLF001
    for i in range(3):
        await asyncio.wait_for(leader.propose_command(*_command(f"before-{i}")), 5)
    assert await follower.wait_for(started.is_set, 5), "the follower never started a snapshot"
    # One build is what the tests follow: with the threshold left at 3, the
    # follower could start another as soon as it has applied three of the
    # entries it acknowledged meanwhile (before it learns the last commit),
    # and move its snapshot index past the build under test.
    follower.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001
    return follower.applied


async def test_a_follower_building_a_snapshot_still_acknowledges_and_resumes_applying(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    leader, follower = drivers[1], drivers[2]
    started, release = _gate(follower.replica._app.store)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        at = await _start_building(follower, leader, started)
        # Cut node 3 off: from now on every commit needs node 2's acknowledgement.
        net.drop = lambda m: 3 in (m.to, m.frm)
        for i in range(5):
            reply = await asyncio.wait_for(leader.propose_command(*_command(f"during-{i}")), 5)
            assert reply["CreateEntity"]["error"] is None
        assert follower.persisted_index >= leader.applied  # it wrote and acknowledged them...
        assert follower.applied == at  # ...but applied nothing while its store was being copied
        assert follower.snapshot_index < at
        release.set()
        assert await follower.wait_for(lambda: follower.snapshot_index == at and follower.applied == leader.applied, 5)
        assert follower.is_leader() is False and leader.is_leader()
    finally:
        release.set()
        await _stop(drivers)


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
        assert await leader.wait_for(lambda: leader.snapshot_index > at, 5)
        leader.replica.opts.snapshot_threshold = 10**9  # noqa: SLF001
        target = leader.snapshot_index
        net.drop = lambda m: False
        assert await follower.wait_for(lambda: follower.applied >= target, 10)
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
