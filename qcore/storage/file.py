"""`FileStorage`: one node's data directory, durable across kill -9 and power loss.

Layout of the data dir (see docs/storage.md for the reasons):

    LOCK                               flock'ed while a process uses the dir
    wal-<segno:016x>.log               the write-ahead log, in segments
    snap-<index:016x>-<term:016x>.snap the current snapshot (at most one after cleanup)
    wal-*.tmp, snap-*.tmp              being written; deleted at start-up

Every `save()` appends ONE frame (entries and hard state together) and
fsyncs ONCE. A segment is either a *checkpoint* (it starts a new log: base
snapshot, hard state, every live entry) or a *continuation* of the previous
one. Recovery replays from the newest checkpoint; anything older is
garbage from before the last snapshot. New segments are written as `.tmp`,
fsynced and renamed, so a segment that exists is whole from its start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import NoReturn

from qcore.raft.types import Entry, HardState, Snapshot

from .base import RecoveredState
from .codec import (
    KIND_CHECKPOINT,
    KIND_CONTINUATION,
    encode_entries,
    encode_hard_state,
    encode_segment_header,
    frame_header,
)
from .errors import DataDirDamaged, StorageError
from .fs import FileSystem, lock_dir, unlock_dir
from .layout import remove_obsolete, wal_name
from .logstate import LogReads, LogState
from .recovery import recover_dir
from .snapfile import file_size, read_snapshot, write_snapshot

logger = logging.getLogger(__name__)

SEGMENT_BYTES = 64 << 20  # start a new segment once the current one is this big
PREALLOC_BYTES = 4 << 20  # zeros written ahead of the log's end, so appends overwrite
PENDING_LIMIT = 1 << 20  # unsynced records are written (and fsynced) beyond this
class FileStorage(LogReads):
    """The durable Raft log, hard state and snapshots of one data directory.

    Not thread-safe: one caller at a time (the runtime's Raft task, possibly
    through `asyncio.to_thread`, since `save()` blocks on fsync).
    Entries passed to `save()` are kept by reference, not copied.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        segment_bytes: int = SEGMENT_BYTES,
        fs: FileSystem | None = None,
        prealloc_bytes: int = PREALLOC_BYTES,
    ) -> None:
        self._dir = os.path.abspath(os.fspath(data_dir))
        self._fs = fs if fs is not None else FileSystem()
        self._segment_bytes = segment_bytes
        self._prealloc_bytes = prealloc_bytes
        self._state = LogState()
        self._pending: list[bytes] = []  # records of sync=False saves, not yet written
        self._pending_bytes = 0
        self._fd = -1
        self._segno = 0
        self._seg_size = 0  # where the next frame goes in the current segment
        self._alloc_end = 0  # the current segment file's size (zeros beyond _seg_size)
        self._sealed_bytes = 0  # the sizes of the live segments before the current one
        self._snap_bytes = 0  # the size of the current snapshot's file
        self._next_seq = 1
        self._snap_name: str | None = None
        self._loaded_snapshot: Snapshot | None = None
        self._failed: str | None = None
        self._closed = False
        self.fsyncs = 0  # fsync calls on log segments, for stats and benchmarks
        self._ensure_dir()
        self._lock_fds = lock_dir(self._dir)
        try:
            self._load()
        except OSError as exc:
            self._release()
            raise StorageError(f"cannot recover data dir {self._dir!r}: {exc}") from exc
        except StorageError as exc:  # recovery raises it only for damage a crash cannot leave
            self._release()
            raise DataDirDamaged(self._dir, str(exc)) from exc
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------ contract

    def recover(self) -> RecoveredState:
        """The state as of the last save: what a restarted node resumes from."""
        self._check_usable()
        snap = self._loaded_snapshot
        self._loaded_snapshot = None  # hand it out once; later calls re-read the file
        if snap is None and self._snap_name is not None:
            try:
                snap = read_snapshot(os.path.join(self._dir, self._snap_name))
            except OSError as exc:
                raise StorageError(f"cannot read snapshot in {self._dir!r}: {exc}") from exc
        hs = self._state.hard_state
        return RecoveredState(
            hard_state=HardState(hs.term, hs.vote, max(hs.commit, self._state.base_index)),
            snapshot=snap,
            entries=list(self._state.entries),
        )

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool,
    ) -> None:
        """Persist one Ready: snapshot, then entries (replacing any conflicting
        suffix), then hard state; durable on return if `sync` (one fsync).

        Without `sync` the records wait in memory and reach the disk with
        the next synced save (or `close()`): etcd-raft asks for no fsync
        only when nothing but the commit index changed, and a commit index
        that is lost in a crash is learnt again from the leader.
        """
        self._check_usable()
        if snapshot is not None and not snapshot.is_empty():
            self._save_with_snapshot(hard_state, entries, snapshot)
            return
        state = self._state
        state.check_append(entries)
        parts = self._pending
        before = len(parts)
        encode_entries(parts, entries)
        if hard_state is not None and hard_state != state.hard_state:
            encode_hard_state(parts, hard_state)
            state.set_hard_state(hard_state)
        state.append(entries)
        if len(parts) != before:
            self._pending_bytes += sum(len(p) for p in parts[before:])
        if sync or self._pending_bytes >= PENDING_LIMIT:
            self._flush()

    def save_snapshot(self, snap: Snapshot) -> None:
        """Persist a snapshot taken locally at an applied index and compact the
        log up to it; the log after it is kept. Durable on return."""
        self._check_usable()
        meta = snap.meta
        state = self._state
        if meta.index <= state.base_index:
            logger.debug("snapshot at %d is not newer than %d: ignored", meta.index, state.base_index)
            return
        if state.term(meta.index) != meta.term:
            raise ValueError(
                f"local snapshot at index {meta.index} term {meta.term} does not match the log "
                f"(term there: {state.term(meta.index)})"
            )
        new = self._copy_state()
        new.install_snapshot(meta.index, meta.term)
        self._checkpoint(snap, new)

    def close(self) -> None:
        """Write out what sync=False saves left in memory, then release the dir."""
        if self._closed:
            return
        try:
            if self._failed is None and self._pending:
                self._flush()
        finally:
            self._release()

    # ---------------------------------------------------------------- reads


    def stats(self) -> dict[str, int]:
        return {
            "first_index": self.first_index(),
            "last_index": self.last_index(),
            "snapshot_index": self._state.base_index,
            "segment": self._segno,
            "segment_bytes": self._seg_size,
            "fsyncs": self.fsyncs,
        }

    def disk_bytes(self) -> tuple[int, int]:
        """(log, snapshot): the sizes of the live log segments' files (zeros
        preallocated ahead of the log's end included) and of the snapshot's
        file, as tracked by the writes (no I/O)."""
        return self._sealed_bytes + self._alloc_end, self._snap_bytes

    def __enter__(self) -> "FileStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- writing

    def _save_with_snapshot(
        self, hard_state: HardState | None, entries: Sequence[Entry], snap: Snapshot
    ) -> None:
        new = self._copy_state()
        new.check_snapshot(snap.meta)
        new.install_snapshot(snap.meta.index, snap.meta.term)
        new.check_append(entries)
        new.append(entries)
        if hard_state is not None:
            new.set_hard_state(hard_state)
        self._checkpoint(snap, new)

    def _copy_state(self) -> LogState:
        old = self._state
        new = LogState(old.base_index, old.base_term)
        new.entries = list(old.entries)
        new.hard_state = old.hard_state
        return new

    def _checkpoint(self, snap: Snapshot, new: LogState) -> None:
        """Make `snap` durable, then a checkpoint segment holding all of `new`,
        then delete what they supersede: old segments and snapshots go only
        once their replacement is on disk."""
        try:
            name = write_snapshot(self._fs, self._dir, snap)
            parts: list[bytes] = []
            encode_segment_header(parts, KIND_CHECKPOINT, self._segno + 1, new.base_index, new.base_term)
            encode_hard_state(parts, new.hard_state)
            encode_entries(parts, new.entries)
            self._open_segment(parts)
        except OSError as exc:
            self._fail(exc)
        self._state = new
        self._pending = []
        self._pending_bytes = 0
        self._snap_name = name
        self._sealed_bytes, self._snap_bytes = 0, file_size(snap)  # the log restarts at the checkpoint
        try:
            remove_obsolete(self._fs, self._dir, keep_from=self._segno, snap_name=name)
        except OSError as exc:  # harmless: start-up removes them again
            logger.warning("could not remove superseded files in %s: %s", self._dir, exc)

    def _flush(self) -> None:
        """Write the pending records as one frame and fsync it."""
        if not self._pending:
            return
        parts, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            if self._seg_size >= self._segment_bytes:
                head: list[bytes] = []
                encode_segment_header(
                    head, KIND_CONTINUATION, self._segno + 1, self._state.base_index, self._state.base_term
                )
                sealed = self._alloc_end
                self._open_segment(head, parts)
                self._sealed_bytes += sealed
                return
            payload = b"".join(parts)
            header = frame_header(self._next_seq, payload)
            end = self._seg_size + len(header) + len(payload)
            if end > self._alloc_end:
                self._preallocate(end + self._prealloc_bytes)
            self._fs.write_at(self._fd, self._seg_size, [header, payload])
            self._fs.datasync(self._fd)
        except OSError as exc:
            self._fail(exc)
        self.fsyncs += 1
        self._next_seq += 1
        self._seg_size += len(header) + len(payload)

    def _preallocate(self, new_end: int) -> None:
        """Write zeros from the file's end to `new_end` (made durable by the
        frame's fdatasync that follows).

        Appending to a file changes its size, so every fdatasync of an
        append is also a journal commit, run by a kernel thread that has to
        get a CPU first; overwriting zeros already on disk changes no
        metadata (docs/storage.md has the figures). Recovery reads an
        all-zero remainder of a segment as its end.
        """
        zeros = bytes(min(new_end - self._alloc_end, 1 << 20))
        pos = self._alloc_end
        while pos < new_end:
            chunk = zeros if new_end - pos >= len(zeros) else zeros[: new_end - pos]
            self._fs.write_at(self._fd, pos, [chunk])
            pos += len(chunk)
        self._alloc_end = new_end

    def _open_segment(self, *frames: list[bytes]) -> None:
        """Create the next segment whole (tmp, fsync, rename, fsync dir) and
        make it the one appended to. Each argument is the records of one frame."""
        segno = self._segno + 1
        path = os.path.join(self._dir, wal_name(segno))
        tmp = path + ".tmp"
        self._fs.unlink(tmp)
        fd = self._fs.create(tmp)
        size = 0
        seq = self._next_seq
        try:
            for parts in frames:
                payload = b"".join(parts)
                header = frame_header(seq, payload)
                self._fs.write(fd, [header, payload])
                size += len(header) + len(payload)
                seq += 1
            self._fs.fsync(fd)
        finally:
            self._fs.close(fd)
        self._fs.rename(tmp, path)
        self._fs.fsync_dir(self._dir)
        self.fsyncs += 2
        new_fd = self._fs.open_write(path)
        if self._fd >= 0:
            self._fs.close(self._fd)
        self._fd, self._segno, self._seg_size, self._next_seq = new_fd, segno, size, seq
        self._alloc_end = size

    def _fail(self, exc: OSError) -> NoReturn:
        """After a failed write or fsync the page cache state is unknown
        (fsync errors are not reported twice): refuse all further writes."""
        self._failed = f"{type(exc).__name__}: {exc}"
        logger.error("storage in %s failed: %s", self._dir, self._failed)
        raise StorageError(f"write to {self._dir} failed: {self._failed}") from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self._dir} is closed")
        if self._failed is not None:
            raise StorageError(f"storage {self._dir} failed earlier ({self._failed}); restart the node")

    def _release(self) -> None:
        self._closed = True
        if self._fd >= 0:
            try:
                self._fs.close(self._fd)
            finally:
                self._fd = -1
        if self._lock_fds:
            fds, self._lock_fds = self._lock_fds, []
            unlock_dir(fds)

    # -------------------------------------------------------------- recovery

    def _ensure_dir(self) -> None:
        if os.path.isdir(self._dir):
            return
        try:
            self._fs.mkdir(self._dir)
            self._fs.fsync_dir(os.path.dirname(self._dir))
        except OSError as exc:
            raise StorageError(f"cannot create data dir {self._dir!r}: {exc}") from exc

    def _load(self) -> None:
        rec = recover_dir(self._fs, self._dir)
        if rec is None:
            logger.info("initialising empty data dir %s", self._dir)
            parts: list[bytes] = []
            encode_segment_header(parts, KIND_CHECKPOINT, 1, 0, 0)
            encode_hard_state(parts, HardState())
            self._open_segment(parts)
            return
        self._state = rec.state
        self._loaded_snapshot = rec.snapshot
        self._snap_name = rec.snap_name
        self._snap_bytes = file_size(rec.snapshot) if rec.snapshot is not None else 0
        self._sealed_bytes = rec.sealed_bytes
        self._fd = self._fs.open_write(os.path.join(self._dir, wal_name(rec.segno)))
        self._segno, self._seg_size, self._next_seq = rec.segno, rec.seg_size, rec.next_seq
        self._alloc_end = max(self._fs.size(self._fd), self._seg_size)
