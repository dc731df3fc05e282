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
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from qcore.node.options import NodeOptions
from qcore.node.state_machine import StateMachine
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
    ) -> None:
        """`save` makes a snapshot durable and compacts the stored log
        (storage work, on the driver's storage thread); `wake` starts a
        driver round, to install a snapshot once it is built."""
        self._opts = opts
        self._raw = raw
        self._sm = state_machine
        self._save = save
        self._wake = wake
        # Serialising the store: its own thread, so that the driver's
        # storage work never queues behind it.
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qcore-snap-{opts.id}")
        self.task: asyncio.Task[None] | None = None  # a build in progress
        self._built: tuple[int, bytes] | None = None
        self._failed_at = 0  # a failed build is retried a threshold later

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
            return await self._install(index, data)
        since = max(snapshot_index, self._failed_at)
        if self.task is not None or applied - since < self._opts.snapshot_threshold:
            return None
        self._raw.pause_apply(True)
        self.task = asyncio.create_task(self._build(applied), name=f"snapshot-{self._opts.id}")
        return None

    def shutdown(self) -> None:
        self._builder.shutdown(wait=False)  # a build in progress is simply dropped

    async def _build(self, index: int) -> None:
        build = self._sm.snapshot_builder()  # the store as of `index`
        try:
            data = await asyncio.get_running_loop().run_in_executor(self._builder, build)
            self._built = (index, data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("building a snapshot at index %d failed; applying goes on, the next attempt is due in %d entries",
                          index, self._opts.snapshot_threshold)
            self._failed_at = index
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
        log.info("took snapshot at index %d (%d bytes)", index, len(data))
        return index
