"""`MemoryStorage`: the same contract as `FileStorage`, kept in memory.

For the simulator and `--in-memory` nodes. It applies the very same log
rules (`LogState`), so a sequence of calls that `FileStorage` accepts or
rejects is accepted or rejected here too; only durability differs: nothing
survives the process, and `sync` is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from qcore.raft.types import Entry, HardState, Snapshot

from .base import RecoveredState
from .errors import StorageError
from .logstate import LogReads, LogState


class MemoryStorage(LogReads):
    """Raft log, hard state and snapshot in memory."""

    def __init__(self) -> None:
        self._state = LogState()
        self._snapshot: Snapshot | None = None
        self._closed = False

    def recover(self) -> RecoveredState:
        self._check_open()
        hs = self._state.hard_state
        return RecoveredState(
            hard_state=HardState(hs.term, hs.vote, max(hs.commit, self._state.base_index)),
            snapshot=self._snapshot,
            entries=list(self._state.entries),
        )

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool,
    ) -> None:
        self._check_open()
        state = self._state
        if snapshot is not None and not snapshot.is_empty():
            # Validate everything before changing anything, as FileStorage does.
            new = LogState(state.base_index, state.base_term)
            new.entries = list(state.entries)
            new.hard_state = state.hard_state
            new.check_snapshot(snapshot.meta)
            new.install_snapshot(snapshot.meta.index, snapshot.meta.term)
            new.check_append(entries)
            self._state = state = new
            self._snapshot = snapshot
        else:
            state.check_append(entries)
        state.append(entries)
        if hard_state is not None:
            state.set_hard_state(hard_state)

    def save_snapshot(self, snap: Snapshot) -> None:
        self._check_open()
        meta = snap.meta
        state = self._state
        if meta.index <= state.base_index:
            return
        if state.term(meta.index) != meta.term:
            raise ValueError(
                f"local snapshot at index {meta.index} term {meta.term} does not match the log "
                f"(term there: {state.term(meta.index)})"
            )
        state.install_snapshot(meta.index, meta.term)
        self._snapshot = snap

    def close(self) -> None:
        self._closed = True


    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
