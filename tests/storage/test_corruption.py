"""Damage that a crash cannot explain must stop the node with a StorageError,
naming the file and the place, never be skipped or cut off silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qcore.raft.types import HardState
from qcore.storage import FileStorage, StorageError
from qcore.storage.codec import HEADER_SIZE, parse_frame_at

from .helpers import entries, snapshot


def frames_of(path: Path) -> list[tuple[int, int]]:
    """(start, end) of every frame in a segment file (up to its preallocated zeros)."""
    buf = path.read_bytes()
    out, pos = [], 0
    while pos < len(buf) and buf.count(0, pos) != len(buf) - pos:
        frame = parse_frame_at(buf, pos)
        assert frame is not None
        out.append((pos, frame[2]))
        pos = frame[2]
    return out


def flip(path: Path, pos: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 1 << bit
    path.write_bytes(bytes(data))


def build(d: Path, segment_bytes: int = 1 << 20, snap: bool = False) -> list[Path]:
    st = FileStorage(d, segment_bytes=segment_bytes)
    for i in range(0, 60, 6):
        st.save(HardState(1, 1, i), entries(1, i + 1, 6, size=10), None, True)
    if snap:
        st.save_snapshot(snapshot(30, 1, data=b"x" * 500))
        st.save(HardState(2, 1, 60), entries(2, 61, 3), None, True)
    st.close()
    return sorted(d.glob("wal-*.log"))


def test_every_byte_of_a_middle_frame_is_checked(tmp_path) -> None:
    d = tmp_path / "d"
    (seg,) = build(d)
    frames = frames_of(seg)
    start, end = frames[len(frames) // 2]
    original = seg.read_bytes()
    for pos in range(start, end):
        flip(seg, pos, bit=pos % 8)
        with pytest.raises(StorageError, match=f"at offset {start}.*followed by an intact frame"):
            FileStorage(d)
        seg.write_bytes(original)
    assert len(FileStorage(d).recover().entries) == 60


def test_a_missing_frame_in_the_middle_is_detected(tmp_path) -> None:
    d = tmp_path / "d"
    (seg,) = build(d)
    frames = frames_of(seg)
    buf = seg.read_bytes()
    start, end = frames[3]
    seg.write_bytes(buf[:start] + buf[end:])  # the next frame is now out of sequence
    with pytest.raises(StorageError, match="out-of-sequence"):
        FileStorage(d)


def test_damage_in_an_earlier_segment_is_fatal_even_at_its_end(tmp_path) -> None:
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    assert len(segs) >= 3
    flip(segs[1], frames_of(segs[1])[-1][1] - 1)
    with pytest.raises(StorageError, match="not the last"):
        FileStorage(d)


def test_a_truncated_earlier_segment_is_fatal(tmp_path) -> None:
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    os.truncate(segs[1], frames_of(segs[1])[-1][1] - 3)
    with pytest.raises(StorageError, match="not the last"):
        FileStorage(d)


def test_a_zeroed_last_frame_of_an_earlier_segment_is_fatal(tmp_path) -> None:
    """Zeros where a frame was look like preallocated space; the next
    segment's first sequence number still shows the frame is missing."""
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    assert len(segs) >= 3
    frames = frames_of(segs[1])
    start = frames[-2][1] if len(frames) > 1 else None
    assert start is not None, "the segment needs two frames"
    data = bytearray(segs[1].read_bytes())
    data[start:] = bytes(len(data) - start)
    segs[1].write_bytes(bytes(data))
    with pytest.raises(StorageError, match=f"{segs[2].name}: out-of-sequence frame at offset 0"):
        FileStorage(d)


def test_a_missing_segment_is_fatal(tmp_path) -> None:
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    segs[1].unlink()
    with pytest.raises(StorageError, match="missing"):
        FileStorage(d)


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_damaged_first_frame_is_fatal_even_in_the_last_segment(tmp_path, where: str) -> None:
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    flip(segs[-1], 5 if where == "header" else HEADER_SIZE + 2)
    with pytest.raises(StorageError, match="offset 0|damaged segment header"):
        FileStorage(d)


def test_an_empty_segment_is_fatal(tmp_path) -> None:
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    segs[-1].write_bytes(b"")
    with pytest.raises(StorageError):
        FileStorage(d)


@pytest.mark.parametrize("pos", [0, 9, 14, 40, 300, -10, -1])
def test_a_damaged_snapshot_is_fatal(tmp_path, pos: int) -> None:
    d = tmp_path / "d"
    build(d, snap=True)
    (snap,) = d.glob("snap-*.snap")
    flip(snap, pos % snap.stat().st_size)
    with pytest.raises(StorageError, match="snapshot"):
        FileStorage(d)


def test_a_truncated_or_missing_snapshot_is_fatal(tmp_path) -> None:
    d = tmp_path / "d"
    build(d, snap=True)
    (snap,) = d.glob("snap-*.snap")
    os.truncate(snap, snap.stat().st_size - 1)
    with pytest.raises(StorageError, match="size"):
        FileStorage(d)
    snap.unlink()
    with pytest.raises(StorageError, match="missing"):
        FileStorage(d)


def test_a_torn_tail_is_not_an_error(tmp_path) -> None:
    """The counterpart: damage in the last frame of the last segment is a crash's doing."""
    d = tmp_path / "d"
    (seg,) = build(d)
    start, end = frames_of(seg)[-1]
    flip(seg, end - 1)
    st = FileStorage(d)
    assert [e.index for e in st.recover().entries] == list(range(1, 55))
    assert seg.stat().st_size == start  # cut back, so new frames follow a whole one
    st.close()


def test_preallocated_zeros_are_the_end_of_any_segment(tmp_path) -> None:
    """Segments carry zeros past their last frame (written ahead so that
    appends overwrite instead of growing the file); they are not damage,
    not even in an earlier segment, and nothing is cut on recovery."""
    d = tmp_path / "d"
    segs = build(d, segment_bytes=300)
    assert len(segs) >= 3
    tails = [seg.read_bytes()[frames_of(seg)[-1][1]:] for seg in segs]
    assert all(tail.count(0) == len(tail) for tail in tails)
    assert any(tails[:-1]), "no earlier segment was preallocated"
    sizes = [seg.stat().st_size for seg in segs]
    st = FileStorage(d)
    assert [e.index for e in st.recover().entries] == list(range(1, 61))
    assert [seg.stat().st_size for seg in segs] == sizes
    # New frames overwrite the zeros of the last segment in place.
    st.save(HardState(1, 1, 60), entries(1, 61, 2), None, True)
    st.close()
    assert [e.index for e in FileStorage(d).recover().entries] == list(range(1, 63))
