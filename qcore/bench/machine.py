"""What machine the figures were measured on (stored with every result file)."""

from __future__ import annotations

import os
import platform
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
    }


def one_line(desc: dict[str, Any]) -> str:
    return (
        f"{desc['nproc']} CPUs ({desc['cpu_model']}), {desc['mem_total_bytes'] / 2**30:.1f} GiB, "
        f"Python {desc['python']}, {desc['event_loop']}, data dirs on {desc['data_dir_fs']}, "
        f"etcd {desc['etcd']}, pysyncobj {desc['pysyncobj']}"
    )
