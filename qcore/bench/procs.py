"""Child processes for benches: start, wait until listening, measure, stop.

Every server a bench starts is a child process with its output in a log
file under the bench's work directory, so a failed start can be explained
by pointing at that file; every child is stopped (SIGTERM, then SIGKILL)
when the bench ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qcore.local_procs import log_tail

logger = logging.getLogger(__name__)


class Child:
    """One server process with its log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        full_env = child_env()
        if env:
            full_env.update(env)
        logger.debug("starting %s: %s", name, " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident set size now (Linux /proc), 0 if unknown."""
        return self._status_bytes("VmRSS:")

    def peak_rss_bytes(self) -> int:
        """The largest resident set size so far (a snapshot build's copy included), 0 if unknown."""
        return self._status_bytes("VmHWM:")

    def _status_bytes(self, key: str) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class ChildError(RuntimeError):
    """A child process failed to start or died."""


async def wait_listening(child: Child, host: str, port: int, timeout: float = 30.0) -> None:
    """Wait until ``host:port`` accepts connections (or the child dies)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if not child.alive():
            raise ChildError(f"{child.name} exited with {child.proc.returncode}; log {child.log_path}:\n{child.log_tail()}")
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ChildError(f"{child.name} not listening on {host}:{port} after {timeout}s; log {child.log_path}")
        await asyncio.sleep(delay)  # polling a port the child will open; there is no event to await
        delay = min(delay * 1.5, 0.25)


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """The environment for Python children: they must import this same qcore, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class ChildGroup:
    """The server processes of one benchmarked cluster, handled together."""

    children: list[Child]

    def rss_bytes(self) -> list[int]:
        return [c.rss_bytes() for c in self.children]

    def peak_rss_bytes(self) -> list[int]:
        return [c.peak_rss_bytes() for c in self.children]

    def check_alive(self) -> None:
        for c in self.children:
            if not c.alive():
                raise ChildError(f"{c.name} died; log {c.log_path}:\n{c.log_tail()}")

    def stop(self) -> None:
        for c in self.children:
            c.stop()
