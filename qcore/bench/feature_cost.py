"""What a feature costs on the hot path, measured as two clusters side by side.

* ``qcore bench metrics-cost``: a 3-node cluster as shipped against one started
  with ``--no-metrics`` (no per-request counters, no /metrics); goal: at most 3%.
* ``qcore bench users-cost``: a cluster with users on (SPEC 8.3), the load
  generator authenticated as a user whose role allows the workload, so every
  request's permissions are checked, against one with users off; goal: at
  most 10% of 3-node write throughput.
* ``qcore bench tls-cost``: a cluster serving TLS with a peer secret (SPEC
  8.1/8.2, the load generator verifying the CA) against a plain one; goal:
  at most 15% of 3-node write throughput.

The same workload alternates between the two, round after round, so that
other load on the machine falls on both alike. The figures are the median
ops/s and p50 of each and the relative difference in ops/s; errors (which
ops/s leaves out) are printed per round and summed per side, so a side that
lost throughput to failed requests says so.
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
from qcore.local_tls import make_local_tls


async def run_metrics_cost(args: argparse.Namespace, workdir: Path) -> int:
    on = QcoreCluster(args.nodes, workdir / "metrics-on", list(args.qcore_arg))
    off = QcoreCluster(args.nodes, workdir / "metrics-off", [*args.qcore_arg, "--no-metrics"])
    on.system, off.system = "qcore", "qcore-no-metrics"
    return await _compare(args, feature=on, without=off, what="metrics", name="metrics_cost")


async def run_users_cost(args: argparse.Namespace, workdir: Path) -> int:
    users = QcoreCluster(args.nodes, workdir / "users-on", list(args.qcore_arg), users=True)
    plain = QcoreCluster(args.nodes, workdir / "users-off", list(args.qcore_arg))
    return await _compare(args, feature=users, without=plain, what="users", name="users_cost")


async def run_tls_cost(args: argparse.Namespace, workdir: Path) -> int:
    tls = QcoreCluster(args.nodes, workdir / "tls-on", list(args.qcore_arg), tls=make_local_tls(workdir / "tls"))
    plain = QcoreCluster(args.nodes, workdir / "tls-off", list(args.qcore_arg))
    return await _compare(args, feature=tls, without=plain, what="TLS", name="tls_cost")


async def _compare(args: argparse.Namespace, *, feature: QcoreCluster, without: QcoreCluster, what: str,
                   name: str) -> int:
    machine = describe(feature.workdir.parent)
    print(f"machine: {one_line(machine)}", flush=True)
    results: list[RunResult] = []
    try:
        params = {}
        for s in (feature, without):
            await s.start()
            params[s.system] = await s.prepare(args.entities)
        for rnd in range(args.rounds):
            for conc in args.concurrency:
                for s in ((feature, without) if rnd % 2 == 0 else (without, feature)):
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
                             f"{f['ops_per_s']:.0f} ops/s p50 {f['p50_ms']:.2f} ms errors {int(f['errors'])}"), flush=True)
    finally:
        feature.stop()
        without.stop()
    summary = summarise(results, args.concurrency, feature.system, without.system)
    print()
    for row in summary:
        print(f"{args.nodes} nodes, {args.workload}, {row['concurrency']} clients: with {what} {row['with']:.0f} ops/s, "
              f"without {row['without']:.0f} ops/s; p50 {row['with_p50_ms']:.2f} against {row['without_p50_ms']:.2f} ms "
              f"(medians of {row['runs']}): cost {row['cost_pct']:+.1f}%; errors {row['with_errors']} with, "
              f"{row['without_errors']} without")
    report.write_json(args.out / f"{name}.json", {
        "kind": f"qcore-bench-{name.replace('_', '-')}", "machine": machine,
        "config": {"nodes": args.nodes, "workload": args.workload, "concurrency": args.concurrency,
                   "rounds": args.rounds, "duration": args.duration},
        "results": [r.to_json() for r in results], "summary": summary,
    })
    print(f"wrote {args.out / f'{name}.json'}")
    return 1 if any(r.failed for r in results) else 0


def summarise(results: list[RunResult], concurrency: list[int], feature: str = "qcore",
              without: str = "qcore-no-metrics") -> list[dict[str, Any]]:
    rows = []
    for conc in concurrency:
        def med(system: str, figure: str) -> tuple[float, int]:
            xs = [r.figures[figure] for r in results
                  if r.system == system and r.concurrency == conc and not r.failed]
            return (statistics.median(xs) if xs else 0.0), len(xs)
        def errors(system: str) -> int:
            return sum(int(r.figures.get("errors", 0)) for r in results
                       if r.system == system and r.concurrency == conc and not r.failed)
        with_, n = med(feature, "ops_per_s")
        base, _ = med(without, "ops_per_s")
        cost = 100.0 * (base - with_) / base if base else 0.0
        rows.append({"concurrency": conc, "with": with_, "without": base, "runs": n, "cost_pct": cost,
                     "with_p50_ms": med(feature, "p50_ms")[0], "without_p50_ms": med(without, "p50_ms")[0],
                     "with_errors": errors(feature), "without_errors": errors(without)})
    return rows
