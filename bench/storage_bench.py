"""Storage benchmark (not a test): how fast the durable log and snapshots are on this disk.

    .venv/bin/python bench/storage_bench.py [--dir DIR] [--seconds S] [--snapshot-mb N] [--json]

Prints, for 100-byte and 4 KB entries at batch sizes 1, 16 and 256: entries/s
and MB/s of synced save() calls shaped like the node's (a batch plus a
hard-state change, one fsync each); the raw fsyncs/s of the disk (4 KB write +
fsync, the ceiling for batch 1); snapshot write and read MB/s; how fast
recovery replays the log; and, on /dev/shm where fsync costs nothing, the
CPU ceiling of the code itself. Run it on the disk the data dir will live on
(--dir); the default is a temporary directory under the current one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qcore.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta  # noqa: E402
from qcore.storage import FileStorage  # noqa: E402


def raw_fsyncs(path: str, seconds: float) -> float:
    fd = os.open(os.path.join(path, "fsync.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"\0" * 4096
    n = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            os.write(fd, block)
            os.fsync(fd)
            n += 1
    finally:
        os.close(fd)
    return n / (time.perf_counter() - start)


def appends(path: str, size: int, batch: int, seconds: float) -> dict[str, float]:
    """Synced saves of `batch` entries of `size` bytes, each with a new commit index."""
    st = FileStorage(path)
    data = os.urandom(size)
    index = 1
    saves = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or saves < 3:
        ents = [Entry(1, i, data=data) for i in range(index, index + batch)]
        st.save(HardState(1, 1, index - 1), ents, None, True)
        index += batch
        saves += 1
    elapsed = time.perf_counter() - start
    st.close()
    n = index - 1
    rec_start = time.perf_counter()
    st = FileStorage(path)
    recovered = len(st.recover().entries)
    rec_elapsed = time.perf_counter() - rec_start
    st.close()
    assert recovered == n
    return {
        "entry_bytes": size,
        "batch": batch,
        "entries_per_s": n / elapsed,
        "mb_per_s": n * size / elapsed / 1e6,
        "saves_per_s": saves / elapsed,
        "recover_entries_per_s": n / rec_elapsed,
    }


def snapshots(path: str, mb: int) -> dict[str, float]:
    data = os.urandom(1 << 20) * mb
    st = FileStorage(path)
    st.save(HardState(1, 1, 0), [Entry(1, 1)], None, True)
    start = time.perf_counter()
    st.save(HardState(2, 1, 100), [], Snapshot(SnapshotMeta(100, 2, ConfState(voters=(1,))), data), True)
    write = time.perf_counter() - start
    st.close()
    start = time.perf_counter()
    st = FileStorage(path)
    rec = st.recover()
    read = time.perf_counter() - start
    st.close()
    assert rec.snapshot is not None and len(rec.snapshot.data) == len(data)
    return {"snapshot_mb": mb, "write_mb_per_s": len(data) / write / 1e6, "read_mb_per_s": len(data) / read / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=".", help="where to create the scratch data dirs")
    ap.add_argument("--seconds", type=float, default=2.0, help="per append case")
    ap.add_argument("--snapshot-mb", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="qcore-storage-bench-", dir=args.dir)
    try:
        result: dict[str, object] = {"dir": root, "raw_fsyncs_per_s": raw_fsyncs(root, args.seconds)}
        rows = []
        for size in (100, 4096):
            for batch in (1, 16, 256):
                rows.append(appends(os.path.join(root, f"log-{size}-{batch}"), size, batch, args.seconds))
        result["appends"] = rows
        result["snapshot"] = snapshots(os.path.join(root, "snap"), args.snapshot_mb)
        if os.path.isdir("/dev/shm"):  # fsync is free in RAM: what the code itself costs
            ram = tempfile.mkdtemp(prefix="qcore-storage-bench-", dir="/dev/shm")
            try:
                result["cpu_ceiling"] = [
                    appends(os.path.join(ram, f"log-{size}"), size, 256, args.seconds) for size in (100, 4096)
                ]
            finally:
                shutil.rmtree(ram, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"raw fsyncs/s (4 KB write + fsync): {result['raw_fsyncs_per_s']:.0f}")
    print(f"{'entry':>6} {'batch':>5} {'entries/s':>11} {'MB/s':>8} {'saves/s':>8} {'recover entries/s':>18}")
    for r in rows:
        print(
            f"{r['entry_bytes']:>6} {r['batch']:>5} {r['entries_per_s']:>11.0f} {r['mb_per_s']:>8.1f} "
            f"{r['saves_per_s']:>8.0f} {r['recover_entries_per_s']:>18.0f}"
        )
    for r in result.get("cpu_ceiling", []):
        print(
            f"CPU ceiling (tmpfs, fsync free), {r['entry_bytes']} B x 256: {r['entries_per_s']:.0f} entries/s, "
            f"recovery {r['recover_entries_per_s']:.0f} entries/s"
        )
    s = result["snapshot"]
    print(f"snapshot {s['snapshot_mb']} MB: write {s['write_mb_per_s']:.0f} MB/s, read {s['read_mb_per_s']:.0f} MB/s")


if __name__ == "__main__":
    main()
