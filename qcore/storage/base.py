"""What every storage engine returns and promises.

`Storage` is the contract the node runtime is written against (see
docs/ARCHITECTURE.md, "Storage"); `FileStorage` and `MemoryStorage` both
satisfy it, so the runtime and the simulator run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qcore.raft.types import Entry, HardState, Snapshot


@dataclass(slots=True)
class RecoveredState:
    """Everything a node needs to rebuild its Raft core after a restart.

    `entries` are contiguous and start right after `snapshot.meta.index`
    (or at index 1 without a snapshot). `hard_state.commit` is never below
    the snapshot index: a snapshot only ever holds committed state.
    """

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


class Storage(Protocol):
    """The persistence contract of one Raft node."""

    def recover(self) -> RecoveredState: ...

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool,
    ) -> None: ...

    def save_snapshot(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...
