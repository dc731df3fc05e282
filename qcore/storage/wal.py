"""Reading one WAL segment back, and telling a torn tail from corruption.

A crash can only damage what was being written when it happened. Because
`FileStorage` fsyncs every frame it writes (records of `sync=False` saves
wait in memory for the next synced frame), at most the *last frame of the
last segment* can be torn. Hence the rule, applied here:

- a bad frame (short, bad checksum, out-of-sequence) in the last segment
  with no intact frame of a later sequence number anywhere after it is a
  torn tail: the segment is cut back to the end of the last whole frame;
- a bad frame followed by an intact later frame, a bad frame in any other
  segment, or a bad first frame of a segment (segments appear by atomic
  rename, whole) is corruption: `StorageError`, never skipped.

Segments are preallocated with zeros (see `FileStorage._preallocate`), so a
remainder that is all zeros is simply the end of a segment, in any segment.
Frames lost from the end of an earlier segment would still be caught: the
next segment's first frame must carry the next sequence number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import MAGIC, parse_frame_at
from .errors import StorageError


@dataclass(slots=True)
class SegmentScan:
    """The intact frames of a segment: (seq, payload_start, payload_end) each."""

    frames: list[tuple[int, int, int]] = field(default_factory=list)
    valid_end: int = 0
    torn: bool = False


def scan_segment(buf: bytes, name: str, first_seq: int | None, is_last: bool) -> SegmentScan:
    """Find the frames of one segment's bytes; see the module docstring for the rules.

    `first_seq` is the sequence number the first frame must carry (None for
    the first segment replayed, whose first frame sets it).
    """
    if not buf:
        raise StorageError(f"{name}: empty segment: a segment is never created partially")
    view = memoryview(buf)
    scan = SegmentScan()
    pos = 0
    expected = first_seq
    while pos < len(buf):
        frame = parse_frame_at(view, pos)
        if frame is not None and (expected is None or frame[0] == expected):
            scan.frames.append(frame)
            expected = frame[0] + 1
            pos = frame[2]
            continue
        what = "out-of-sequence frame" if frame is not None else "damaged or incomplete frame"
        if pos > 0 and frame is None and buf.count(0, pos) == len(buf) - pos:
            break  # preallocated zeros: the clean end of the segment
        if pos == 0:
            raise StorageError(f"{name}: {what} at offset 0: a segment is never created partially")
        if not is_last:
            raise StorageError(f"{name}: {what} at offset {pos} in a segment that is not the last")
        later = _find_later_frame(buf, view, pos, expected)
        if later is not None:
            raise StorageError(
                f"{name}: {what} at offset {pos} followed by an intact frame at offset "
                f"{later}: corruption inside the log, refusing to drop acknowledged data"
            )
        scan.torn = True
        break
    scan.valid_end = pos
    return scan


def _find_later_frame(buf: bytes, view: memoryview, pos: int, min_seq: int | None) -> int | None:
    """Offset of an intact frame at or after `pos` with seq >= `min_seq`, if any.

    Stale frames (a lower sequence number) do not count: they are leftovers,
    not data written after the damaged frame.
    """
    i = buf.find(MAGIC, pos)
    while i != -1:
        frame = parse_frame_at(view, i)
        if frame is not None and (min_seq is None or frame[0] >= min_seq):
            return i
        i = buf.find(MAGIC, i + 1)
    return None
