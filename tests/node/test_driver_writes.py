"""How the driver answers writes and where a leader fsyncs them
(qcore.node.driver: `propose_command(on_settled=...)`, `after_apply`,
`_persist`).

Three RaftDrivers in one event loop over in-memory storage, wired by the
in-process network of test_forwarded_writes.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from pathlib import Path
from typing import Any

from qcore.node.driver import RaftDriver
from qcore.node.errors import NotLeader
from qcore.storage import MemoryStorage
from tests.node.test_forwarded_writes import _cluster, _command, _stop


class RecordingStorage(MemoryStorage):
    """MemoryStorage that notes which thread makes entries durable."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.__dict__.update(inner.__dict__)
        self.durable_by: list[str] = []

    def save(self, hard_state: Any, entries: Any, snapshot: Any = None, sync: bool = False) -> None:
        super().save(hard_state, entries, snapshot, sync)
        if entries and sync:
            self.durable_by.append(threading.current_thread().name)


async def test_a_write_is_answered_inside_the_round_that_applies_it(tmp_path: Path) -> None:
    _, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    events: list[str] = []
    leader.after_apply = lambda: events.append("after_apply")
    try:
        request, command = _command("answered-at-once")

        def on_settled(fut: asyncio.Future[Any]) -> None:
            events.append("settled")
            assert fut.done() and fut.result()["CreateEntity"]["error"] is None

        fut = leader.propose_command(request, command, on_settled=on_settled)
        # An ordinary done-callback runs a loop iteration after the settle.
        fut.add_done_callback(lambda f: events.append("done-callback"))
        await asyncio.wait_for(fut, 5)
        await asyncio.sleep(0)
        settled = events.index("settled")
        assert events[settled + 1] == "after_apply"
        assert events.index("done-callback") > settled + 1
    finally:
        await _stop(drivers)


async def test_a_refused_write_reaches_on_settled_too(tmp_path: Path) -> None:
    net, drivers = await _cluster(tmp_path)
    try:
        follower = drivers[2]
        follower.replica._reachable = lambda peer: False  # noqa: SLF001 (the leader looks unreachable)
        settled: list[BaseException | None] = []
        request, command = _command("refused")
        fut = follower.propose_command(request, command, on_settled=lambda f: settled.append(f.exception()))
        await asyncio.wait_for(asyncio.wait([fut]), 5)
        assert len(settled) == 1 and isinstance(settled[0], NotLeader)
    finally:
        await _stop(drivers)


async def test_a_raising_on_settled_does_not_stop_the_apply(tmp_path: Path) -> None:
    _, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    try:
        def boom(fut: asyncio.Future[Any]) -> None:
            raise RuntimeError("caller bug")

        first = leader.propose_command(*_command("a"), on_settled=boom)
        second = leader.propose_command(*_command("b"))
        for fut in (first, second):
            assert (await asyncio.wait_for(fut, 5))["CreateEntity"]["error"] is None
    finally:
        await _stop(drivers)


async def test_an_answered_write_is_released_before_the_next_tick(tmp_path: Path) -> None:
    # A request held until the tick that checks timeouts is freed long
    # after its reply, with everything its callbacks hold: at 64 clients
    # that cost ~4 µs a request. The round that answers it lets go of it.
    _, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    released_at: list[int] = []
    settled_at: list[int] = []
    try:
        ref = weakref.ref(
            leader.propose_command(*_command("released"), on_settled=lambda f: settled_at.append(leader.tick_count)),
            lambda _: released_at.append(leader.tick_count),  # noqa: SLF001
        )
        assert await leader.wait_for(lambda: ref() is None, 5)
        assert released_at == settled_at
    finally:
        await _stop(drivers)


def _record(driver: RaftDriver) -> RecordingStorage:
    storage = RecordingStorage(driver.replica._storage)  # type: ignore[arg-type]  # noqa: SLF001
    driver.replica._storage = storage  # noqa: SLF001
    return storage


async def test_a_leader_fsyncs_on_its_loop_alone_or_busy(tmp_path: Path) -> None:
    # A hand-off to a worker thread cost more CPU than it overlapped (see
    # RaftDriver._persist): entries are made durable on the loop's thread.
    _, drivers = await _cluster(tmp_path)
    leader = drivers[1]
    storage = _record(leader)
    try:
        await asyncio.wait_for(leader.propose_command(*_command("alone")), 5)
        assert storage.durable_by == [threading.current_thread().name]
        # Proposed together, they form one batch with many clients waiting.
        futs = [leader.propose_command(*_command(f"busy-{i}")) for i in range(10)]
        await asyncio.wait_for(asyncio.gather(*futs), 5)
        assert len(storage.durable_by) >= 2
        assert set(storage.durable_by) == {threading.current_thread().name}
    finally:
        await _stop(drivers)
