"""A simulated disk that follows the Ready contract and loses what it may.

The node writes `Ready.snapshot`, `Ready.entries` and `Ready.hard_state` in
that order (as `qcore.storage` does), with an fsync when `Ready.must_sync`.
Writes without an fsync sit in the "page cache": a crash keeps none of them,
or (with `torn`) only a random prefix of them, as a real kernel might have
flushed some. Writes with an fsync make everything before them durable. So a
core that sets `must_sync=False` on something it later relies on (a vote, an
acknowledged entry) loses it on crash, and the checkers see the consequence.

A local snapshot (`save_snapshot`) is durable at once and compacts the log.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Sequence

from qcore.raft.types import Entry, HardState, Snapshot


class DiskContractError(Exception):
    """The core asked for something storage cannot do (e.g. a gap in the log)."""


@dataclass(slots=True)
class DiskImage:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # contiguous, after the snapshot

    def copy(self) -> "DiskImage":
        return DiskImage(replace(self.hard_state), self.snapshot, list(self.entries))

    @property
    def first_index(self) -> int:
        return (self.snapshot.meta.index if self.snapshot else 0) + 1

    def last_index(self) -> int:
        if self.entries:
            return self.entries[-1].index
        return self.first_index - 1

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Install a snapshot: keep the log after it only if it matches at the
        snapshot's index (Raft paper, Figure 13, steps 6-7), else drop it."""
        if self.snapshot is not None and snap.meta.index <= self.snapshot.meta.index:
            return
        idx, term = snap.meta.index, snap.meta.term
        keep: list[Entry] = []
        for pos, e in enumerate(self.entries):
            if e.index == idx:
                if e.term == term:
                    keep = self.entries[pos + 1 :]
                break
        self.snapshot = snap
        self.entries = keep

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        snap_index = self.first_index - 1
        entries = [e for e in entries if e.index > snap_index]
        if not entries:
            return
        first = entries[0].index
        if first > self.last_index() + 1:
            raise DiskContractError(
                f"append at {first} leaves a gap after last index {self.last_index()}"
            )
        for a, b in zip(entries, entries[1:]):
            if b.index != a.index + 1:
                raise DiskContractError(f"non-contiguous entries {a.index} then {b.index}")
        keep = first - self.first_index
        self.entries = self.entries[:keep] + [Entry(e.term, e.index, e.type, e.data) for e in entries]

    def compact(self, snap: Snapshot) -> None:
        self.apply_snapshot(snap)


@dataclass(slots=True)
class _Write:
    kind: str  # "snapshot" | "entries" | "hard_state"
    value: object


class SimDisk:
    def __init__(self, rng: random.Random, torn: bool) -> None:
        self.rng = rng
        self.torn = torn
        self.durable = DiskImage()
        self._unsynced: list[_Write] = []
        self.syncs = 0

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool,
    ) -> None:
        if snapshot is not None and not snapshot.is_empty():
            self._unsynced.append(_Write("snapshot", snapshot))
        if entries:
            self._unsynced.append(_Write("entries", list(entries)))
        if hard_state is not None:
            self._unsynced.append(_Write("hard_state", replace(hard_state)))
        if sync:
            self.sync()

    def sync(self) -> None:
        self.syncs += 1
        for w in self._unsynced:
            _apply(self.durable, w)
        self._unsynced.clear()

    def save_snapshot(self, snap: Snapshot) -> None:
        """A locally taken snapshot: durable on return, the log before it compacted."""
        self.sync()
        self.durable.compact(snap)

    def crash(self) -> int:
        """Power loss: unsynced writes vanish (all, or all but a random prefix).
        Returns how many writes were lost."""
        keep = self.rng.randint(0, len(self._unsynced)) if self.torn else 0
        for w in self._unsynced[:keep]:
            _apply(self.durable, w)
        lost = len(self._unsynced) - keep
        self._unsynced.clear()
        return lost

    def recover(self) -> DiskImage:
        """What a restarting node reads back: the durable image only."""
        assert not self._unsynced, "recover() after crash() only"
        return self.durable.copy()

    def visible(self) -> DiskImage:
        """The disk as the running node sees it (page cache included)."""
        img = self.durable.copy()
        for w in self._unsynced:
            _apply(img, w)
        return img


def _apply(img: DiskImage, w: _Write) -> None:
    if w.kind == "snapshot":
        img.apply_snapshot(w.value)  # type: ignore[arg-type]
    elif w.kind == "entries":
        img.append(w.value)  # type: ignore[arg-type]
    else:
        img.hard_state = w.value  # type: ignore[assignment]
