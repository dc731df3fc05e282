"""The one exception type of `qcore.storage`.

`StorageError` means "this data directory cannot be trusted or used as is":
it is locked by another process, or it holds corruption that is not a torn
tail a crash could have left (a bad record followed by good ones, a missing
snapshot, a gap between segments). The node must not start on it: silently
skipping such damage could forget a vote or an acknowledged entry, which
breaks Raft's safety for the whole cluster.

Caller bugs (an append that would leave a gap, a snapshot older than the
current one) raise `ValueError` instead: they are not properties of the disk.
"""

from __future__ import annotations


class StorageError(Exception):
    """The data directory is unusable: locked, corrupt or inconsistent."""


class DataDirDamaged(StorageError):
    """Recovery found damage a crash cannot leave (not a torn tail): the data
    dir cannot be used as it is, and only a new copy of its state (from the
    cluster, or a backup) brings the node back."""

    def __init__(self, data_dir: str, reason: str) -> None:
        self.data_dir = data_dir
        self.reason = reason.removeprefix(f"{data_dir}: ")
        super().__init__(f"data dir {data_dir} is damaged: {self.reason}")
