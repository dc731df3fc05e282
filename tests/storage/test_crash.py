"""Crash consistency: simulate a crash after every write step of a workload
and check that recovery gives exactly the state after some call, never less
than what completed calls made durable.

Every prefix of the recorded operations is a crash point; at each one whose
last step is a write, that write is also cut to every possible length and
damaged by flipped bytes; earlier writes no fsync has covered yet are cut
short; directory operations no fsync has made durable yet are undone
("drop the last rename"). Each crash state is then
recovered by a real FileStorage, which must also accept more writes.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

from qcore.raft.types import HardState
from qcore.storage import FileStorage, StorageError

from .crashfs import RecordingFs, materialize, unsynced_writes, volatile_dir_ops
from .helpers import entries, snapshot, view


def run_workload(path: str) -> tuple[RecordingFs, list[tuple], list[int], list[bool]]:
    """Run a workload touching every write path; return the recording, the
    state after each call, where each call's operations end, and whether each
    call promised durability (sync)."""
    fs = RecordingFs()
    st = FileStorage(path, segment_bytes=350, fs=fs)  # small segments: rotations happen
    states = [view(st.recover())]
    ends = [len(fs.ops)]
    synced = [True]

    def call(fn, sync: bool = True) -> None:
        fn()
        states.append(view(st.recover()))
        ends.append(len(fs.ops))
        synced.append(sync)

    call(lambda: st.save(HardState(1, 1, 0), entries(1, 1, 3, size=5), None, True))
    call(lambda: st.save(HardState(1, 1, 2), entries(1, 4, 2, size=0), None, True))
    call(lambda: st.save(HardState(1, 1, 3), [], None, False), sync=False)  # buffered
    call(lambda: st.save(None, entries(1, 6, 4, size=9, conf_every=3), None, True))
    call(lambda: st.save(HardState(2, 2, 3), [], None, True))  # vote only
    call(lambda: st.save(None, entries(2, 7, 3, size=4), None, True))  # replaces 7..9
    call(lambda: st.save(HardState(2, 2, 6), entries(2, 10, 5, size=12), None, True))
    call(lambda: st.save_snapshot(snapshot(6, 1)))
    call(lambda: st.save(HardState(2, 2, 12), entries(2, 15, 3, size=3), None, True))
    call(lambda: st.save(HardState(4, 3, 20), entries(4, 21, 2, size=6), snapshot(20, 4), True))
    call(lambda: st.save(None, entries(4, 23, 6, size=30), None, True))
    call(lambda: st.save(HardState(4, 3, 25), [], None, False), sync=False)
    call(lambda: st.save_snapshot(snapshot(25, 4, data=b"s" * 40)))
    call(lambda: st.save(HardState(5, 5, 28), entries(5, 27, 2, size=7), None, True))
    st.close()
    return fs, states, ends, synced


def allowed_states(n: int, states: list, ends: list[int], synced: list[bool]) -> list:
    """States a crash after operation n may legally recover to: from the last
    completed synced call up to the call in progress."""
    if n < ends[0]:
        return [states[0]]  # crashed while creating the data dir: it is still empty
    done = max(k for k, end in enumerate(ends) if end <= n)
    floor = max(k for k in range(done + 1) if synced[k])
    return states[floor : done + 2]


def crash_variants(ops: list, n: int, rng: random.Random):
    """(label, skip, replaced write data) for the crash states at prefix n."""
    prefix = ops[:n]
    yield "prefix", set(), {}
    volatile = volatile_dir_ops(prefix)
    if volatile:
        yield "dir ops lost", volatile, {}
        if len(volatile) > 1:  # no order among them is promised either
            for k in sorted(volatile):
                yield f"dir op {k} lost", {k}, {}
    unsynced = unsynced_writes(prefix)
    for k in unsynced[:-1] if prefix and prefix[-1][0] == "write" else unsynced:
        data = prefix[k][3]
        yield f"unsynced op {k} lost", set(), {k: b""}
        yield f"unsynced op {k} cut", set(), {k: data[: len(data) // 2]}
    if prefix and prefix[-1][0] == "write":
        k = n - 1
        data = prefix[k][3]
        for cut in range(len(data)):
            yield f"torn at {cut}/{len(data)}", set(), {k: data[:cut]}
        positions = {0, len(data) - 1} | {rng.randrange(len(data)) for _ in range(4)}
        for pos in sorted(positions):
            damaged = bytearray(data)
            damaged[pos] ^= 1 << rng.randrange(8)
            yield f"flipped byte {pos}", set(), {k: bytes(damaged)}


@pytest.fixture
def scratch(tmp_path):
    """Crash states are simulated, so real durability buys nothing here: use a
    RAM-backed directory when there is one, so thousands of fsyncs are cheap."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else str(tmp_path)
    path = tempfile.mkdtemp(prefix="qcore-crash-", dir=base)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_every_crash_point_recovers_to_a_legal_state(scratch: Path) -> None:
    tmp_path = scratch
    src = str(tmp_path / "live")
    os.makedirs(src)
    fs, states, ends, synced = run_workload(src)
    ops = fs.ops
    assert sum(op[0] == "rename" for op in ops) >= 6  # segments and snapshots were created
    rng = random.Random(4)
    checked = 0
    for n in range(len(ops) + 1):
        allowed = allowed_states(n, states, ends, synced)
        for label, skip, data in crash_variants(ops, n, rng):
            dst = str(tmp_path / "crash")
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            materialize(ops[:n], src, dst, skip, data)
            where = f"crash after op {n}/{len(ops)} {ops[n - 1][:2] if n else ''} ({label})"
            try:
                st = FileStorage(dst)
            except StorageError as exc:
                pytest.fail(f"{where}: recovery refused: {exc}")
            got = view(st.recover())
            assert got in allowed, f"{where}: recovered {got}\nallowed: {allowed}"
            # The recovered directory takes new writes and keeps them.
            last = got[1][0] if got[1] and not got[2] else (got[2][-1][1] if got[2] else 0)
            st.save(HardState(9, 9, 0), entries(9, last + 1, 1), None, True)
            st.close()
            st = FileStorage(dst)
            again = view(st.recover())
            st.close()
            assert again[2][:-1] == got[2] and again[2][-1][:2] == (9, last + 1), where
            checked += 1
    print(f"{checked} crash states checked")
    assert checked > 2000


def test_allowed_states_cover_the_durability_promise(tmp_path) -> None:
    """The checker itself: once a synced call completed, its state is the floor."""
    src = str(tmp_path / "live")
    os.makedirs(src)
    fs, states, ends, synced = run_workload(src)
    final = allowed_states(len(fs.ops), states, ends, synced)
    assert final == [states[-1]]
    # Right after the buffered call 3 completed, call 2 is still the floor.
    assert allowed_states(ends[3], states, ends, synced) == states[2:5]
