"""`qcore snapshot restore FILE --data-dir DIR --id N --initial-cluster 1=h:p,...`

Writes the data dir of one member of a *new* cluster that starts from a
backup (etcdutl's convention): run it once per member, with the same file
and the same `--initial-cluster`, then start each member on its data dir.
The data dir holds the backup's state as a snapshot at the backup's index,
with the new member list as its configuration, so the members elect a
leader among themselves and go on from there. The new cluster's identity is
derived from the member list and the backup's checksum: its members never
talk to the old cluster's.

The data dir is built in a staging dir and renamed into place at the end,
so the target is either untouched or complete, never half-written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from qcore.cli.progress import Progress
from qcore.cli.argtypes import members
from qcore.node.cluster_identity import FILE_NAME as CLUSTER_FILE
from qcore.node.cluster_identity import UNFINISHED_RESTORE, Identity, derived_id, write_identity
from qcore.node.state_machine import StateMachine
from qcore.raft.types import ConfState, HardState, Snapshot, SnapshotMeta
from qcore.storage import FileStorage
from qcore.storage.backup_file import BackupError, read_backup
from qcore.storage.fs import FileSystem

MOUNT_STAGE = UNFINISHED_RESTORE  # the staging dir inside a target that is a mount point
_FS = FileSystem()


def restore_data_dir(backup: Path, data_dir: Path, node_id: int, members: dict[int, str]) -> str:
    """Write the data dir; returns a one-line summary. Raises BackupError / ValueError."""
    if node_id not in members:
        raise ValueError(f"--initial-cluster does not list --id {node_id}")
    if data_dir.exists() and any(p.name != MOUNT_STAGE for p in data_dir.iterdir()):
        if (data_dir / MOUNT_STAGE).exists():
            raise ValueError(f"{data_dir} holds a restore that did not finish ({data_dir / MOUNT_STAGE}): "
                             "empty it and run the restore again")
        raise ValueError(f"{data_dir} is not empty: restore writes a new member's data dir")
    bar = Progress(f"reading {backup.name}")
    try:
        header, data = read_backup(backup, lambda n: bar.update(n, None))
    finally:
        bar.finish()
    bar.total = header.size
    try:
        store = StateMachine()
        store.restore(data, header.index)  # refuses a payload that does not decode
    except Exception as exc:
        raise BackupError(f"{backup}: the snapshot data does not decode: {exc}") from None
    entities = store.store.entity_count()
    conf = ConfState(voters=tuple(sorted(members)), addresses=dict(members))
    snap = Snapshot(SnapshotMeta(index=header.index, term=1, conf_state=conf), data)
    stage = _staging_dir(data_dir)
    try:
        write_identity(stage, Identity(derived_id(members, f"restore:{header.sha256}")), node_id)
        storage = FileStorage(stage)
        try:
            storage.save(HardState(term=1, vote=0, commit=header.index), [], snap, True)
        finally:
            storage.close()
        _move_into_place(stage, data_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return (f"restored {backup} (index {header.index}, {entities} entities, {header.size} bytes) into {data_dir} "
            f"as node {node_id} of {','.join(f'{i}={a}' for i, a in sorted(members.items()))}")


def _staging_dir(data_dir: Path) -> Path:
    """A new empty dir on the target's file system that no node would take for a data dir."""
    if os.path.ismount(data_dir):  # a volume: build inside it, since a sibling is on another file system
        stage = data_dir / MOUNT_STAGE
    else:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = data_dir.parent / f".{data_dir.name}.restoring"
    shutil.rmtree(stage, ignore_errors=True)  # left by a restore that was killed
    stage.mkdir()
    return stage


def _move_into_place(stage: Path, data_dir: Path) -> None:
    """Rename the complete, fsynced staging dir to `data_dir` (absent or empty) and fsync its parent.

    In a mount point the files are renamed one by one, `cluster.json` last, and moved back
    if that fails; the staging dir, removed last, marks a restore cut short in between
    (a node refuses to start on it, and restore to overwrite it).
    """
    if stage.parent == data_dir:
        moved: list[str] = []
        try:
            for name in sorted(os.listdir(stage), key=lambda n: n == CLUSTER_FILE):
                os.rename(stage / name, data_dir / name)
                moved.append(name)
        except BaseException:
            for name in moved:
                os.rename(data_dir / name, stage / name)
            raise
        _FS.fsync_dir(str(data_dir))
        stage.rmdir()
        _FS.fsync_dir(str(data_dir))
    else:
        os.rename(stage, data_dir)  # replaces an empty dir
        _FS.fsync_dir(str(data_dir.parent))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="qcore snapshot restore",
                                description="Write the data dir of a member of a new cluster from a backup.")
    p.add_argument("file", type=Path, help="a file written by `qcore-cli snapshot save`")
    p.add_argument("--data-dir", type=Path, required=True, help="the new member's data dir (must be empty)")
    p.add_argument("--id", type=int, required=True, help="the new member's id")
    p.add_argument("--initial-cluster", type=members, required=True, metavar="ID=HOST:PORT,...",
                   help="every member of the new cluster (the same on every member)")
    a = p.parse_args(argv)
    if a.id not in a.initial_cluster:  # a usage error (exit 2), as a bad --initial-cluster is
        p.error(f"--initial-cluster does not list --id {a.id}")
    try:
        print(restore_data_dir(a.file, a.data_dir, a.id, a.initial_cluster))
    except (BackupError, ValueError, OSError) as exc:
        print(f"qcore snapshot restore: {exc}", file=sys.stderr)
        return 1
    return 0
