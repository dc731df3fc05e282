"""The simulator's copy of one node's Raft log, as prefix-chain values.

It is built only from what the Ready contract shows the application (the
entries to persist, snapshots) and from what the node recovers from its
disk, never from the core's internals. Each position holds the entry's term
and the hash chain over the whole log prefix up to it, so comparing two
nodes' logs at one index compares their entire prefixes in O(1).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from qcore.raft.types import Entry
from qcore.sim.register import GENESIS, chain_next


class LogGapError(Exception):
    """Entries were appended past the end of the log, leaving a hole."""


class LogView:
    __slots__ = ("base_index", "base_term", "base_chain", "_terms", "_chains")

    def __init__(self, base_index: int = 0, base_term: int = 0, base_chain: bytes = GENESIS) -> None:
        self.base_index = base_index
        self.base_term = base_term
        self.base_chain = base_chain
        self._terms: list[int] = []
        self._chains: list[bytes] = []

    @property
    def last_index(self) -> int:
        return self.base_index + len(self._terms)

    def last_term(self) -> int:
        return self._terms[-1] if self._terms else self.base_term

    def term_at(self, index: int) -> int | None:
        if index == self.base_index:
            return self.base_term
        pos = index - self.base_index - 1
        if 0 <= pos < len(self._terms):
            return self._terms[pos]
        return None

    def chain_at(self, index: int) -> bytes | None:
        if index == self.base_index:
            return self.base_chain
        pos = index - self.base_index - 1
        if 0 <= pos < len(self._chains):
            return self._chains[pos]
        return None

    def append(self, entries: Sequence[Entry]) -> list[tuple[int, int, bytes]]:
        """Write `entries` (replacing any suffix from entries[0].index) and
        return (index, term, chain) for each entry actually written."""
        out: list[tuple[int, int, bytes]] = []
        entries = [e for e in entries if e.index > self.base_index]
        if not entries:
            return out
        first = entries[0].index
        if first > self.last_index + 1:
            raise LogGapError(f"entry {first} appended after last index {self.last_index}")
        keep = first - self.base_index - 1
        del self._terms[keep:]
        del self._chains[keep:]
        prev = self.chain_at(first - 1)
        assert prev is not None
        expected = first
        for e in entries:
            if e.index != expected:
                raise LogGapError(f"non-contiguous entries: {e.index} where {expected} expected")
            expected += 1
            prev = chain_next(prev, e)
            self._terms.append(e.term)
            self._chains.append(prev)
            out.append((e.index, e.term, prev))
        return out

    def restore(self, index: int, term: int, chain: bytes) -> None:
        """A snapshot replaces the log: keep the suffix only if it matches."""
        if self.term_at(index) == term and self.chain_at(index) == chain:
            self.compact(index)
            return
        self.base_index, self.base_term, self.base_chain = index, term, chain
        self._terms.clear()
        self._chains.clear()

    def compact(self, index: int) -> None:
        if index <= self.base_index or index > self.last_index:
            return
        term, chain = self.term_at(index), self.chain_at(index)
        drop = index - self.base_index
        del self._terms[:drop]
        del self._chains[:drop]
        self.base_index, self.base_term, self.base_chain = index, term or 0, chain or GENESIS

    def positions(self) -> Iterable[tuple[int, int, bytes]]:
        for pos, (t, c) in enumerate(zip(self._terms, self._chains)):
            yield self.base_index + pos + 1, t, c
