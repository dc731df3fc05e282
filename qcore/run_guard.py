"""Stopping what a run started when the run itself is terminated.

``qcore bench`` and ``python -m qcore.chaos`` start node processes, load
generators and etcd servers, and stop them in ``finally`` blocks. Ctrl-C
reaches those blocks; SIGTERM and SIGHUP (``kill``, a closed terminal, a CI
job's timeout) would end the run without them and leave the children
running. `children_die_with_run` makes those signals kill every descendant
from the signal handler itself, without relying on a cancellation reaching
the right ``await``, and then end the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Iterator

__all__ = ["descendants", "children_die_with_run"]

#: The signals that end a run and its children (Ctrl-C is left to the run's own cleanup).
SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), parents first."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [c for p in frontier for c in children.get(p, [])]
        found += below
        frontier = below
    return found


def _kill_all(pids: list[int]) -> int:
    """SIGKILL each of `pids`; how many were still there to kill."""
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


@contextlib.contextmanager
def children_die_with_run(program: str) -> Iterator[None]:
    """While inside, SIGTERM or SIGHUP kills every descendant of this process
    and exits at once with 128 + the signal's number, saying so on stderr.

    The handler does the killing itself: the run's own cleanup is skipped,
    so its work directory stays behind, as after any failed run. Outside the
    main thread (where Python cannot set handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        killed = _kill_all(descendants(os.getpid()))
        name = signal.Signals(signum).name
        os.write(2, f"{program}: {name}: killed the {killed} processes it had started, and stops\n".encode())
        os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
