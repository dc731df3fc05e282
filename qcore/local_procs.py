"""Running qcore nodes as local processes on loopback.

The tests' harness, ``python -m qcore.chaos`` and ``qcore bench`` each start nodes
their own way (a blocking ``Popen``, an asyncio subprocess with a crash
watcher, a benchmark's child group), but they must agree on how a node is
invoked and share the small chores around it: finding free ports, building
the node's command line, showing the end of its log when something fails.
Those live here, once.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["free_port", "free_ports", "node_argv", "log_tail"]


def free_ports(count: int) -> list[int]:
    """Loopback ports the kernel says are free now, all distinct (they are
    bound together before any is released). Another process could take one
    before the caller binds it; on a test machine that is rare enough."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """One free loopback port (see `free_ports`)."""
    return free_ports(1)[0]


def node_argv(
    node_id: int,
    addr: str,
    config_file: Path | str | None,
    data_dir: Path | str,
    *extra: str,
    program: Sequence[str] | None = None,
) -> list[str]:
    """The command line of one node: ``python -m qcore --id N --ws-addr ADDR
    --config-file F --data-dir D`` plus `extra` (SPEC 1); no ``--config-file``
    if `config_file` is None. `program` replaces ``python -m qcore`` (the chaos
    tests run a fake node through it)."""
    return [
        *(program if program is not None else (sys.executable, "-m", "qcore")),
        "--id", str(node_id),
        "--ws-addr", addr,
        *(("--config-file", str(config_file)) if config_file is not None else ()),
        "--data-dir", str(data_dir),
        *extra,
    ]


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a node's log file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
