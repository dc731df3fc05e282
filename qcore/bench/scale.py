"""Throughput and memory against the number of entities (``qcore bench scale``).

For each size a fresh cluster is started, filled with that many entities
over the wire (CreateEntity, pipelined; its rate is reported too), and one
workload is run with the clients spread over a sample of all entities. The
resident memory of every node is read before and after.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from qcore.bench import report
from qcore.bench.cluster import QcoreCluster
from qcore.bench.machine import describe, one_line
from qcore.bench.runner import measure

logger = logging.getLogger(__name__)


def scale_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'entities':>10} {'fill/s':>8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'max RSS MiB':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("failed"):
            lines.append(f"{r['entities']:>10} FAILED: {r['failed'][:80]}")
            continue
        lines.append(
            f"{r['entities']:>10} {r['fill_per_s']:>8.0f} {r['ops_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{int(r['errors']):>7} {max(r['rss_bytes']) / 2**20:>12.0f}"
        )
    return "\n".join(lines)


async def run_scale(args: argparse.Namespace, workdir: Path) -> int:
    machine = describe(workdir)
    print(f"machine: {one_line(machine)}", flush=True)
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        cluster = QcoreCluster(args.nodes, workdir / f"scale-{size}", args.qcore_arg)
        row: dict[str, Any] = {"entities": size, "nodes": args.nodes, "workload": args.workload, "concurrency": args.concurrency}
        try:
            await cluster.start()
            t0 = time.perf_counter()
            params = await cluster.prepare(size)
            fill_s = time.perf_counter() - t0
            row.update(fill_s=fill_s, fill_per_s=size / fill_s, rss_after_fill_bytes=cluster.rss_bytes())
            r = await measure(
                system="qcore", nodes=args.nodes, target="qcore", params=params, endpoints=cluster.endpoints,
                workload=args.workload, concurrency=args.concurrency, duration=args.duration, warmup=args.warmup,
                procs=args.procs,
            )
            if r.failed:
                row["failed"] = r.failed
            else:
                row.update(r.figures)
            row["rss_bytes"] = cluster.rss_bytes()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next size
            row["failed"] = f"{type(exc).__name__}: {exc}"
        finally:
            cluster.stop()
        rows.append(row)
        print(scale_table([row]).splitlines()[-1], flush=True)
    print()
    print(f"scale: qcore x{args.nodes}, {args.workload}, {args.concurrency} clients")
    print(scale_table(rows))
    for row in rows:
        if row.get("failed"):
            print(f"{row['entities']} entities failed: {row['failed']}")
    ok = [r for r in rows if not r.get("failed")]
    if len(ok) >= 2 and ok[0]["ops_per_s"] > 0:
        print(f"throughput at {ok[-1]['entities']:,} entities = {ok[-1]['ops_per_s'] / ok[0]['ops_per_s']:.2f} x that at {ok[0]['entities']:,}")
    report.write_json(args.out / "scale.json", {"kind": "qcore-bench-scale", "machine": machine, "rows": rows})
    chart = report.scale_chart(rows, args.out)
    print(f"wrote {args.out / 'scale.json'}" + (f", {chart}" if chart else ""))
    return 1 if any(r.get("failed") for r in rows) else 0
