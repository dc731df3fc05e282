"""Shared test helpers: a comparable view of storage state and a workload builder."""

from __future__ import annotations

import os
import shutil

from qcore.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from qcore.storage import RecoveredState

View = tuple


def view(rec: RecoveredState) -> View:
    """A hashable, comparable summary of a recovered state."""
    snap = rec.snapshot
    return (
        (rec.hard_state.term, rec.hard_state.vote, rec.hard_state.commit),
        None
        if snap is None
        else (snap.meta.index, snap.meta.term, snap.meta.conf_state.voters, bytes(snap.data)),
        tuple((e.term, e.index, int(e.type), bytes(e.data)) for e in rec.entries),
    )


def entries(term: int, first: int, n: int, size: int = 8, conf_every: int = 0) -> list[Entry]:
    out = []
    for i in range(first, first + n):
        typ = EntryType.CONF_CHANGE if conf_every and i % conf_every == 0 else EntryType.NORMAL
        out.append(Entry(term, i, typ, bytes([i % 251]) * size))
    return out


def snapshot(index: int, term: int, data: bytes = b"", voters: tuple[int, ...] = (1, 2, 3)) -> Snapshot:
    return Snapshot(
        SnapshotMeta(index, term, ConfState(voters=voters, addresses={v: f"127.0.0.1:{9000 + v}" for v in voters})),
        data or f"state@{index}".encode(),
    )


def crash_copy(src: str, dst: str) -> str:
    """What a kill -9 right now would leave: the files as they are, without the lock holder."""
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name != "LOCK":
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    return dst


__all__ = ["HardState", "crash_copy", "entries", "snapshot", "view"]
