"""Snapshot figures at scale, measured in-process on :class:`qcore.store.Store`.

A node's snapshot is ``Store.snapshot()`` bytes written to disk, and a node
that installs one runs ``Store.restore()``; timing those directly (rather
than through a cluster) isolates the cost the issue's "restore <= 10 s at
1M entities" target is about. Every entity gets its 64-byte String and its
Int written once, so the snapshot holds what the write workloads leave.
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
from qcore.bench.targets import BENCH_TYPE, INT_FIELD, STRING_FIELD, payload


def _rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build_store(entities: int) -> Any:
    """A store with the bench schema and ``entities`` BenchItems, each written once."""
    from qcore.store import (
        CreateEntity, EntityList, EntityReference, EntitySchema, FieldSchema, Int, LoadConfig, Store, String,
        Timestamp, UpdateEntity, Write,
    )

    store = Store()
    now = Timestamp(1_700_000_000, 0)
    obj = EntitySchema(
        "Object",
        None,
        {
            "Name": FieldSchema("Name", String(""), 0),
            "Parent": FieldSchema("Parent", EntityReference(None), 1),
            "Children": FieldSchema("Children", EntityList([]), 2),
        },
    )
    item = EntitySchema(
        BENCH_TYPE,
        "Object",
        {STRING_FIELD: FieldSchema(STRING_FIELD, String(""), 3), INT_FIELD: FieldSchema(INT_FIELD, Int(0), 4)},
    )
    resp: Any
    resp, _ = store.apply(LoadConfig(schemas=[obj, item], tree=[]), now)
    if getattr(resp, "error", None):
        raise RuntimeError(f"LoadConfig failed: {resp.error}")
    for i in range(entities):
        resp, _ = store.apply(CreateEntity(BENCH_TYPE, None, f"e{i}"), now)
        eid = resp.response
        store.apply(UpdateEntity([Write(eid, STRING_FIELD, String(payload(0, i))), Write(eid, INT_FIELD, Int(i))]), now)
    return store


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
