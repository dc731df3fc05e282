"""SIGTERM to ``qcore bench`` or ``python -m qcore.chaos`` kills what the run
started: no node, load generator or grandchild outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qcore.run_guard import descendants

REPO = Path(__file__).resolve().parents[1]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(parent: int) -> dict[int, bytes]:
    """The processes `parent` started: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if fields is not None and int(fields[1]) == parent:
            found[int(entry)] = cmdline
    return found


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _survivors(pids: list[int], timeout: float = 10) -> list[int]:
    """Those of `pids` still alive once a SIGKILL sent to them has had
    `timeout` to land (killed here, so a failing test leaves nothing behind)."""
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def _wait_for_children(proc: subprocess.Popen[bytes], want: int, marker: bytes, timeout: float = 90) -> dict[int, bytes]:
    """Poll (a separate process offers no event to await) until `proc` has
    `want` children whose command line holds `marker`."""
    deadline = time.monotonic() + timeout
    while True:
        started = _children(proc.pid)
        if sum(marker in c for c in started.values()) >= want:
            return started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {want} children with {marker!r}: {started}"
        time.sleep(0.1)


def _terminate(proc: subprocess.Popen[bytes]) -> bytes:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


def _run(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_descendants_lists_children_and_grandchildren_parents_first() -> None:
    shell = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    try:
        deadline = time.monotonic() + 30
        while not _children(shell.pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (sleeper,) = _children(shell.pid)
        found = descendants(os.getpid())
        assert shell.pid in found and sleeper in found
        assert found.index(shell.pid) < found.index(sleeper)
        assert os.getpid() not in found
    finally:
        for pid in descendants(shell.pid) + [shell.pid]:
            os.kill(pid, signal.SIGKILL)
        shell.wait()


def test_sigterm_to_a_bench_kills_its_node_and_load_generator(tmp_path: Path) -> None:
    bench = _run("-m", "qcore", "bench", "run", "--nodes", "1", "--workloads", "write", "--concurrency", "1",
                 "--duration", "120", "--no-ceiling", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out"))
    started = _wait_for_children(bench, 1, b"qcore.bench.loadgen")
    assert any(b"--data-dir" in c for c in started.values())
    err = _terminate(bench)
    assert bench.returncode == 128 + signal.SIGTERM, err.decode(errors="replace")[-2000:]
    assert b"qcore bench: SIGTERM: killed the" in err
    assert _survivors(list(started)) == []


def test_sigterm_to_a_chaos_run_kills_its_nodes(tmp_path: Path) -> None:
    chaos = _run("-m", "qcore.chaos", "--nodes", "3", "--spares", "0", "--workers", "1", "--duration", "120",
                 "--dir", str(tmp_path / "run"))
    started = _wait_for_children(chaos, 3, b"--data-dir")
    err = _terminate(chaos)
    assert chaos.returncode == 128 + signal.SIGTERM, err.decode(errors="replace")[-2000:]
    assert b"python -m qcore.chaos: SIGTERM: killed the" in err
    assert _survivors(list(started)) == []
