"""Record every mutation FileStorage makes, and rebuild the directory a crash
after any of them could leave behind.

The recorder sits *under* FileStorage, at the file-system seam
(`qcore.storage.fs.FileSystem`): the storage code runs unchanged and the
operations really happen; the recording is only read afterwards.

A crash state is built from a prefix of the operations, in a fresh
directory, with two kinds of damage a crash can add to the last step:
- a write not yet fsynced torn: the last one cut to any length or with
  bytes flipped in it, earlier unsynced ones cut short;
- directory operations (create, rename, unlink) that no directory fsync has
  made durable yet undone, as if the metadata never reached the disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from qcore.storage.fs import FileSystem

Op = tuple  # ("write", path, offset, data) | ("fsync", path) | ("create", path) | ...


class RecordingFs(FileSystem):
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._paths: dict[int, str] = {}

    def create(self, path: str) -> int:
        fd = super().create(path)
        self._paths[fd] = path
        self.ops.append(("create", path))
        return fd

    def open_append(self, path: str) -> int:
        fd = super().open_append(path)
        self._paths[fd] = path
        return fd

    def open_write(self, path: str) -> int:
        fd = super().open_write(path)
        self._paths[fd] = path
        return fd

    def write_at(self, fd: int, offset: int, parts: Sequence[bytes | memoryview]) -> None:
        super().write_at(fd, offset, parts)
        self.ops.append(("write", self._paths[fd], offset, b"".join(bytes(p) for p in parts)))

    def datasync(self, fd: int) -> None:
        super().datasync(fd)
        self.ops.append(("fsync", self._paths[fd]))

    def write(self, fd: int, parts: Sequence[bytes | memoryview]) -> None:
        offset = os.fstat(fd).st_size
        super().write(fd, parts)
        self.ops.append(("write", self._paths[fd], offset, b"".join(bytes(p) for p in parts)))

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self.ops.append(("fsync", self._paths[fd]))

    def close(self, fd: int) -> None:
        super().close(fd)
        self._paths.pop(fd, None)

    def truncate(self, fd: int, size: int) -> None:
        super().truncate(fd, size)
        self.ops.append(("truncate", self._paths[fd], size))

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        self.ops.append(("rename", src, dst))

    def unlink(self, path: str) -> None:
        existed = os.path.exists(path)
        super().unlink(path)
        if existed:
            self.ops.append(("unlink", path))

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self.ops.append(("fsync_dir", path))


def volatile_dir_ops(ops: Sequence[Op]) -> set[int]:
    """Positions of directory operations after the last directory fsync."""
    last_sync = max((k for k, op in enumerate(ops) if op[0] == "fsync_dir"), default=-1)
    return {k for k, op in enumerate(ops) if k > last_sync and op[0] in ("create", "rename", "unlink")}


def unsynced_writes(ops: Sequence[Op]) -> list[int]:
    """Positions of writes whose file has not been fsynced since (following renames)."""
    names: dict[str, int] = {}  # path -> file identity
    pending: dict[int, list[int]] = {}  # file identity -> unsynced write positions
    for k, op in enumerate(ops):
        kind = op[0]
        if kind == "create" or (kind == "write" and op[1] not in names):
            names[op[1]] = k
        if kind == "write":
            pending.setdefault(names[op[1]], []).append(k)
        elif kind == "fsync" and op[1] in names:
            pending.pop(names[op[1]], None)
        elif kind == "rename" and op[1] in names:
            names[op[2]] = names.pop(op[1])
    return sorted(k for ks in pending.values() for k in ks)


def materialize(
    ops: Sequence[Op], src: str, dst: str, skip: set[int] = frozenset(), data: dict[int, bytes] | None = None
) -> None:
    """Apply `ops` (recorded in directory `src`) to the empty directory `dst`.

    `skip`: operations to leave out. `data`: replacement data for some write
    operations (a torn or damaged version of what was written).
    """
    data = data or {}

    def where(path: str) -> str:
        assert path.startswith(src + os.sep), path
        return dst + path[len(src) :]

    for k, op in enumerate(ops):
        if k in skip:
            continue
        kind = op[0]
        if kind == "write":
            path = where(op[1])
            if not os.path.exists(path):
                continue  # its creation was lost
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data.get(k, op[3]), op[2])
            finally:
                os.close(fd)
        elif kind == "create":
            open(where(op[1]), "wb").close()
        elif kind == "truncate":
            if os.path.exists(where(op[1])):
                os.truncate(where(op[1]), op[2])
        elif kind == "rename":
            if os.path.exists(where(op[1])):
                os.rename(where(op[1]), where(op[2]))
        elif kind == "unlink":
            if os.path.exists(where(op[1])):
                os.unlink(where(op[1]))
        # fsync / fsync_dir change nothing in the crash model's file contents
