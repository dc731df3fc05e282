"""Serialising a node's own snapshot in a forked child process.

On a thread, the encoder shares the interpreter lock with the node's loop:
at 1M entities ~1.6 s of CPU during which every request waits its turn for
the lock. A child forked from the builder thread holds a copy-on-write
image of the state's copy (`Store.clone`, taken in the round), encodes it
at a lower CPU priority (`NICE`) and hands the bytes back through a pipe,
while the loop keeps the interpreter to itself: the child takes CPU the
node's loop leaves idle first (Redis writes its snapshots the same way).

The child does nothing but the build: it closes every inherited descriptor
but the pipe's (so sockets, the data dir's lock and the log close when the
node does, even mid-build), never logs, never returns to the caller's code
(`os._exit`), and dies with a broken pipe if the node went away.
"""

from __future__ import annotations

import os
from typing import Callable

NICE = 10  # below the node's own loop: CFS gives it about a tenth of a busy CPU's time
_READ = 1 << 20


class ChildBuildFailed(RuntimeError):
    pass


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")


def build_in_child(builder: Callable[[], bytes], child: Callable[[int | None], None] = lambda pid: None) -> bytes:
    """What `builder()` returns, computed in a forked child. `child` gets its
    pid once it runs and None before it is reaped (until then the pid is
    the child's, to kill if the node stops first). Call it from a thread of
    its own: it blocks until the child is done."""
    r, w = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        _child(builder, r, w)
    os.close(w)
    child(pid)
    chunks = []
    try:
        while chunk := os.read(r, _READ):
            chunks.append(chunk)
    finally:
        os.close(r)
        child(None)
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise ChildBuildFailed(f"the snapshot's child process {pid} ended with {code}")
    return b"".join(chunks)


def _child(builder: Callable[[], bytes], r: int, w: int) -> None:  # pragma: no cover
    code = 1
    try:
        os.close(r)
        os.closerange(3, w)
        os.closerange(w + 1, _max_fd())
        os.nice(NICE)
        view = memoryview(builder())
        while view:
            view = view[os.write(w, view):]
        code = 0
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1 << 16
