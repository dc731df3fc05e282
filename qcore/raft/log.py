"""The Raft log as the core sees it: everything since the last compaction.

The log lives wholly in memory (the runtime's storage holds the durable copy;
the core never reads storage). It is split at two indexes:

    snap_index           stable            committed/applied   last_index
    |  compacted  | entries ... persisted ... | ... unstable ... |
                    ^ first_index

* `snap_index`/`snap_term`: the last compacted entry (from a snapshot);
  index 0/term 0 for a log never compacted.
* `stable`: entries up to here are on disk; those after it still have to be
  handed out in `Ready.entries`. Truncation by a conflicting leader moves it
  back.
* `pending_snapshot`: a snapshot received from the leader that the runtime
  has not persisted and restored yet. While it is pending no committed
  entries are handed out.
* `committed` (known committed by a quorum) and `applied` (handed to the
  state machine and advanced past). applied <= committed always; committed
  entries are handed out only up to `stable`, i.e. once durable locally.
"""

from __future__ import annotations

from .types import Entry, Snapshot

__all__ = ["RaftLog", "entry_size"]

# Per-entry overhead used for byte caps (term, index, type, framing).
_ENTRY_OVERHEAD = 24


def entry_size(e: Entry) -> int:
    return len(e.data) + _ENTRY_OVERHEAD


class RaftLog:
    def __init__(self, snapshot: Snapshot | None = None, entries: list[Entry] | None = None) -> None:
        self.snap_index = snapshot.meta.index if snapshot else 0
        self.snap_term = snapshot.meta.term if snapshot else 0
        ents = [e for e in (entries or []) if e.index > self.snap_index]
        for i, e in enumerate(ents):
            if e.index != self.snap_index + 1 + i:
                raise ValueError(f"log entries not contiguous after snapshot {self.snap_index}: index {e.index} at position {i}")
        self._entries: list[Entry] = ents
        self.stable = self.last_index()
        self.pending_snapshot: Snapshot | None = None
        self.committed = self.snap_index
        self.applied = self.snap_index

    # -- reading --------------------------------------------------------

    def first_index(self) -> int:
        return self.snap_index + 1

    def last_index(self) -> int:
        return self.snap_index + len(self._entries)

    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.snap_term

    def term(self, index: int) -> int | None:
        """Term of the entry at `index`; None if compacted or not yet there."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index():
            return None
        return self._entries[index - self.snap_index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a candidate's log at least as up to date as ours? (paper 5.4.1)"""
        lt = self.last_term()
        return last_term > lt or (last_term == lt and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_size: int = 0) -> list[Entry] | None:
        """Entries [lo, hi), at most `max_size` bytes (0: no cap) but at least
        one entry; None if `lo` has been compacted away."""
        if lo < self.first_index():
            return None
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        base = self.snap_index + 1
        ents = self._entries[lo - base : hi - base]
        if max_size > 0:
            total = 0
            for i, e in enumerate(ents):
                total += entry_size(e)
                if total > max_size and i > 0:
                    return ents[:i]
        return ents

    def entries_from(self, lo: int, max_size: int = 0) -> list[Entry] | None:
        return self.slice(lo, self.last_index() + 1, max_size)

    def unstable_entries(self) -> list[Entry]:
        return self.slice(self.stable + 1, self.last_index() + 1) or []

    def has_next_committed_entries(self) -> bool:
        return self.pending_snapshot is None and min(self.committed, self.stable) > self.applied

    def next_committed_entries(self, max_size: int = 0) -> list[Entry]:
        """Committed, durable, not yet applied entries (in order)."""
        if self.pending_snapshot is not None:
            return []
        hi = min(self.committed, self.stable)
        if hi <= self.applied:
            return []
        return self.slice(self.applied + 1, hi + 1, max_size) or []

    def find_conflict(self, entries: list[Entry]) -> int:
        """Index of the first entry that is new or disagrees with our log, or 0."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (index', term') with index' <= index and term' <= term.

        Used for fast log back-off (paper 5.3, "the follower can include the
        term of the conflicting entry"): the leader skips a whole term of
        mismatching entries per round trip instead of one entry.
        """
        while True:
            t = self.term(index)
            if t is None:
                # Compacted (or beyond our log): nothing better to offer.
                return index, 0
            if t <= term:
                return index, t
            index -= 1

    # -- writing --------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        """Append, truncating any conflicting suffix first; returns last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        if after <= self.committed:
            raise AssertionError(f"append at {after} would overwrite committed entry {self.committed}")
        if after > self.last_index() + 1:
            raise AssertionError(f"append at {after} leaves a gap after {self.last_index()}")
        del self._entries[after - self.snap_index - 1 :]
        self.stable = min(self.stable, after - 1)
        self._entries.extend(entries)
        return self.last_index()

    def maybe_append(self, index: int, log_term: int, committed: int, entries: list[Entry]) -> int | None:
        """The follower side of AppendEntries (paper 5.3 / Figure 2).

        Returns the index of the last entry now known to match the leader's,
        or None if our log does not contain (index, log_term).
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        ci = self.find_conflict(entries)
        if ci:
            if ci <= self.committed:
                raise AssertionError(f"entry {ci} conflicts with committed entry (committed={self.committed})")
            self.append(entries[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to `index` if it is of `term` (paper 5.4.2: only entries
        of the leader's current term are committed by counting replicas)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index > self.committed or index < self.applied:
            raise AssertionError(f"applied_to({index}) out of range (applied={self.applied}, committed={self.committed})")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are on disk, unless they were replaced
        meanwhile (then the newer entries are still unstable)."""
        if index > self.stable and self.term(index) == term:
            self.stable = index

    def stable_snapshot(self, index: int) -> None:
        if self.pending_snapshot is not None and self.pending_snapshot.meta.index == index:
            self.pending_snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self.snap_index = snapshot.meta.index
        self.snap_term = snapshot.meta.term
        self._entries = []
        self.stable = self.snap_index
        self.committed = self.snap_index
        self.applied = self.snap_index
        self.pending_snapshot = snapshot

    def compact(self, index: int) -> None:
        """Forget entries <= index (they are covered by a durable snapshot)."""
        if index <= self.snap_index:
            return
        if index > self.applied:
            raise ValueError(f"cannot compact to {index}: only applied up to {self.applied}")
        term = self.term(index)
        assert term is not None
        del self._entries[: index - self.snap_index]
        self.snap_index = index
        self.snap_term = term
