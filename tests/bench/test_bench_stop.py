"""`qcore bench` stopped with SIGTERM stops what it started, as Ctrl-C does:
no node or load-generator process outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _children(parent: int) -> dict[int, bytes]:
    """The processes ``parent`` started: pid -> command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[int(entry)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_nodes_and_generators_it_started(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    bench = subprocess.Popen(
        [sys.executable, "-c", "import sys; from qcore.bench.cli import main; sys.exit(main())",
         "run", "--nodes", "1", "--workloads", "write", "--concurrency", "1", "--duration", "60",
         "--no-ceiling", "--workdir", str(workdir), "--out", str(tmp_path / "out")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        # A separate process: poll for its node and load generator (there is no event to await).
        deadline = time.monotonic() + 60
        started = _children(bench.pid)
        while not (any(b"qcore.bench.loadgen" in c for c in started.values())
                   and any(b"--data-dir" in c for c in started.values())):
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "the bench did not start a node and a generator"
            time.sleep(0.1)
            started = _children(bench.pid)
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, err.decode(errors="replace")[-2000:]
    assert b"interrupted; its servers and load generators are stopped" in err
    assert [pid for pid in started if _alive(pid)] == []
