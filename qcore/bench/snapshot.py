"""Snapshot figures at scale, measured in-process on :class:`qcore.store.Store`.

A node's snapshot is ``Store.snapshot()`` bytes written to disk, and a node
that installs one runs ``Store.restore()``; timing those directly (rather
than through a cluster) isolates the cost the "restore of 1M entities
<= 5 s" target is about. The store has the ``tree4`` shape: entities spread
over 1,000 parents, four fields written each (a 64-byte String among them).
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from qcore.bench import report
from qcore.bench.machine import describe, one_line


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build_store(entities: int) -> Any:
    """A store of ``entities`` of the ``tree4`` shape (qcore.bench.shapes)."""
    from qcore.bench.shapes import SHAPES, fill_store

    return fill_store(SHAPES["tree4"], entities)


def measure_snapshot(entities: int) -> dict[str, Any]:
    """Build, snapshot, write (fsync), read back and restore; times in seconds."""
    from qcore.store import Store

    gc.collect()
    rss0 = _rss()
    t0 = time.perf_counter()
    store = build_store(entities)
    build_s = time.perf_counter() - t0
    rss_store = _rss() - rss0

    t0 = time.perf_counter()
    data = store.snapshot()
    snapshot_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="qcore-snap-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None) as tmp:
        path = Path(tmp) / "snapshot.bin"
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        write_s = time.perf_counter() - t0
        count = store.entity_count()
        del store, data
        gc.collect()
        t0 = time.perf_counter()
        raw = path.read_bytes()
        restored = Store.restore(raw)
        restore_s = time.perf_counter() - t0
        size = len(raw)
    if restored.entity_count() != count:
        raise RuntimeError(f"restore lost entities: {restored.entity_count()} != {count}")
    return {
        "entities": entities,
        "store_entities": count,
        "build_s": build_s,
        "store_rss_bytes": rss_store,
        "snapshot_bytes": size,
        "snapshot_s": snapshot_s,
        "write_fsync_s": write_s,
        "restore_s": restore_s,
    }


def format_snapshot(r: dict[str, Any]) -> str:
    return (
        f"store with {r['store_entities']:,} entities (built in {r['build_s']:.1f} s, ~{r['store_rss_bytes'] / 2**20:.0f} MiB RSS):\n"
        f"  snapshot size     {r['snapshot_bytes'] / 2**20:10.1f} MiB\n"
        f"  Store.snapshot()  {r['snapshot_s']:10.2f} s\n"
        f"  write + fsync     {r['write_fsync_s']:10.2f} s\n"
        f"  read + restore    {r['restore_s']:10.2f} s"
    )


def run_snapshot_bench(entities: int, out: Path) -> int:
    machine = describe(Path("/var/tmp") if Path("/var/tmp").is_dir() else Path("."))
    print(f"machine: {one_line(machine)}", flush=True)
    print(f"building a store with {entities:,} entities in-process...", flush=True)
    r = measure_snapshot(entities)
    print(format_snapshot(r))
    report.write_json(out / "snapshot.json", {"kind": "qcore-bench-snapshot", "machine": machine, "result": r})
    print(f"wrote {out / 'snapshot.json'}")
    return 0
