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
from collections.abc import Callable
from pathlib import Path

import pytest

from qcore.raft.types import HardState
from qcore.storage import FileStorage, StorageError

from .crashfs import RecordingFs, materialize, unsynced_writes, volatile_dir_ops
from .helpers import entries, snapshot, view

PREALLOC = 100  # bytes of zeros ahead of the log end: several preallocations per segment


Script = list[tuple[Callable[[FileStorage], None], bool]]  # (call, promises durability)

# A workload through every write path: appends, a buffered commit, a vote,
# a suffix replacement, local and received snapshots, segment rotations.
SCRIPTED: Script = [
    (lambda st: st.save(HardState(1, 1, 0), entries(1, 1, 3, size=5), None, True), True),
    (lambda st: st.save(HardState(1, 1, 2), entries(1, 4, 2, size=0), None, True), True),
    (lambda st: st.save(HardState(1, 1, 3), [], None, False), False),  # buffered
    (lambda st: st.save(None, entries(1, 6, 4, size=9, conf_every=3), None, True), True),
    (lambda st: st.save(HardState(2, 2, 3), [], None, True), True),  # vote only
    (lambda st: st.save(None, entries(2, 7, 3, size=4), None, True), True),  # replaces 7..9
    (lambda st: st.save(HardState(2, 2, 6), entries(2, 10, 5, size=12), None, True), True),
    (lambda st: st.save_snapshot(snapshot(6, 1)), True),
    (lambda st: st.save(HardState(2, 2, 12), entries(2, 15, 3, size=3), None, True), True),
    (lambda st: st.save(HardState(4, 3, 20), entries(4, 21, 2, size=6), snapshot(20, 4), True), True),
    (lambda st: st.save(None, entries(4, 23, 6, size=30), None, True), True),
    (lambda st: st.save(HardState(4, 3, 25), [], None, False), False),
    (lambda st: st.save_snapshot(snapshot(25, 4, data=b"s" * 40)), True),
    (lambda st: st.save(HardState(5, 5, 28), entries(5, 27, 2, size=7), None, True), True),
]


def random_script(rng: random.Random, calls: int) -> Script:
    """A random valid sequence of calls, as a Raft node could make them."""
    script: Script = []
    terms: dict[int, int] = {}  # index -> term of the live log
    base, term, vote, commit = 0, 1, 1, 0
    for _ in range(calls):
        last = max(terms, default=base)
        kind = rng.choices(["append", "truncate", "vote", "commit", "local", "received"], [6, 1, 1, 2, 1, 1])[0]
        if kind == "truncate" and last > max(base, commit):
            term += 1
            first = rng.randint(max(base, commit) + 1, last)  # committed entries never change
            ents = entries(term, first, rng.randint(1, 4), size=rng.randint(0, 30))
            terms = {i: t for i, t in terms.items() if i < first} | {e.index: term for e in ents}
            script.append((lambda st, e=ents: st.save(None, e, None, True), True))
        elif kind == "vote":
            term, vote = term + 1, rng.randint(1, 5)
            hs = HardState(term, vote, commit)
            script.append((lambda st, h=hs: st.save(h, [], None, True), True))
        elif kind == "commit" and commit < last:
            commit = rng.randint(commit + 1, last)
            hs = HardState(term, vote, commit)
            script.append((lambda st, h=hs: st.save(h, [], None, False), False))
        elif kind == "local" and commit > base:
            base = rng.randint(base + 1, commit)
            snap = snapshot(base, terms[base], data=bytes(rng.randrange(256) for _ in range(rng.randint(0, 50))))
            terms = {i: t for i, t in terms.items() if i > base}
            script.append((lambda st, sn=snap: st.save_snapshot(sn), True))
        elif kind == "received":
            idx = max(base, commit) + 1 + max(0, last - commit + rng.randint(-3, 5))  # past the commit
            t = terms.get(idx, term) if rng.random() < 0.5 else term + 1
            term = max(term, t)
            keep = terms.get(idx) == t  # the log holds the snapshot's last entry
            base, commit = idx, max(commit, idx)
            ents = entries(term, base + 1, rng.randint(0, 3))
            kept = {i: tt for i, tt in terms.items() if i > base} if keep and not ents else {}
            terms = kept | {e.index: term for e in ents}
            hs = HardState(term, vote, commit)
            snap = snapshot(base, t)
            script.append((lambda st, h=hs, e=ents, sn=snap: st.save(h, e, sn, True), True))
        else:
            ents = entries(term, last + 1, rng.choice((1, 1, 2, 5, 9)), size=rng.randint(0, 40))
            terms |= {e.index: term for e in ents}
            hs = HardState(term, vote, commit) if rng.random() < 0.5 else None
            script.append((lambda st, h=hs, e=ents: st.save(h, e, None, True), True))
    return script


