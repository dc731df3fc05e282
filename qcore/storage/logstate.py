"""The log's rules, without any I/O: append with suffix truncation, snapshots, compaction.

Both engines keep one `LogState` in memory, and `FileStorage` rebuilds it at
start-up by replaying its records through the very same methods, so what
is on disk is always interpreted by the rules that wrote it.

Invariant: `entries` are contiguous and `entries[k].index == base_index + 1 + k`;
`base_index`/`base_term` identify the last entry covered by the snapshot
(0/0 without one). Everything at or below `base_index` is compacted away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from qcore.raft.types import Entry, HardState, SnapshotMeta


class LogState:
    """A Raft log after compaction, plus the hard state, kept in memory."""

    __slots__ = ("base_index", "base_term", "entries", "hard_state")

    def __init__(self, base_index: int = 0, base_term: int = 0) -> None:
        self.base_index = base_index
        self.base_term = base_term
        self.entries: list[Entry] = []
        self.hard_state = HardState()

    # ---------------------------------------------------------------- reads

    def first_index(self) -> int:
        """The index of the first entry still stored (may be > last_index when empty)."""
        return self.base_index + 1

    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    def term(self, index: int) -> int | None:
        """The term of entry `index`, the snapshot's term at its index, else None."""
        if index == self.base_index:
            return self.base_term
        k = index - self.base_index - 1
        if 0 <= k < len(self.entries):
            return self.entries[k].term
        return None

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi; raises ValueError outside the stored range."""
        if lo < self.first_index() or hi > self.last_index() + 1 or lo > hi:
            raise ValueError(
                f"entries [{lo}, {hi}) outside the stored range "
                f"[{self.first_index()}, {self.last_index() + 1})"
            )
        return self.entries[lo - self.base_index - 1 : hi - self.base_index - 1]

    # --------------------------------------------------------------- writes

    def check_append(self, entries: Sequence[Entry]) -> None:
        """Reject a batch that would break contiguity, before anything is written.

        A batch may start anywhere in (base_index, last_index + 1]: starting
        inside the stored log replaces the conflicting suffix from there.
        """
        if not entries:
            return
        first = entries[0].index
        if first <= self.base_index:
            raise ValueError(
                f"append at index {first} would overwrite the snapshot at {self.base_index}"
            )
        if first > self.last_index() + 1:
            raise ValueError(f"append at index {first} leaves a gap after {self.last_index()}")
        for k, e in enumerate(entries):
            if e.index != first + k:
                raise ValueError(f"batch not contiguous: index {e.index} at position {k}")

    def append(self, entries: Sequence[Entry]) -> None:
        """Append a batch checked by `check_append`, truncating any conflicting suffix."""
        if not entries:
            return
        k = entries[0].index - self.base_index - 1
        if k < len(self.entries):
            del self.entries[k:]
        self.entries.extend(entries)

    def check_snapshot(self, meta: SnapshotMeta) -> None:
        if meta.index <= self.base_index:
            raise ValueError(
                f"snapshot at {meta.index} is not newer than the stored one at {self.base_index}"
            )

    def install_snapshot(self, index: int, term: int) -> None:
        """A snapshot received from the leader becomes the log's base.

        Raft paper section 7: if the log holds the snapshot's last entry
        (same index and term), the entries after it are consistent with it
        and are kept; otherwise the whole log is discarded.
        """
        if self.term(index) == term:
            self.entries = self.entries[index - self.base_index :]
        else:
            self.entries = []
        self.base_index = index
        self.base_term = term
        if self.hard_state.commit < index:
            self.hard_state = replace(self.hard_state, commit=index)

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = HardState(hs.term, hs.vote, hs.commit)


class LogReads:
    """Read access to a storage engine's LogState (`self._state`): the same
    for the file engine and its in-memory twin."""

    _state: LogState

    def first_index(self) -> int:
        return self._state.first_index()

    def last_index(self) -> int:
        return self._state.last_index()

    def term(self, index: int) -> int | None:
        return self._state.term(index)

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Stored entries with lo <= index < hi."""
        return self._state.slice(lo, hi)

    @property
    def hard_state(self) -> HardState:
        hs = self._state.hard_state
        return HardState(hs.term, hs.vote, hs.commit)
