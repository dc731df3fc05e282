"""Serialising a node's own snapshot in a forked child process.

On a thread, the encoder shares the interpreter lock with the node's loop:
at 1M entities ~1.6 s of CPU during which every request waits its turn for
the lock, and the thread needs a copy of the state (`Store.clone`, ~0.1 s
and ~190 B per entity) since applying goes on. A child forked within the
round instead holds a copy-on-write image of the state at the snapshot's
index (forking a 600 MB node takes 4-15 ms), encodes it on CPU time nothing
else wants (SCHED_IDLE on Linux, else `NICE`) and hands the bytes back
through a pipe, while the loop keeps the interpreter to itself (Redis writes
its snapshots the same way).

The child does nothing but the build: it closes every inherited descriptor
but the pipe's (so sockets, the data dir's lock and the log close when the
node does, even mid-build), never logs, never returns to the caller's code
(`os._exit`), and dies with the node (on Linux at once, `PR_SET_PDEATHSIG`;
elsewhere with a broken pipe once it has its bytes).
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from typing import Callable

NICE = 10  # below the node's own loop: CFS gives it about a tenth of a busy CPU's time
_PR_SET_PDEATHSIG = 1  # prctl(2)
_READ = 1 << 20


class ChildBuildFailed(RuntimeError):
    pass


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitstatus_to_exitcode")


class ChildBuild:
    """A build running in a child forked by `start`: `collect` (on a thread:
    it blocks) returns its bytes; `kill` ends it early."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd = fd
        self._reaped = False
        self._lock = threading.Lock()  # kill (the loop) against reaping (the builder thread)

    @classmethod
    def start(cls, builder: Callable[[], bytes]) -> ChildBuild:
        """Fork now: the child runs `builder` on its image of this moment."""
        r, w = os.pipe()
        parent = os.getpid()
        try:
            pid = os.fork()
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            _child(builder, r, w, parent)
        os.close(w)
        return cls(pid, r)

    def collect(self) -> bytes:
        chunks = []
        try:
            while chunk := os.read(self._fd, _READ):
                chunks.append(chunk)
        finally:
            os.close(self._fd)
            with self._lock:  # the pipe is at its end: the child is exiting, this is short
                _, status = os.waitpid(self.pid, 0)
                self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise ChildBuildFailed(f"the snapshot's child process {self.pid} ended with {code}")
        return b"".join(chunks)

    def kill(self) -> None:
        """End the child (the node stops); `collect` then fails. A child
        already reaped is left alone: its pid may be another process's."""
        with self._lock:
            if not self._reaped:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _child(builder: Callable[[], bytes], r: int, w: int, parent: int) -> None:  # pragma: no cover
    code = 1
    try:
        _die_with_parent(parent)
        os.close(r)
        os.closerange(3, w)
        os.closerange(w + 1, _max_fd())
        _lower_priority()
        view = memoryview(builder())
        while view:
            view = view[os.write(w, view):]
        code = 0
    finally:
        os._exit(code)


def _lower_priority() -> None:  # pragma: no cover
    """SCHED_IDLE where there is one (Linux): the child runs only on CPU time
    nothing else wants, and a node woken by its disk or a peer preempts it at
    once instead of waiting out its time slice, as it would behind a merely
    niced task. Elsewhere, nice ``NICE``."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(NICE)


def _die_with_parent(parent: int) -> None:  # pragma: no cover
    """On Linux, the kernel kills the child when the node's process ends (a
    kill -9 included) instead of letting it finish a build nobody will read.
    The signal follows the thread that forked: the round's, which lives as
    long as the node."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the child ends when it writes to the closed pipe
    if os.getppid() != parent:  # the node died before the call above
        os._exit(1)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 1 << 16
