"""A node's own snapshots, built while Raft goes on.

When `--snapshot-threshold` entries were applied since the last snapshot,
applying is paused (`RawNode.pause_apply`) so the store stays at the index
the snapshot is taken at, and the store is serialised on a thread of its
own; meanwhile the driver goes on persisting, acknowledging, sending
heartbeats and voting. Once the bytes are ready, applying resumes and, at
the end of a round, the snapshot is recorded in the core, written and the
log compacted. Building a 1M-entity snapshot takes seconds; when the round
waited for it, every node reached the threshold together, none answered its
peers, and the leader stepped down for want of a quorum (bench scale: an
outage of ~1.3 s and failed writes).

`request(min_index)` asks for a snapshot at `min_index` or later (a backup,
`SnapshotSave`): the latest one if it is new enough, else one built now,
whatever the threshold says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from qcore.node.errors import RequestFailed
from qcore.node.options import NodeOptions
from qcore.node.state_machine import StateMachine
from qcore.node.stats import NodeStats
from qcore.raft import RawNode
from qcore.raft.types import Snapshot

log = logging.getLogger(__name__)


class OwnSnapshots:
    def __init__(
        self,
        opts: NodeOptions,
        raw: RawNode,
        state_machine: StateMachine,
        save: Callable[[Snapshot], Awaitable[None]],
        wake: Callable[[], None],
        stats: NodeStats,
    ) -> None:
        """`save` makes a snapshot durable and compacts the stored log
        (storage work, on the driver's storage thread); `wake` starts a
        driver round, to install a snapshot once it is built."""
        self._opts = opts
        self._raw = raw
        self._sm = state_machine
        self._save = save
        self._wake = wake
        self._stats = stats
        # Serialising the store: its own thread, so that the driver's
        # storage work never queues behind it.
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qcore-snap-{opts.id}")
        self.task: asyncio.Task[None] | None = None  # a build in progress
        self._built: tuple[int, bytes] | None = None
        self._failed_at = 0  # a failed build is retried a threshold later
        self._wanted: list[tuple[int, asyncio.Future[Snapshot]]] = []  # (min index, waiter)

    def request(self, min_index: int) -> "asyncio.Future[Snapshot]":
        """A snapshot at `min_index` or later (resolved in a driver round)."""
        fut: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        self._wanted.append((min_index, fut))
        self._wake()
        return fut

    def _serve_wanted(self) -> None:
        snap = self._raw.latest_snapshot
        keep = []
        for min_index, fut in self._wanted:
            if fut.done():
                continue
            if snap is not None and snap.meta.index >= min_index:
                fut.set_result(snap)
            else:
                keep.append((min_index, fut))
        self._wanted = keep

    def _fail_wanted(self, why: str) -> None:
        wanted, self._wanted = self._wanted, []
        for _, fut in wanted:
            if not fut.done():
                fut.set_exception(RequestFailed(why))

    def idle(self) -> bool:
        """Neither building a snapshot nor holding one to install."""
        return self.task is None and self._built is None

    async def step(self, applied: int, snapshot_index: int) -> int | None:
        """Once per driver round: install a snapshot that has been built, or
        start building one if enough entries were applied since the last.
        Returns the index of a snapshot installed now."""
        if self._built is not None:
            index, data = self._built
            self._built = None
            installed = await self._install(index, data)
            if self._wanted:
                self._serve_wanted()
            return installed
        if self._wanted:
            self._serve_wanted()
        since = max(snapshot_index, self._failed_at)
        wanted = bool(self._wanted) and applied > snapshot_index
        if self.task is not None or (applied - since < self._opts.snapshot_threshold and not wanted):
            return None
        self._raw.pause_apply(True)
        self.task = asyncio.create_task(self._build(applied), name=f"snapshot-{self._opts.id}")
        return None

    def shutdown(self) -> None:
        self._builder.shutdown(wait=False)  # a build in progress is simply dropped
        self._fail_wanted("node is shutting down")

    async def _build(self, index: int) -> None:
        build = self._sm.snapshot_builder()  # the store as of `index`
        try:
            t0 = time.perf_counter()
            data = await asyncio.get_running_loop().run_in_executor(self._builder, build)
            self._stats.snapshot_build.observe(time.perf_counter() - t0)
            self._built = (index, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("building a snapshot at index %d failed; applying goes on, the next attempt is due in %d entries",
                          index, self._opts.snapshot_threshold)
            self._failed_at = index
            self._fail_wanted(f"building a snapshot at index {index} failed (see the node's log)")
        finally:
            self._raw.pause_apply(False)
            self.task = None
            self._wake()

    async def _install(self, index: int, data: bytes) -> int | None:
        try:
            snap: Snapshot = self._raw.create_snapshot(index, data)
        except ValueError as exc:
            # A newer snapshot from the leader was installed meanwhile.
            log.info("dropping the snapshot built at index %d: %s", index, exc)
            return None
        await self._save(snap)
        self._raw.compact(max(0, index - self._opts.snapshot_keep))
        self._stats.snapshots += 1
        self._stats.snapshot_bytes = len(data)
        log.info("took snapshot at index %d (%d bytes)", index, len(data))
        return index