def run_workload(path: str, script: Script = SCRIPTED) -> tuple[RecordingFs, list[tuple], list[int], list[bool]]:
    """Run `script`; return the recording, the state after each call, where
    each call's operations end, and whether each call promised durability."""
    fs = RecordingFs()
    # Small segments and preallocation steps: rotations and preallocations happen.
    st = FileStorage(path, segment_bytes=350, fs=fs, prealloc_bytes=PREALLOC)
    states = [view(st.recover())]
    ends = [len(fs.ops)]
    synced = [True]
    for call, sync in script:
        call(st)
        states.append(view(st.recover()))
        ends.append(len(fs.ops))
        synced.append(sync)
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


def crash_variants(ops: list, n: int, rng: random.Random, cuts: int | None):
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
        lengths = range(len(data)) if cuts is None else sorted({0, len(data) - 1} | {rng.randrange(len(data)) for _ in range(cuts)} if data else {0})
        for cut in lengths:
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


def check_crash_states(tmp_path: Path, script: Script, rng: random.Random, cuts: int | None) -> int:
    """Recover every crash state of `script` and check it; return how many there were.

    `cuts`: how many lengths to try for the torn last write (None: every one).
    """
    src = str(tmp_path / "live")
    os.makedirs(src)
    fs, states, ends, synced = run_workload(src, script)
    ops = fs.ops
    checked = 0
    for n in range(len(ops) + 1):
        allowed = allowed_states(n, states, ends, synced)
        for label, skip, data in crash_variants(ops, n, rng, cuts):
            dst = str(tmp_path / "crash")
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            materialize(ops[:n], src, dst, skip, data)
            where = f"crash after op {n}/{len(ops)} {ops[n - 1][:2] if n else ''} ({label})"
            try:
                st = FileStorage(dst, prealloc_bytes=PREALLOC)
            except StorageError as exc:
                pytest.fail(f"{where}: recovery refused: {exc}")
            got = view(st.recover())
            assert got in allowed, f"{where}: recovered {got}\nallowed: {allowed}"
            # The recovered directory takes new writes and keeps them.
            last = got[1][0] if got[1] and not got[2] else (got[2][-1][1] if got[2] else 0)
            st.save(HardState(99, 9, 0), entries(99, last + 1, 1), None, True)
            st.close()
            st = FileStorage(dst, prealloc_bytes=PREALLOC)
            again = view(st.recover())
            st.close()
            assert again[2][:-1] == got[2] and again[2][-1][:2] == (99, last + 1), where
            checked += 1
    shutil.rmtree(src)
    return checked


def test_every_crash_point_recovers_to_a_legal_state(scratch: Path) -> None:
    checked = check_crash_states(scratch, SCRIPTED, random.Random(4), cuts=None)
    print(f"{checked} crash states checked")
    assert checked > 2000


SEEDS = int(os.environ.get("QCORE_CRASH_SEEDS", "40" if os.environ.get("QCORE_SLOW") == "1" else "2"))


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_workloads_recover_to_legal_states(scratch: Path, seed: int) -> None:
    """Seeded random workloads (replay one with QCORE_CRASH_SEEDS); the torn
    last write is cut at a sample of lengths rather than all."""
    rng = random.Random(seed)
    script = random_script(rng, 25)
    assert check_crash_states(scratch, script, rng, cuts=6) > 100, f"seed {seed}"


def test_allowed_states_cover_the_durability_promise(tmp_path) -> None:
    """The checker itself: once a synced call completed, its state is the floor."""
    src = str(tmp_path / "live")
    os.makedirs(src)
    fs, states, ends, synced = run_workload(src)
    assert sum(op[0] == "rename" for op in fs.ops) >= 6  # segments and snapshots were created
    final = allowed_states(len(fs.ops), states, ends, synced)
    assert final == [states[-1]]
    # Right after the buffered call 3 completed, call 2 is still the floor.
    assert allowed_states(ends[3], states, ends, synced) == states[2:5]
