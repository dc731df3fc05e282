"""Bytes of the write-ahead log: frames and the records inside them.

A *frame* is what one `save()` writes with one `write()` and one fsync:

    magic "QCf1" | u32 payload_len | u64 seq | u32 payload_crc | u32 header_crc | payload

(little-endian; header_crc covers the 20 bytes before it, payload_crc the
payload; both are zlib's CRC-32). `seq` numbers frames consecutively across
segments, so a frame that is valid on its own but out of place (stale bytes,
a lost frame) is still detected. The header has its own CRC so that a
flipped length field can never make a good frame look like a torn tail.

The payload is a sequence of records, each starting with a one-byte tag:

    SEGMENT  kind u8 | segno u64 | base_index u64 | base_term u64   (first record of a segment)
    ENTRY    term u64 | index u64 | type u8 | len u32 | data
    HARD     term u64 | vote u64 | commit u64

A frame is atomic on recovery: either all its records count or none.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from qcore.raft.types import Entry, EntryType, HardState

from .errors import StorageError

MAGIC = b"QCf1"
FRAME_HEADER = struct.Struct("<4sIQII")
HEADER_SIZE = FRAME_HEADER.size  # 24
_HEADER_PREFIX = struct.Struct("<4sIQI")  # what header_crc covers

TAG_SEGMENT = 1
TAG_ENTRY = 2
TAG_HARD = 3

KIND_CHECKPOINT = 1  # starts a new log: base snapshot + hard state + live entries
KIND_CONTINUATION = 2  # continues the previous segment once it grew too big

_SEGMENT = struct.Struct("<BBQQQ")
_ENTRY = struct.Struct("<BQQBI")
_HARD = struct.Struct("<BQQQ")
_ENTRY_TYPES = {int(t): t for t in EntryType}


def encode_entries(out: list[bytes], entries: Sequence[Entry]) -> None:
    """Append the records of `entries` to `out` (joined later, once)."""
    pack = _ENTRY.pack
    for e in entries:
        data = e.data
        out.append(pack(TAG_ENTRY, e.term, e.index, int(e.type), len(data)))
        out.append(data)


def encode_hard_state(out: list[bytes], hs: HardState) -> None:
    out.append(_HARD.pack(TAG_HARD, hs.term, hs.vote, hs.commit))


def encode_segment_header(
    out: list[bytes], kind: int, segno: int, base_index: int, base_term: int
) -> None:
    out.append(_SEGMENT.pack(TAG_SEGMENT, kind, segno, base_index, base_term))


def frame_header(seq: int, payload: bytes) -> bytes:
    """The 24 header bytes of a frame carrying `payload`."""
    crc = zlib.crc32(payload)
    prefix = _HEADER_PREFIX.pack(MAGIC, len(payload), seq, crc)
    return prefix + struct.pack("<I", zlib.crc32(prefix))


@dataclass(slots=True)
class SegmentHeader:
    kind: int
    segno: int
    base_index: int
    base_term: int


# A decoded record: a SegmentHeader, an Entry or a HardState.
Record = SegmentHeader | Entry | HardState


def parse_frame_at(buf: bytes | memoryview, pos: int) -> tuple[int, int, int] | None:
    """Validate the frame starting at `pos`: (seq, payload_start, payload_end) or None.

    None means "no whole, intact frame here": too short, bad magic, a bad
    header or payload checksum. The caller decides whether that is a torn
    tail or corruption.
    """
    end = len(buf)
    if end - pos < HEADER_SIZE:
        return None
    magic, length, seq, crc, hcrc = FRAME_HEADER.unpack_from(buf, pos)
    if magic != MAGIC or zlib.crc32(buf[pos : pos + HEADER_SIZE - 4]) != hcrc:
        return None
    start = pos + HEADER_SIZE
    stop = start + length
    if stop > end or zlib.crc32(buf[start:stop]) != crc:
        return None
    return seq, start, stop


def decode_records(buf: bytes | memoryview, start: int, stop: int) -> Iterator[Record]:
    """The records of one frame's payload.

    The frame's CRC already matched, so a malformed payload here means a bug
    or a CRC collision on damaged data: either way a StorageError.
    """
    pos = start
    entry_size = _ENTRY.size
    unpack_entry = _ENTRY.unpack_from
    types = _ENTRY_TYPES
    try:
        while pos < stop:
            tag = buf[pos]
            if tag == TAG_ENTRY:
                _, term, index, typ, n = unpack_entry(buf, pos)
                pos += entry_size
                if pos + n > stop:
                    raise StorageError(f"entry {index} overruns its frame")
                yield Entry(term, index, types[typ], bytes(buf[pos : pos + n]))
                pos += n
            elif tag == TAG_HARD:
                _, term, vote, commit = _HARD.unpack_from(buf, pos)
                pos += _HARD.size
                yield HardState(term, vote, commit)
            elif tag == TAG_SEGMENT:
                _, kind, segno, base_index, base_term = _SEGMENT.unpack_from(buf, pos)
                pos += _SEGMENT.size
                yield SegmentHeader(kind, segno, base_index, base_term)
            else:
                raise StorageError(f"unknown record tag {tag} at payload offset {pos - start}")
        if pos != stop:
            raise StorageError("record overruns its frame")
    except (struct.error, KeyError) as exc:
        raise StorageError(f"malformed record in a checksummed frame: {exc}") from exc
