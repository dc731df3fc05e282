"""Bytes per entity of an in-process store, by tracemalloc and by RSS.

    python -m qcore.bench.memory tree4 100000     # prints one JSON object

Run in a process of its own (``qcore bench scale`` starts it after each
cluster is stopped), so that nothing but the store is measured: tracemalloc
counts the bytes Python allocated for the store (everything it reaches,
less what was there before), RSS what the process holds from the OS
(allocator slack included). tracemalloc slows allocation down, so the
store is filled once without it for the RSS and time figures, and once
with it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import tracemalloc
from typing import Any

import orjson

from qcore.bench.shapes import SHAPES, Shape, fill_store


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc), 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(shape_name: str, count: int, traced: bool = True) -> dict[str, Any]:
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # as a node runs (qcore.node.gc_policy)
    try:
        return _measure(SHAPES[shape_name], count, traced)
    finally:
        gc.set_threshold(*thresholds)


def _measure(shape: Shape, count: int, traced: bool) -> dict[str, Any]:
    shape_name = shape.name
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    store = fill_store(shape, count)
    fill_s = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_bytes()
    out: dict[str, Any] = {
        "shape": shape_name, "entities": count, "fill_s": fill_s,
        "rss_bytes_per_entity": (rss1 - rss0) / count,
    }
    t0 = time.perf_counter()
    data = store.snapshot()
    out["snapshot_s"] = time.perf_counter() - t0
    out["snapshot_bytes_per_entity"] = len(data) / count
    del store
    gc.collect()
    t0 = time.perf_counter()
    from qcore.store import Store

    restored = Store.restore(data)
    out["restore_s"] = time.perf_counter() - t0
    del restored
    del data
    gc.collect()
    if traced:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        traced_store = fill_store(shape, count)
        gc.collect()
        out["traced_bytes_per_entity"] = (tracemalloc.get_traced_memory()[0] - base) / count
        tracemalloc.stop()
        assert traced_store.entity_count() >= count
    return out


async def measure_in_child(shape_name: str, count: int, traced: bool = True) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process."""
    args = [sys.executable, "-m", "qcore.bench.memory", shape_name, str(count)] + ([] if traced else ["--no-traced"])
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"in-process memory measurement failed: {err.decode(errors='replace')[-500:]}")
    result: dict[str, Any] = orjson.loads(out.splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in SHAPES:
        print(f"usage: python -m qcore.bench.memory {{{','.join(SHAPES)}}} COUNT [--no-traced]", file=sys.stderr)
        return 2
    print(orjson.dumps(measure(argv[0], int(argv[1]), "--no-traced" not in argv)).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
