"""Start-up: rebuild the log from a data directory, or refuse it.

Steps (docs/storage.md, "Recovery"): delete `*.tmp`; find the newest
checkpoint segment, where the log begins (older segments are leftovers of
an interrupted cleanup); check the segments after it are consecutive; replay
their frames through `LogState`, cutting a torn tail of the last segment
(`wal.scan_segment` tells torn from corrupt); load the snapshot the
checkpoint names; delete what is superseded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from qcore.raft.types import Entry, HardState, Snapshot

from .codec import KIND_CHECKPOINT, KIND_CONTINUATION, SegmentHeader, decode_records, parse_frame_at
from .errors import StorageError
from .fs import FileSystem
from .layout import parse_wal_name, remove_obsolete, wal_name
from .logstate import LogState
from .snapfile import parse_name, read_snapshot, snapshot_name
from .wal import scan_segment

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovered:
    """The log as found on disk, and where appending continues."""

    state: LogState
    snapshot: Snapshot | None
    snap_name: str | None
    segno: int  # the last segment: new frames go there
    seg_size: int
    next_seq: int
    sealed_bytes: int = 0  # the sizes of the live segments before the last


def recover_dir(fs: FileSystem, dir_path: str) -> Recovered | None:
    """The recovered log of `dir_path`; None if it holds no log yet (a new node)."""
    segs: list[tuple[int, str]] = []
    snaps: list[str] = []
    for name in os.listdir(dir_path):
        if name.endswith(".tmp") and (parse_wal_name(name[:-4]) is not None or parse_name(name[:-4])):
            fs.unlink(os.path.join(dir_path, name))  # an interrupted write of ours
        elif (segno := parse_wal_name(name)) is not None:
            segs.append((segno, name))
        elif parse_name(name) is not None:
            snaps.append(name)
    segs.sort()
    if not segs:
        if snaps:
            raise StorageError(
                f"{dir_path}: snapshot files {sorted(snaps)} but no log: "
                "refusing to start as an empty node (its vote would be forgotten)"
            )
        return None
    live = segs[_find_checkpoint(dir_path, segs) :]
    for k, (segno, _) in enumerate(live):
        if segno != live[0][0] + k:
            raise StorageError(f"{dir_path}: log segment {wal_name(live[0][0] + k)} is missing")
    rec = _replay(fs, dir_path, live)
    if rec.state.base_index:
        rec.snap_name = snapshot_name(rec.state.base_index, rec.state.base_term)
        if rec.snap_name not in snaps:
            raise StorageError(f"{dir_path}: snapshot {rec.snap_name} named by the log is missing")
        rec.snapshot = read_snapshot(os.path.join(dir_path, rec.snap_name))
    remove_obsolete(fs, dir_path, keep_from=live[0][0], snap_name=rec.snap_name)
    return rec


def _find_checkpoint(dir_path: str, segs: list[tuple[int, str]]) -> int:
    """Position of the newest checkpoint segment: where the log begins."""
    for k in range(len(segs) - 1, -1, -1):
        header = _read_segment_header(dir_path, segs[k][1])
        if header.segno != segs[k][0]:
            raise StorageError(f"{segs[k][1]}: header says segment {header.segno}")
        if header.kind == KIND_CHECKPOINT:
            return k
    raise StorageError(f"{dir_path}: no checkpoint segment, the start of the log is missing")


def _read_segment_header(dir_path: str, name: str) -> SegmentHeader:
    with open(os.path.join(dir_path, name), "rb") as f:
        head = f.read(64)
        frame = parse_frame_at(head, 0)
        if frame is None:  # the first frame may be longer than 64 bytes
            f.seek(0)
            head = f.read()
            frame = parse_frame_at(head, 0)
    if frame is None:
        raise StorageError(f"{name}: damaged segment header")
    first = next(decode_records(head, frame[1], frame[2]), None)
    if not isinstance(first, SegmentHeader):
        raise StorageError(f"{name}: segment does not start with a segment header")
    return first


def _replay(fs: FileSystem, dir_path: str, live: list[tuple[int, str]]) -> Recovered:
    """Rebuild the in-memory log from the segments, in order."""
    state = LogState()
    seq: int | None = None
    seg_size = sealed = 0
    for k, (segno, name) in enumerate(live):
        path = os.path.join(dir_path, name)
        with open(path, "rb") as f:
            buf = f.read()
        is_last = k == len(live) - 1
        if not is_last:
            sealed += len(buf)
        scan = scan_segment(buf, name, seq, is_last)
        view = memoryview(buf)
        first = True
        for fseq, lo, hi in scan.frames:
            for rec in decode_records(view, lo, hi):
                if first:
                    state = _check_header(name, segno, k, rec, state)
                    first = False
                elif isinstance(rec, Entry):
                    if rec.index == state.base_index + len(state.entries) + 1:
                        state.entries.append(rec)
                    else:
                        try:
                            state.check_append((rec,))
                        except ValueError as exc:
                            raise StorageError(f"{name}: inconsistent log: {exc}") from exc
                        state.append((rec,))
                elif isinstance(rec, HardState):
                    state.hard_state = rec
                else:
                    raise StorageError(f"{name}: segment header in the middle of a segment")
            seq = fseq + 1
        if scan.torn:
            logger.warning(
                "%s: torn tail after offset %d (%d bytes) cut off", name, scan.valid_end, len(buf) - scan.valid_end
            )
            fd = fs.open_append(path)
            try:
                fs.truncate(fd, scan.valid_end)
                fs.fsync(fd)
            finally:
                fs.close(fd)
        seg_size = scan.valid_end
    assert seq is not None  # scan_segment raises on a segment without a first frame
    return Recovered(state, None, None, live[-1][0], seg_size, seq, sealed)


def _check_header(name: str, segno: int, k: int, rec: object, state: LogState) -> LogState:
    """A segment must open with its header, which must agree with the replay so far."""
    if not isinstance(rec, SegmentHeader):
        raise StorageError(f"{name}: segment does not start with a segment header")
    if rec.segno != segno:
        raise StorageError(f"{name}: header says segment {rec.segno}")
    if k == 0:
        if rec.kind != KIND_CHECKPOINT:
            raise StorageError(f"{name}: the log does not start with a checkpoint")
        return LogState(rec.base_index, rec.base_term)
    if rec.kind != KIND_CONTINUATION or (rec.base_index, rec.base_term) != (state.base_index, state.base_term):
        raise StorageError(f"{name}: segment does not continue the previous one")
    return state
