"""What machine the figures were measured on (stored with every result file)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _fs_type(path: Path) -> str:
    """Filesystem type of the data dirs: on tmpfs an fsync costs nothing, which changes every write figure."""
    best, fstype = "", "unknown"
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and target.startswith(parts[1]) and len(parts[1]) > len(best):
                best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


def _qcore_commit() -> str:
    """The commit of the qcore tree being measured, when it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        commit_file = root / "COMMIT"
        return commit_file.read_text().strip() if commit_file.is_file() else "unknown"
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def describe(workdir: Path) -> dict[str, Any]:
    from qcore.bench.etcd import etcd_version
    from qcore.bench.peers import pysyncobj_version

    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_bytes": _mem_total(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "event_loop": loop,
        "data_dir_fs": _fs_type(workdir),
        "etcd": etcd_version(),
        "pysyncobj": pysyncobj_version(),
        "qcore_commit": _qcore_commit(),
    }


def one_line(desc: dict[str, Any]) -> str:
    return (
        f"{desc['nproc']} CPUs ({desc['cpu_model']}), {desc['mem_total_bytes'] / 2**30:.1f} GiB, "
        f"Python {desc['python']}, {desc['event_loop']}, data dirs on {desc['data_dir_fs']}, "
        f"etcd {desc['etcd']}, pysyncobj {desc['pysyncobj']}, qcore {desc.get('qcore_commit', '?')}"
    )
