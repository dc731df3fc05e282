"""``qcore bench metrics-cost``: what the per-request metrics cost on the hot path.

Two 3-node clusters run side by side, one as shipped and one started with
``--no-metrics`` (no per-request counters, no /metrics); the same write
workload alternates between them, round after round, so that other load on
the machine falls on both alike. The figure is the median writes/s of each
and the relative difference (the goal: at most 3%).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

from qcore.bench import report
from qcore.bench.cluster import QcoreCluster
from qcore.bench.machine import describe, one_line
from qcore.bench.runner import RunResult, measure


async def run_metrics_cost(args: argparse.Namespace, workdir: Path) -> int:
    machine = describe(workdir)
    print(f"machine: {one_line(machine)}", flush=True)
    on = QcoreCluster(args.nodes, workdir / "metrics-on", list(args.qcore_arg))
    off = QcoreCluster(args.nodes, workdir / "metrics-off", [*args.qcore_arg, "--no-metrics"])
    on.system, off.system = "qcore", "qcore-no-metrics"
    results: list[RunResult] = []
    try:
        params = {}
        for s in (on, off):
            await s.start()
            params[s.system] = await s.prepare(args.entities)
        for rnd in range(args.rounds):
            for conc in args.concurrency:
                for s in ((on, off) if rnd % 2 == 0 else (off, on)):
                    r = await measure(
                        system=s.system, nodes=s.nodes, target=s.target, params=params[s.system],
                        endpoints=s.endpoints, workload=args.workload, concurrency=conc, duration=args.duration,
                        warmup=args.warmup, procs=args.procs,
                    )
                    r.extra["loadavg_1m"] = os.getloadavg()[0]
                    results.append(r)
                    f = r.figures
                    print(f"  round {rnd + 1} {s.system} c={conc}: "
                          + (f"FAILED {r.failed.splitlines()[0]}" if r.failed else
                             f"{f['ops_per_s']:.0f} ops/s p50 {f['p50_ms']:.2f} ms"), flush=True)
    finally:
        on.stop()
        off.stop()
    summary = summarise(results, args.concurrency)
    print()
    for row in summary:
        print(f"{args.nodes} nodes, {args.workload}, {row['concurrency']} clients: with metrics {row['with']:.0f} ops/s, "
              f"without {row['without']:.0f} ops/s (medians of {row['runs']}): cost {row['cost_pct']:+.1f}%")
    report.write_json(args.out / "metrics_cost.json", {
        "kind": "qcore-bench-metrics-cost", "machine": machine,
        "config": {"nodes": args.nodes, "workload": args.workload, "concurrency": args.concurrency,
                   "rounds": args.rounds, "duration": args.duration},
        "results": [r.to_json() for r in results], "summary": summary,
    })
    print(f"wrote {args.out / 'metrics_cost.json'}")
    return 1 if any(r.failed for r in results) else 0


def summarise(results: list[RunResult], concurrency: list[int]) -> list[dict[str, Any]]:
    rows = []
    for conc in concurrency:
        def med(system: str) -> tuple[float, int]:
            xs = [r.figures["ops_per_s"] for r in results
                  if r.system == system and r.concurrency == conc and not r.failed]
            return (statistics.median(xs) if xs else 0.0), len(xs)
        with_, n = med("qcore")
        without, _ = med("qcore-no-metrics")
        cost = 100.0 * (without - with_) / without if without else 0.0
        rows.append({"concurrency": conc, "with": with_, "without": without, "runs": n, "cost_pct": cost})
    return rows
