"""The file-system operations storage performs, behind one small seam.

Every mutation of a data directory goes through a `FileSystem`, so the
crash-consistency tests can record the exact sequence of writes, fsyncs,
renames and unlinks and replay any prefix of it (with the last write torn)
into a fresh directory. Reads use plain `open()`: they change nothing.

`lock_dir` is separate: its locks protect a live directory from a second
process and are not part of what a crash leaves behind.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Sequence

from .errors import StorageError

logger = logging.getLogger(__name__)


class FileSystem:
    """Real POSIX I/O. All paths are absolute or relative to the process cwd."""

    def create(self, path: str) -> int:
        """A new, empty file for writing; fails if it exists (tmp names are unique)."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def open_write(self, path: str) -> int:
        """An existing file, for writes at explicit offsets (`write_at`)."""
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def write(self, fd: int, parts: Sequence[bytes | memoryview]) -> None:
        """Write all of `parts`, in order, with as few system calls as possible."""
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            _consume(views, os.writev(fd, views[:1024]))

    def write_at(self, fd: int, offset: int, parts: Sequence[bytes | memoryview]) -> None:
        """Write all of `parts`, in order, starting at `offset`."""
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            n = os.pwritev(fd, views[:1024], offset)
            offset += n
            _consume(views, n)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def datasync(self, fd: int) -> None:
        """Make a file's data (and its size) durable, without other metadata:
        into space already written, this is no journal commit on ext4."""
        os.fdatasync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def mkdir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def fsync_dir(self, path: str) -> None:
        """Make creations, renames and unlinks in `path` durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def lock_dir(path: str) -> list[int]:
    """Take exclusive, non-blocking flocks on `path`/LOCK and on `path`
    itself; return their fds (for `unlock_dir`).

    The locks die with the process (even on kill -9), so a stale LOCK file
    never blocks a restart. The holder's pid is written in for the message.
    The directory's own lock keeps a second process out even when the LOCK
    file was deleted by hand (taken for a stale one) while the dir was in
    use; on a file system that cannot flock a directory the LOCK file's
    lock is the only one.
    """
    lock_path = os.path.join(path, "LOCK")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {lock_path!r}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StorageError(
                f"data dir {path!r} is locked by process {holder}: another node "
                "(or another FileStorage) is using it, and two must never share a data dir"
            ) from None
        raise StorageError(f"cannot lock data dir {path!r}: {exc}") from exc
    fds = [fd]
    try:
        dir_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fds.append(dir_fd)
        except OSError as exc:
            os.close(dir_fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StorageError(
                    f"data dir {path!r} is locked by another process, although its LOCK file was free: "
                    "the LOCK file was deleted while a node used the dir (which process holds it is "
                    f"unknown: look for a qcore process with this --data-dir), and two must never share a data dir"
                ) from None
            logger.debug("cannot flock the directory %s (%s): its LOCK file alone locks it", path, exc)
    except BaseException:
        unlock_dir(fds)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fds


def unlock_dir(fds: list[int]) -> None:
    for fd in fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _consume(views: list[memoryview], n: int) -> None:
    """Drop the first `n` bytes of `views` (what a short write wrote)."""
    while n and views:
        if n >= len(views[0]):
            n -= len(views.pop(0))
        else:
            views[0] = views[0][n:]
            n = 0
