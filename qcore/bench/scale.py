"""Throughput and memory against the number of entities (``qcore bench scale``).

For each size a fresh cluster is started and filled over the wire with that
many entities of the ``tree4`` shape (qcore.bench.shapes: spread over 1,000
parents, four fields written each; the fill rate is reported), then one
workload is run with the clients spread over a sample of all entities. Every
node's resident memory is read before the fill, after it and after the
workload; bytes per entity is the largest node's growth over the fill.
Once the cluster is stopped, the same store is built in a process of its
own (qcore.bench.memory) for its tracemalloc and RSS bytes per entity and
its snapshot size, dump and restore times.

Then, each on a one-node cluster of its own: the ``wide10`` shape (ten
fields written per entity) for its bytes per entity, and the flat-folder
comparison (qcore.bench.flat). The issue-23 targets are checked at the end.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from qcore.bench import report
from qcore.bench.cluster import QcoreCluster
from qcore.bench.flat import format_flat, run_flat
from qcore.bench.machine import describe, one_line
from qcore.bench.memory import measure_in_child
from qcore.bench.runner import measure
from qcore.bench.shapes import SHAPES, fill

logger = logging.getLogger(__name__)

RSS_AT_1M_LIMIT = 500_000_000  # bytes per node with 1M tree4 entities
WIDE_LIMIT = 1024  # bytes per entity with ten written fields
RESTORE_1M_LIMIT = 5.0  # seconds
RATIO_LIMIT = 0.8


def scale_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'entities':>10} {'fill/s':>8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'max RSS MiB':>12} {'peak MiB':>9} {'RSS B/ent':>10} {'traced B/ent':>13} {'snap B/ent':>11} {'restore s':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("failed"):
            lines.append(f"{r['entities']:>10} FAILED: {r['failed'][:80]}")
            continue
        m = r.get("in_process") or {}
        lines.append(
            f"{r['entities']:>10} {r['fill_per_s']:>8.0f} {r['ops_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{int(r['errors']):>7} {max(r['rss_bytes']) / 2**20:>12.0f} "
            f"{max(r.get('peak_rss_bytes') or [0]) / 2**20:>9.0f} {r['rss_per_entity']:>10.0f} "
            f"{m.get('traced_bytes_per_entity', float('nan')):>13.0f} {m.get('snapshot_bytes_per_entity', float('nan')):>11.0f} "
            f"{m.get('restore_s', float('nan')):>10.2f}"
        )
    return "\n".join(lines)


def _per_entity(before: list[int], after: list[int], n: int) -> float:
    return max(a - b for a, b in zip(after, before)) / n if before and after and n else 0.0


async def _size_row(args: argparse.Namespace, workdir: Path, size: int) -> dict[str, Any]:
    cluster = QcoreCluster(args.nodes, workdir / f"scale-{size}", args.qcore_arg)
    row: dict[str, Any] = {"entities": size, "nodes": args.nodes, "workload": args.workload,
                           "concurrency": args.concurrency, "shape": "tree4"}
    try:
        await cluster.start()
        rss0 = cluster.rss_bytes()
        t0 = time.perf_counter()
        ids = await fill(cluster.leader, SHAPES["tree4"], size)
        fill_s = time.perf_counter() - t0
        rss1 = cluster.rss_bytes()
        row.update(fill_s=fill_s, fill_per_s=size / fill_s, rss_before_fill_bytes=rss0, rss_after_fill_bytes=rss1,
                   rss_per_entity=_per_entity(rss0, rss1, size))
        sample = ids if len(ids) <= 10_000 else ids[:: len(ids) // 10_000][:10_000]
        r = await measure(
            system="qcore", nodes=args.nodes, target="qcore", params={"entities": sample},
            endpoints=cluster.endpoints, workload=args.workload, concurrency=args.concurrency,
            duration=args.duration, warmup=args.warmup, procs=args.procs,
        )
        if r.failed:
            row["failed"] = r.failed
        else:
            row.update(r.figures)
        row["rss_bytes"] = cluster.rss_bytes()
        row["peak_rss_bytes"] = cluster.peak_rss_bytes()
    except Exception as exc:  # noqa: BLE001 - report and go on to the next size
        row["failed"] = f"{type(exc).__name__}: {exc}"
    finally:
        cluster.stop()
    if not row.get("failed") and not args.no_in_process:
        row["in_process"] = await measure_in_child("tree4", size, traced=not args.no_traced)
    return row


async def _wide(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.wide_entities
    cluster = QcoreCluster(1, workdir / "scale-wide", args.qcore_arg)
    out: dict[str, Any] = {"entities": n, "shape": "wide10"}
    try:
        await cluster.start()
        rss0 = cluster.rss_bytes()
        t0 = time.perf_counter()
        await fill(cluster.leader, SHAPES["wide10"], n)
        out.update(fill_s=time.perf_counter() - t0, rss_before=rss0, rss_after=cluster.rss_bytes())
        out["rss_per_entity"] = _per_entity(rss0, out["rss_after"], n)
    finally:
        cluster.stop()
    if not args.no_in_process:
        out["in_process"] = await measure_in_child("wide10", n, traced=not args.no_traced)
    return out


async def _flat(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cluster = QcoreCluster(1, workdir / "scale-flat", args.qcore_arg)
    try:
        await cluster.start()
        return await run_flat(cluster.leader, per_side=args.flat_entities)
    finally:
        cluster.stop()


def targets(rows: list[dict[str, Any]], wide: dict[str, Any] | None, flat: dict[str, Any] | None) -> list[str]:
    """Issue 23's scale targets this run could check, each MET or MISS."""
    out: list[str] = []

    def check(ok: bool, text: str) -> None:
        out.append(f"{'MET ' if ok else 'MISS'} {text}")

    ok = [r for r in rows if not r.get("failed")]
    for r in ok:
        if r["entities"] == 1_000_000:
            rss = max(r["rss_bytes"])
            check(rss <= RSS_AT_1M_LIMIT, f"RSS per node at 1M entities (4 written fields) <= 500 MB: {rss / 1e6:.0f} MB")
            restore = (r.get("in_process") or {}).get("restore_s")
            if restore is not None:
                check(restore <= RESTORE_1M_LIMIT, f"snapshot restore of 1M entities <= 5 s: {restore:.2f} s")
    if len(ok) >= 2 and ok[0]["ops_per_s"] > 0:
        ratio = ok[-1]["ops_per_s"] / ok[0]["ops_per_s"]
        check(ratio >= RATIO_LIMIT, f"write throughput at {ok[-1]['entities']:,} within 20% of {ok[0]['entities']:,}: "
                                    f"{ratio:.2f}x")
    if wide is not None:
        b = wide["rss_per_entity"]
        check(b <= WIDE_LIMIT, f"<= 1 KB per entity with ten written fields: {b:.0f} B (node RSS growth)")
    if flat is not None:
        check(flat["one_vs_spread"] >= RATIO_LIMIT,
              f"creates under one parent >= 0.8x spread over {flat['parents']:,}: {flat['one_vs_spread']:.2f}x")
        check(flat["one_last_vs_first"] >= RATIO_LIMIT,
              f"last {flat['edge_entities']:,} under one parent >= 0.8x the first: {flat['one_last_vs_first']:.2f}x")
    return out


