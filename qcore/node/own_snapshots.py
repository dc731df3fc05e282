"""A node's own snapshots, built while Raft goes on.

When `snapshot_threshold` entries, or `snapshot_threshold_bytes` bytes of
log, were applied since the last snapshot, the application hands over a
builder holding a copy of its state at the applied index (taken within the
round, so it cannot move), and the runtime serialises it off the round
(`start_build`; the asyncio driver uses a thread of its own, the simulator
a few ticks of simulated time); meanwhile the node goes on applying,
answering, persisting, acknowledging and voting, so that a large store's
seconds of serialising cost neither writes nor the cluster's quorum. Once
the bytes are handed back (`built`), at the end of a round, the snapshot is
recorded in the core (at its index, behind the applied one by now), saved
by the runtime and the log compacted (`saved`). One build runs at a time.
Sans-I/O: no threads, no clock here.

`request(min_index, waiter)` asks for a snapshot at `min_index` or later (a
backup, `SnapshotSave`): the latest one if it is new enough, else one built
now, whatever the threshold says.

The byte bound keeps the log's memory in proportion to what was written
rather than to how many entries it took (a batched entry holds up to a
thousand commands), and a smaller state snapshots after fewer bytes (see
LOG_BYTES_PER_ITEM); after a snapshot, the log behind it keeps
`snapshot_keep` entries but no more than `snapshot_keep_bytes` (nor a
quarter of the byte threshold).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Protocol

from qcore.node.errors import RequestFailed
from qcore.node.stats import NodeStats
from qcore.node.waiting import Waiter
from qcore.raft import RawNode
from qcore.raft.types import Snapshot

log = logging.getLogger(__name__)

Builder = Callable[[], bytes]
# make_builder(copy): a Builder of the state now. copy=True: it holds a copy,
# safe to run while applying goes on (a thread, simulated ticks); copy=False:
# it reads the live state, for a runtime that froze it (a forked child).
MakeBuilder = Callable[[bool], Builder]

# A state of n items (entities) snapshots after at most 64 * n bytes of log
# (between 8 MiB and snapshot_threshold_bytes): building a snapshot costs
# ~2 us per entity, so this spends about as much time on snapshots per byte
# written whatever the state's size, and the log a node holds stays ~64
# bytes per entity or less.
LOG_BYTES_PER_ITEM = 64
MIN_THRESHOLD_BYTES = 8 << 20


class SnapshotPolicy(Protocol):
    snapshot_threshold: int  # applied entries between two snapshots
    snapshot_keep: int  # entries kept in memory behind a snapshot, for slow followers
    snapshot_threshold_bytes: int  # ... or at most this many applied log bytes between them
    snapshot_keep_bytes: int  # ... and at most this many bytes of them kept


class OwnSnapshots:
    def __init__(
        self, opts: SnapshotPolicy, raw: RawNode, start_build: Callable[[int, MakeBuilder], None], stats: NodeStats
    ) -> None:
        """`start_build(index, make_builder)` makes, within the round, a
        builder of the application as of `index` and runs it away from the
        round; the bytes go to `built`."""
        self._opts = opts
        self._raw = raw
        self._start_build = start_build
        self._stats = stats
        self.building: int | None = None  # the index of a build in progress
        self._built: tuple[int, bytes] | None = None
        self._failed_at = 0  # a failed build is retried a threshold later
        self._wanted: list[tuple[int, Waiter]] = []  # (min index, waiter)
        self._bytes_mark = 0  # applied log bytes when the last build started (or failed)
        self._threshold = MIN_THRESHOLD_BYTES  # log bytes between snapshots, for the state's size now
        # (applied index, applied log bytes) once per round that applied
        # something: where the log behind a snapshot passes keep_bytes.
        self._marks: deque[tuple[int, int]] = deque(maxlen=65_536)

    def request(self, min_index: int, waiter: Waiter) -> None:
        """`waiter` gets a snapshot at `min_index` or later (served in a round)."""
        self._wanted.append((min_index, waiter))

    def _serve_wanted(self) -> None:
        snap = self._raw.latest_snapshot
        keep = []
        for min_index, waiter in self._wanted:
            if waiter.done():
                continue
            if snap is not None and snap.meta.index >= min_index:
                waiter.set_result(snap)
            else:
                keep.append((min_index, waiter))
        self._wanted = keep

    def fail_wanted(self, why: str) -> None:
        wanted, self._wanted = self._wanted, []
        for _, waiter in wanted:
            if not waiter.done():
                waiter.set_exception(RequestFailed(why))

    def idle(self) -> bool:
        """Neither building a snapshot nor holding one to install."""
        return self.building is None and self._built is None

    def step(self, applied: int, snapshot_index: int, make_builder: MakeBuilder,
             applied_bytes: int = 0, size: int = 0) -> Snapshot | None:
        """Once per round: a snapshot built meanwhile, recorded in the core,
        for the runtime to save (then `saved`); or start building one if
        enough entries (or `applied_bytes`, the log payload applied so far,
        for a state of `size` items) were applied since the last."""
        if not self._marks or self._marks[-1][0] < applied:
            self._marks.append((applied, applied_bytes))
        cap = self._opts.snapshot_threshold_bytes
        self._threshold = min(cap, max(MIN_THRESHOLD_BYTES, LOG_BYTES_PER_ITEM * size))
        if self._built is not None:
            index, data = self._built
            self._built = None
            try:
                return self._raw.create_snapshot(index, data)
            except ValueError as exc:
                # A newer snapshot from the leader was installed meanwhile.
                log.info("dropping the snapshot built at index %d: %s", index, exc)
                if self._wanted:
                    self._serve_wanted()
                return None
        if self._wanted:
            self._serve_wanted()
        since = max(snapshot_index, self._failed_at)
        wanted = bool(self._wanted) and applied > snapshot_index
        due = (applied - since >= self._opts.snapshot_threshold
               or (applied_bytes - self._bytes_mark >= self._threshold > 0 and applied > since))
        if self.building is not None or not (due or wanted):
            return None
        self._bytes_mark = applied_bytes
        self.building = applied
        self._start_build(applied, make_builder)
        return None

    def built(self, index: int, data: bytes | None) -> None:
        """The build at `index` finished (`data` None: it failed)."""
        if self.building != index:
            return
        self.building = None
        if data is None:
            log.error("building a snapshot at index %d failed; applying goes on, the next attempt is due in %d entries",
                      index, self._opts.snapshot_threshold)
            self._failed_at = index
            self.fail_wanted(f"building a snapshot at index {index} failed (see the node's log)")
        else:
            self._built = (index, data)

    def saved(self, snap: Snapshot) -> int:
        """`snap` is durable: drop the log behind it. Returns its index."""
        index = snap.meta.index
        self._raw.compact(self._keep_from(index))
        self._stats.snapshots += 1
        self._stats.snapshot_bytes = len(snap.data)
        log.info("took snapshot at index %d (%d bytes)", index, len(snap.data))
        if self._wanted:
            self._serve_wanted()
        return index

    def _keep_from(self, index: int) -> int:
        """Where to compact the log behind a snapshot at `index` (built when
        `_bytes_mark` bytes were applied): keep `snapshot_keep` entries,
        but not more than about `snapshot_keep_bytes` of them, nor more
        than a quarter of what is applied between snapshots."""
        floor = max(0, index - self._opts.snapshot_keep)
        keep_bytes = min(self._opts.snapshot_keep_bytes, self._threshold // 4)
        for i, b in reversed(self._marks):
            if i <= index and self._bytes_mark - b >= keep_bytes:
                floor = max(floor, i)
                break
        while self._marks and self._marks[0][0] < floor:
            self._marks.popleft()
        return floor
