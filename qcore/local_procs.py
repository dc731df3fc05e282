"""Running qcore nodes as local processes on loopback.

The tests' harness, ``python -m qcore.chaos`` and ``qcore bench`` each start nodes
their own way (a blocking ``Popen``, an asyncio subprocess with a crash
watcher, a benchmark's child group), but they must agree on how a node is
invoked and share the small chores around it: finding free ports, building
the node's command line, showing the end of its log when something fails.
Those live here, once.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["ephemeral_range", "free_port", "free_ports", "node_argv", "log_tail"]


#: Ports below this are left to well-known services.
_PORT_FLOOR = 10000
_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux's default where it cannot be read)."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _listen_pool() -> range | None:
    """Where to choose listening ports: outside the ephemeral range, so no
    outgoing connection can hold a node's port while the node is down
    between a kill and its restart (its bind would then fail)."""
    low, high = ephemeral_range()
    below, above = range(_PORT_FLOOR, low), range(high + 1, 65536)
    best = max(below, above, key=len)
    return best if len(best) >= 1000 else None


def free_ports(count: int) -> list[int]:
    """Loopback ports that are free now, all distinct (they are bound
    together before any is released), chosen at random outside the kernel's
    ephemeral range (`_listen_pool`). Another process could still take one
    before the caller binds it; choosing at random makes that rare."""
    pool = _listen_pool()
    pick = random.SystemRandom()  # not the global RNG, which tests may seed alike
    socks: list[socket.socket] = []
    try:
        misses = 0
        while len(socks) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", pick.choice(pool) if pool is not None else 0))
            except OSError:
                s.close()
                misses += 1
                if misses > 1000:
                    raise
                continue
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