async def run_scale(args: argparse.Namespace, workdir: Path) -> int:
    machine = describe(workdir)
    print(f"machine: {one_line(machine)}", flush=True)
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        row = await _size_row(args, workdir, size)
        rows.append(row)
        print(scale_table([row]).splitlines()[-1], flush=True)
    wide = await _wide(args, workdir) if args.wide_entities else None
    flat = await _flat(args, workdir) if args.flat_entities else None
    print()
    print(f"scale: qcore x{args.nodes}, tree4 fill, {args.workload}, {args.concurrency} clients")
    print(scale_table(rows))
    for row in rows:
        if row.get("failed"):
            print(f"{row['entities']} entities failed: {row['failed']}")
    ok = [r for r in rows if not r.get("failed")]
    if len(ok) >= 2 and ok[0]["ops_per_s"] > 0:
        print(f"throughput at {ok[-1]['entities']:,} entities = {ok[-1]['ops_per_s'] / ok[0]['ops_per_s']:.2f} x that at {ok[0]['entities']:,}")
    if wide is not None:
        m = wide.get("in_process") or {}
        print(f"wide10 (one node, {wide['entities']:,} entities, ten fields written each): node RSS "
              f"{wide['rss_before'][0] / 2**20:.0f} -> {wide['rss_after'][0] / 2**20:.0f} MiB = "
              f"{wide['rss_per_entity']:.0f} B/entity; in-process {m.get('traced_bytes_per_entity', float('nan')):.0f} "
              f"B/entity traced, {m.get('rss_bytes_per_entity', float('nan')):.0f} RSS")
    if flat is not None:
        print(format_flat(flat))
    checks = targets(rows, wide, flat)
    if checks:
        print("\ntargets (issue 23):")
        print("\n".join(checks))
    report.write_json(args.out / "scale.json", {"kind": "qcore-bench-scale", "machine": machine, "rows": rows,
                                                "wide": wide, "flat": flat, "targets": checks})
    chart = report.scale_chart(rows, args.out)
    print(f"wrote {args.out / 'scale.json'}" + (f", {chart}" if chart else ""))
    return 1 if any(r.get("failed") for r in rows) else 0
