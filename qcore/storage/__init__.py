"""Durable Raft state of one node: the log, the hard state and snapshots.

`FileStorage` owns a `--data-dir` (segmented write-ahead log with
checksummed frames, snapshot files, a lock); `MemoryStorage` is its
in-memory twin for the simulator and `--in-memory` nodes. Both follow the
contract in docs/ARCHITECTURE.md ("Storage"); the design is in
docs/storage.md.
"""

from .base import RecoveredState, Storage
from .errors import DataDirDamaged, StorageError
from .file import FileStorage
from .memory import MemoryStorage

__all__ = ["DataDirDamaged", "FileStorage", "MemoryStorage", "RecoveredState", "Storage", "StorageError"]
