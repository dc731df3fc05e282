"""The frame codec and the torn-or-corrupt rule, on bytes alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.raft.types import Entry, EntryType, HardState
from qcore.storage import StorageError
from qcore.storage.codec import (
    KIND_CHECKPOINT,
    SegmentHeader,
    decode_records,
    encode_entries,
    encode_hard_state,
    encode_segment_header,
    frame_header,
    parse_frame_at,
)
from qcore.storage.wal import scan_segment

u64 = st.integers(0, (1 << 64) - 1)
entry = st.builds(Entry, u64, u64, st.sampled_from(EntryType), st.binary(max_size=300))
record = st.one_of(entry, st.builds(HardState, u64, u64, u64))


def frame(seq: int, records: list) -> bytes:
    parts: list[bytes] = []
    for r in records:
        if isinstance(r, Entry):
            encode_entries(parts, [r])
        elif isinstance(r, HardState):
            encode_hard_state(parts, r)
        else:
            encode_segment_header(parts, r.kind, r.segno, r.base_index, r.base_term)
    payload = b"".join(parts)
    return frame_header(seq, payload) + payload


@given(st.lists(record, max_size=20), u64)
def test_records_roundtrip(records: list, seq: int) -> None:
    buf = frame(seq, records)
    got = parse_frame_at(buf, 0)
    assert got is not None and got[0] == seq and got[2] == len(buf)
    assert list(decode_records(buf, got[1], got[2])) == records


def segment(frames: list[list]) -> tuple[bytes, list[int]]:
    """A segment's bytes (a header frame first) and where each frame ends."""
    buf, ends = b"", []
    for seq, records in enumerate([[SegmentHeader(KIND_CHECKPOINT, 1, 0, 0)], *frames], start=1):
        buf += frame(seq, records)
        ends.append(len(buf))
    return buf, ends


@settings(max_examples=300)
@given(st.lists(st.lists(record, min_size=1, max_size=4), min_size=1, max_size=6), st.data())
def test_damage_is_torn_only_in_the_last_frame(frames: list, data: st.DataObject) -> None:
    buf, ends = segment(frames)
    pos = data.draw(st.integers(ends[0], len(buf) - 1), label="damaged byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(buf)
    damaged[pos] ^= 1 << bit
    k = next(i for i, end in enumerate(ends) if pos < end)  # the damaged frame
    if k == len(ends) - 1:
        scan = scan_segment(bytes(damaged), "seg", None, is_last=True)
        assert scan.torn and scan.valid_end == ends[k - 1] and len(scan.frames) == k
    else:
        with pytest.raises(StorageError, match="followed by an intact frame"):
            scan_segment(bytes(damaged), "seg", None, is_last=True)
    with pytest.raises(StorageError, match="not the last"):
        scan_segment(bytes(damaged), "seg", None, is_last=False)


@given(st.lists(st.lists(record, min_size=1, max_size=4), min_size=1, max_size=6), st.data())
def test_a_cut_anywhere_is_a_torn_tail(frames: list, data: st.DataObject) -> None:
    buf, ends = segment(frames)
    cut = data.draw(st.integers(ends[0], len(buf)))
    scan = scan_segment(buf[:cut], "seg", None, is_last=True)
    whole = [end for end in ends if end <= cut]
    assert scan.valid_end == whole[-1] and len(scan.frames) == len(whole)
    assert scan.torn == (cut != whole[-1])


def test_a_damaged_or_empty_start_is_never_torn() -> None:
    buf, ends = segment([[HardState(1, 1, 1)]])
    with pytest.raises(StorageError, match="offset 0"):
        scan_segment(buf[: ends[0] - 1], "seg", None, is_last=True)
    with pytest.raises(StorageError, match="empty"):
        scan_segment(b"", "seg", None, is_last=True)


def test_sequence_numbers_must_continue() -> None:
    buf, _ = segment([[HardState(1, 1, 1)]])
    with pytest.raises(StorageError, match="offset 0"):
        scan_segment(buf, "seg", 7, is_last=True)  # the previous segment ended at seq 6
    assert len(scan_segment(buf, "seg", 1, is_last=False).frames) == 2
